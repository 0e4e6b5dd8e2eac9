"""Request and response models: everything that crosses the API's edge is validated here."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError, field_validator,
    model_validator,
)
from starlette.convertors import Convertor, register_url_convertor
from typing_extensions import TypedDict

from ..graph import limits
from ..recommend.explanations import Recommendation

ID = {"min_length": 1, "max_length": limits.ID_MAX, "pattern": limits.ID_PATTERN}
"""Ids: 1-200 characters, none of them a control character (NUL, newline, tab, DEL...)."""
Id = Field(**ID)
TEXT = limits.TEXT_PATTERN
"""Free text (names, locations): no control characters either."""
MAX_BATCH = 1_000
PATH_ID = {**ID, "description": "The id, percent-encoded as one path segment (`/` as `%2F`, `%` as `%25`, a space "
                                "as `%20`; an id that is `.` or `..` as `%2E` or `%2E%2E`, since clients drop dot "
                                "segments); an id holding `/` may also be sent with its slashes as they are."}



class IdConvertor(Convertor):
    """`{name:id}` in a route's path: an id, `/` and every other character included (the server
    has decoded `%2F` by the time routes are matched, and Starlette's `path` stops at a newline,
    which must reach the 422 that names it). Validated by `PATH_ID` as every id is."""

    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("id", IdConvertor())


def _product_id(value: str) -> str:
    if value.endswith(limits.RESERVED_PRODUCT_SUFFIX):
        raise ValueError(f"a product id cannot end in {limits.RESERVED_PRODUCT_SUFFIX!r} (the route of that name)")
    return value


ProductId = Annotated[str, Field(**ID), AfterValidator(_product_id)]


def _bounded(moment: datetime) -> datetime:
    """In range, and aware (naive means UTC), so that two of them always compare."""
    problem = limits.date_problem(moment)
    if problem:
        raise ValueError(f"{moment.isoformat()} is {problem}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


Moment = Annotated[datetime, AfterValidator(_bounded)]
"""A date and time (ISO 8601; no offset means UTC) from 1970-01-01 to before 2100-01-01 UTC."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventIn(_In):
    event_id: str = Id
    session_id: str = Id
    product_id: str = Id
    type: Literal["view", "cart", "purchase", "dismiss"]
    ts: Moment | None = Field(None, description="When it happened (ISO 8601; no offset means UTC), from 1970 to at "
                                                "most a day after the server's clock; default: when received.")
    shopper_id: str | None = Field(None, **ID, description="Absent for anonymous visitors.")
    location: str | None = Field(None, max_length=limits.TEXT_MAX, pattern=TEXT)
    gift: bool = False
    recommendation_id: str | None = Field(None, **ID, description="The `recommendation_id` of the list the shopper "
                                          "took this item from, when it came from one: credits the list "
                                          "(`GET /metrics/recommendations`).")

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "event_id": "web-7781", "session_id": "s-1029", "product_id": "p000042", "type": "view",
        "shopper_id": "u000001", "location": "London", "gift": False}]})


class EventBatch(_In):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH)


EVENT_FORMS = ("event", "batch")
"""The two forms of `POST /events`, told apart by the body's shape (an `events` key), so that a
refusal speaks of the form the client sent only; the tag is left out of an error's location."""
Events = Annotated[Annotated[EventIn, Tag("event")] | Annotated[EventBatch, Tag("batch")],
                   Discriminator(lambda body: "batch" if isinstance(body, dict | EventBatch) and
                                 (isinstance(body, EventBatch) or "events" in body) else "event")]


class EventsAccepted(BaseModel):
    accepted: int
    new: int = Field(description="Events not seen before (event ids make posting idempotent).")


def non_blank_attributes(value: dict | None) -> dict | None:
    pairs = [(kind.strip().lower(), v.strip()) for kind, values in (value or {}).items()
             for v in (values if isinstance(values, list) else [values])]
    if any(not kind or not v for kind, v in pairs):
        raise ValueError("attribute kinds and values must be non-blank")
    problem = limits.attributes_problem(pairs)
    if problem:
        raise ValueError(problem[1])
    return value


Availability = Literal["in_stock", "out_of_stock", "discontinued"]
Locations = Field(default_factory=list, max_length=200, description="Locations where it is out of stock.")


class ProductFields(_In):
    """A product's fields (`PUT /products/{id}` replaces them all)."""

    name: str = Field(min_length=1, max_length=limits.NAME_MAX, pattern=TEXT)
    category_id: str | None = Field(None, **ID)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    availability: Availability = Field("in_stock", description="Only an item in stock is recommended.")
    unavailable_in: list[Annotated[str, Field(min_length=1, max_length=limits.TEXT_MAX, pattern=TEXT)]] = Locations
    attributes: dict[str, str | list[str]] = Field(
        default_factory=dict, max_length=100,
        description='e.g. {"style": "casual", "colour": ["blue"]}: at most 200 values, kinds of at most 100 '
                    'characters (no `:`), values of at most 1,000')

    @field_validator("attributes")
    @classmethod
    def _non_blank(cls, value: dict) -> dict:
        return non_blank_attributes(value)


class ProductIn(ProductFields):
    id: ProductId


class ProductPatch(_In):
    """The fields to change (`PATCH /products/{id}`); the others stay."""

    name: str | None = Field(None, min_length=1, max_length=limits.NAME_MAX, pattern=TEXT)
    category_id: str | None = Field(None, **ID)
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    attributes: dict[str, str | list[str]] | None = Field(None, max_length=100)
    availability: Availability | None = None
    unavailable_in: list[Annotated[str, Field(min_length=1, max_length=limits.TEXT_MAX, pattern=TEXT)]] | None = Field(
        None, max_length=limits.LOCATIONS_MAX)

    @field_validator("attributes")
    @classmethod
    def _non_blank(cls, value: dict | None) -> dict | None:
        return non_blank_attributes(value)


class RuleFields(_In):
    """A business rule (see `graph.model.Rule`): which items (every condition given must hold),
    what to do with them, for whom and when (`PUT /rules/{id}` replaces them all)."""

    action: Literal["exclude", "boost", "bury", "pin"]
    name: str = Field("", max_length=limits.TEXT_MAX, pattern=TEXT)
    category: str | None = Field(None, **ID, description="Items in or below this category (pin: the page's category).")
    attribute: str | None = Field(None, max_length=limits.ATTRIBUTE_KIND_MAX + 1 + limits.ATTRIBUTE_VALUE_MAX,
                                  pattern=r"^[^:\x00-\x1f\x7f]+:[^\x00-\x1f\x7f]+$",
                                  description='An attribute as "kind:value", e.g. "brand:acme".')
    price_min: float | None = Field(None, ge=0, allow_inf_nan=False)
    price_max: float | None = Field(None, ge=0, allow_inf_nan=False)
    shopper_id: str | None = Field(None, **ID, description="Only this shopper's lists (e.g. never alcohol for them).")
    weight: float = Field(1.0, gt=0, le=10, allow_inf_nan=False,
                          description="boost/bury: standard deviations of the list's scores to move the items.")
    look_id: str | None = Field(None, **ID, description="pin: the look whose items lead the category page.")
    starts_at: Moment | None = Field(None, description="From when (1970 to before 2100; no offset means UTC).")
    ends_at: Moment | None = Field(None, description="Until when (1970 to before 2100; no offset means UTC).")
    variant: str | None = Field(None, max_length=129, pattern=r"^[A-Za-z0-9_.:-]+/[A-Za-z0-9_.:-]+$",
                                description='Only in the lists an experiment\'s variant serves, as "<experiment>/'
                                            '<variant>" (a rule set under test; it applies even where the variant '
                                            'turns the other rules off).')

    @model_validator(mode="after")
    def _coherent(self) -> RuleFields:
        if self.action == "pin" and (self.look_id is None or self.category is None):
            raise ValueError("a pin needs look_id and category")
        if self.action != "pin" and self.look_id is not None:
            raise ValueError("look_id is for pin rules only")
        if self.action != "pin" and not any(v is not None for v in (self.category, self.attribute, self.price_min,
                                                                     self.price_max)):
            raise ValueError("a rule needs at least one of category, attribute, price_min, price_max")
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise ValueError("price_min is above price_max")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at is not before ends_at")
        return self


class RuleIn(RuleFields):
    id: str = Id


class RuleOut(BaseModel):
    id: str
    action: str
    name: str
    category: str | None
    attribute: str | None
    price_min: float | None
    price_max: float | None
    shopper_id: str | None
    weight: float
    look_id: str | None
    starts_at: datetime | float | None = Field(description="A date, or epoch seconds where a value stored before the "
                                                           "date limits is past what a date can hold.")
    ends_at: datetime | float | None = Field(description="As `starts_at`.")
    variant: str | None = None
    products: int = Field(description="How many products the rule is about now.")


class LookFields(_In):
    """A look's fields (`PUT /looks/{id}` replaces them all)."""

    name: str = Field(min_length=1, max_length=limits.NAME_MAX, pattern=TEXT)
    product_ids: list[str] = Field(min_length=1, max_length=limits.LOOK_ITEMS_MAX)
    session_id: str | None = Field(None, **ID)

    @field_validator("product_ids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a product appears twice in the look")
        return value


class LookIn(LookFields):
    id: str = Id


class LookOut(BaseModel):
    id: str
    name: str
    product_ids: list[str] = Field(description="The look's items, in order.")
    session_id: str | None = Field(None, description="The session the look was found in, if any.")
    mined: bool = Field(False, description="Mined from baskets (often bought together), not made by a merchandiser.")

    @classmethod
    def of(cls, look) -> LookOut:
        return cls(id=look.id, name=look.name, product_ids=list(look.product_ids), session_id=look.session_id,
                   mined=look.mined)


class LookListQuery(BaseModel):
    """The query parameters of `GET /looks`."""

    product_id: str | None = Field(None, max_length=200, description="Only looks that include this product.",
                                   examples=["p000042"])
    limit: int = Field(50, ge=1, le=500, description="Looks per page.")
    offset: int = Field(0, ge=0, le=1_000_000_000, description="Looks to skip (the `next_offset` of the page before).")


class LookPage(BaseModel):
    items: list[LookOut]
    next_offset: int | None = Field(description="`offset` of the next page; null on the last one.")


class ProductOut(BaseModel):
    id: str
    name: str
    category_id: str | None
    price: float | None
    attributes: dict[str, list[str]] = Field(description='Attribute values by kind, e.g. {"colour": ["blue"]}.')
    availability: str = "in_stock"
    unavailable_in: list[str] = []

    @classmethod
    def of(cls, product) -> ProductOut:
        attributes: dict[str, list[str]] = {}
        for attribute in product.attributes:
            attributes.setdefault(attribute.kind, []).append(attribute.value)
        return cls(id=product.id, name=product.name, category_id=product.category_id, price=product.price,
                   attributes=attributes, availability=product.availability, unavailable_in=list(product.unavailable_in))


class SessionAsk(_In):
    items: list[str] = Field(default_factory=list, max_length=50, description="Items in view or in the bag.",
                             examples=[["p000042", "p000107"]])
    k: int = Field(20, ge=1, le=100, description="How many items to return.")
    location: str | None = Field(None, max_length=200, pattern=TEXT, description="Where the visitor is (a city).")
    gift: bool | None = Field(None, description="This session is shopping for someone else.")
    categories: list[str] = Field(default_factory=list, max_length=20, description="Only these categories or below them.")
    same_category: bool = Field(False, description="Allow items of the categories in view.")
    explore: bool = Field(True, description="Give a share of the slots to exploring beyond the usual taste.")


class _ListQuery(BaseModel):
    """Query parameters of every recommendation route. (One model per route rather than a
    parameter each: FastAPI validates it in one step, measured about 15% less framework time
    per request.)"""

    k: int = Field(20, ge=1, le=100, description="How many items to return.")
    category: list[str] = Field(default_factory=list, max_length=20,
                                description="Only these categories or below them (repeatable); an unknown one is a 422.")
    same_category: bool = Field(False, description="Allow items of the item in view's own category.")


class LookQuery(_ListQuery):
    """The query parameters of `GET /products/{id}/complete-the-look`."""

    session_id: str | None = Field(None, max_length=200, description="The visitor's session, when the page knows it: "
                                   "puts the list in the visitor's experiment variant and credits the visit's events "
                                   "to it.", examples=["s-1029"])

    item: list[str] = Field(default_factory=list, max_length=20,
                            description="Other items already in the look (repeatable): complete the look around all of them.")


class ShopperQuery(_ListQuery):
    """The query parameters of `GET /shoppers/{id}/recommendations`."""

    product_id: str | None = Field(None, max_length=200, description="The item in view (a product page).",
                                   examples=["p000042"])
    location: str | None = Field(None, max_length=200, pattern=TEXT,
                                 description="Where the shopper is now (a city); context for this session only.",
                                 examples=["London"])
    gift: bool | None = Field(None, description="This session is shopping for someone else.")
    session_id: str | None = Field(None, max_length=200, description="The current session, when the storefront knows it.",
                                   examples=["s-1029"])
    explore: bool = Field(True, description="Give a share of the slots to exploring beyond the usual taste.")


class MetricsQuery(BaseModel):
    """The query parameters of `GET /metrics/recommendations`."""

    since: Moment | None = Field(None, description="Lists served from (default: 7 days before `until`).")
    until: Moment | None = Field(None, description="Lists served until before (default: now).")
    window_hours: float | None = Field(None, gt=0, le=24 * 90, description="How long after a list a view, cart or purchase "
                                       "of its item counts without its recommendation id (default: "
                                       "LOOKGRAPH_ATTRIBUTION_WINDOW_HOURS).")
    bucket_hours: float = Field(24, gt=0, le=24 * 366, description="The time buckets' width.")

    @model_validator(mode="after")
    def _ordered(self):
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class Outcomes(BaseModel):
    lists: int = Field(description="Lists served.")
    shown: int = Field(description="Items shown (slots): the rates' denominator.")
    views: int
    carts: int
    purchases: int
    revenue: float = Field(description="The price of each purchase credited.")
    click_through: float
    add_to_cart: float
    conversion: float
    revenue_per_thousand: float = Field(description="Revenue per thousand items shown.")


class OutcomeBucket(Outcomes):
    start: float = Field(description="The bucket's start, epoch seconds.")
    list: str


class RecommendationMetrics(BaseModel):
    since: float
    until: float
    window_seconds: float
    by_list: dict[str, Outcomes] = Field(description="Per list kind: feed, complete_the_look, session, outbound.")
    by_source: dict[str, Outcomes] = Field(description="Per source of the item shown (its first reason).")
    by_position: dict[str, Outcomes] = Field(description="Per slot, 0 first.")
    by_variant: dict[str, Outcomes] = Field(description="Per experiment variant (none: no experiment).")
    buckets: list[OutcomeBucket] = Field(description="Per time bucket and list kind.")


class StepOut(BaseModel):
    label: str
    id: str
    name: str


class PathOut(BaseModel):
    nodes: list[StepOut]
    relationships: list[str]
    sentence: str


class RecommendationOut(BaseModel):
    product_id: str
    name: str
    category: str | None
    score: float
    exploration: bool = Field(description="Picked to explore beyond the usual taste.")
    reason: str
    paths: list[PathOut]
    rules: list[str] = Field(default_factory=list, description="Business rules that moved this item (boosts, buries, pins).")
    source: str = Field("", description="The candidate source whose reason is said first: look, attribute, crowd, "
                                        "collaborative, content, embedding, personal, returning, restock, trip, "
                                        "trending, popular.")


class Recommendations(BaseModel):
    recommendation_id: str = Field(description="This list's id: send it back with the events it leads to "
                                               "(`POST /events`); what was shown is kept under it.")
    items: list[RecommendationOut]
    model: str | None = Field(description="Version of the embedding artifact used, if any.")
    short_because: str | None = Field(None, description="Why the list is shorter than `k`; null when it is not.")
    variant: str | None = Field(None, description='"<experiment>/<variant>" when the list was served inside an '
                                                  'experiment (`POST /experiments`); null when it was not.')


class _RecommendationsJSON(TypedDict):
    recommendation_id: str
    items: list[Recommendation]
    model: str | None
    short_because: str | None
    variant: str | None


RECOMMENDATIONS_JSON = TypeAdapter(_RecommendationsJSON)
"""`Recommendations` as served: the engine's dataclasses written to JSON in one pass of
pydantic-core (0.1 ms for 20 items with their paths, against 0.5 ms to build and validate the
models first). `Recommendations` stays the documented schema; the tests hold the two alike."""
RECOMMENDATION_LIST = TypeAdapter(list[Recommendation])


class OutboundOut(BaseModel):
    contact: bool
    reason: str
    retry_after: datetime | None = None
    items: list[RecommendationOut] = []
    recommendation_id: str | None = Field(None, description="The picks' id when there are picks (see `Recommendations`).")
    variant: str | None = Field(None, description="The experiment variant that made the picks (see `Recommendations`).")


class JourneyEvent(BaseModel):
    event_id: str
    product_id: str
    type: str
    ts: datetime | float = Field(description="When (epoch seconds only for a value stored before the date limits).")
    location: str | None
    gift: bool


class JourneySession(BaseModel):
    id: str
    started_at: datetime | float
    events: list[JourneyEvent] = Field(description="Oldest first.")


class Journey(BaseModel):
    shopper_id: str
    home_location: str | None
    sessions: list[JourneySession] = Field(description="Newest first.")
    truncated: bool = Field(description="Older events exist beyond `limit`.")

    @classmethod
    def of(cls, shopper, events: list, limit: int) -> Journey:
        truncated, events = len(events) > limit, events[-limit:]
        sessions: dict[str, JourneySession] = {}
        for e in events:
            session = sessions.setdefault(e.session_id, JourneySession(id=e.session_id, started_at=limits.shown_time(e.ts),
                                                                       events=[]))
            session.events.append(JourneyEvent(event_id=e.id, product_id=e.product_id, type=e.type,
                                               ts=limits.shown_time(e.ts), location=e.location, gift=e.gift))
        return cls(shopper_id=shopper.id, home_location=shopper.home_location,
                   sessions=list(reversed(sessions.values())), truncated=truncated)


class Erased(BaseModel):
    shopper_id: str
    removed: dict[str, int]


class Health(BaseModel):
    status: Literal["ok"]
    store: str = Field(description="embedded or neo4j")
    products: int
    model: str | None = Field(description="The trained model (artifact version) served; null: graph paths alone.")
    model_trained_at: datetime | None = None
    model_age_seconds: float | None = Field(None, description="Since the served model was trained.")


class Problem(BaseModel):
    detail: str | list[dict] = Field(description="What is wrong: a sentence, or (422) one entry per field "
                                                  "with its location (`loc`) and message (`msg`).")


_ERRORS = {401: "No API key, or an unknown one (`X-API-Key` header or `Authorization: Bearer`).",
           403: "The API key lacks the scope this route needs.",
           404: "A product, look, session or shopper named by the request does not exist.",
           409: "The id is taken: `PUT` replaces an existing record.",
           413: "The request body is over the configured limit (`LOOKGRAPH_MAX_BODY_BYTES`)."}


def errors(*codes: int) -> dict:
    """OpenAPI `responses` for the error codes a route can answer."""
    return {code: {"model": Problem, "description": _ERRORS[code]} for code in codes}


# -- experiments --------------------------------------------------------------------------
SLUG = {"min_length": 1, "max_length": 64, "pattern": r"^[A-Za-z0-9_.:-]+$"}
"""Experiment and variant ids: letters, digits and `_.:-` (a list records "<experiment>/<variant>")."""
ListKind = Literal["feed", "complete_the_look", "session", "outbound"]
Metric = Literal["click_through", "add_to_cart", "conversion", "revenue_per_unit", "any_purchase"]


class VariantIn(_In):
    name: str = Field(**SLUG)
    share: float = Field(gt=0, le=1, allow_inf_nan=False, description="Its share of the experiment's units (the "
                         "variants' shares add up to 1).")
    policy: dict[str, bool | int | float] = Field(default_factory=dict, description="Policy settings for this variant "
                                                  '(`PolicyConfig` fields), e.g. {"explore_share": 0.1}.')
    ranker: Literal["served", "hand-set"] = Field("served", description="The model's learned ranker, or the hand-set "
                                                  "evidence weights.")
    model: str = Field("served", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
                       description='"served" (the model every list outside the experiment gets), "none" (graph walks '
                       "alone, then with the hand-set ranker) or a trained version kept under `models/` (its vectors "
                       "and its ranker), e.g. the one served before the last `lookgraph train`.")
    rules: bool = Field(True, description="False: the business rules do not apply (availability does).")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: dict) -> dict:
        from ..recommend.policies import PolicyConfig

        for key in value:
            if key not in PolicyConfig.model_fields:
                raise ValueError(f"unknown policy setting {key!r}; the settings are {', '.join(PolicyConfig.model_fields)}")
        try:  # each value checked as the setting's own type
            PolicyConfig(**value)
        except ValidationError as err:
            first = err.errors()[0]
            raise ValueError(f"policy setting {first['loc'][0]!r}: {first['msg']}") from None
        return value


class ExperimentFields(_In):
    name: str = Field(min_length=1, max_length=limits.NAME_MAX, pattern=TEXT)
    variants: list[VariantIn] = Field(min_length=2, max_length=10, description="The first is the control.")
    unit: Literal["shopper", "session"] = Field("shopper", description="What is assigned a variant: a shopper, or a session.")
    lists: list[ListKind] = Field(["feed"], min_length=1, description="The lists the experiment serves.")
    holdout: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False, description="A share of units kept out of every variant "
                           "and served as without the experiment (tagged `<id>/holdout`).")
    starts_at: Moment | None = Field(None, description="From when (default: now).")
    ends_at: Moment | None = Field(None, description="Until when (default: until `POST /experiments/{id}/end`).")
    metric: Metric = Field("conversion", description="The per-unit metric the test decides on.")
    minimum_effect: float = Field(0.1, gt=0, le=10, allow_inf_nan=False, description="The relative uplift the test is "
                                  "tuned to find soonest (0.1: +10%).")

    @model_validator(mode="after")
    def _coherent(self) -> ExperimentFields:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("two variants have the same name")
        if "holdout" in names:
            raise ValueError('"holdout" names the units kept out; give the variant another name')
        if abs(sum(v.share for v in self.variants) - 1.0) > 1e-6:
            raise ValueError(f"the variants' shares add up to {sum(v.share for v in self.variants):g}, not 1")
        if len(set(self.lists)) != len(self.lists):
            raise ValueError("a list kind is named twice")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at is not before ends_at")
        return self


class ExperimentIn(ExperimentFields):
    id: str = Field(**SLUG)


class ExperimentOut(BaseModel):
    id: str
    name: str
    variants: list[VariantIn]
    unit: str
    lists: list[str]
    holdout: float
    starts_at: datetime
    ends_at: datetime | None
    metric: str
    minimum_effect: float
    created_at: datetime
    status: Literal["scheduled", "running", "ended"]


class VariantFigures(BaseModel):
    units: int = Field(description="Units served at least one list in this variant.")
    lists: int
    shown: int
    click_through: float = Field(description="Share of units that viewed an item they were shown.")
    add_to_cart: float = Field(description="Share of units that carted one.")
    conversion: float = Field(description="Share of units that bought one.")
    revenue_per_unit: float = Field(description="What they bought of them, in price, per unit.")
    any_purchase: float = Field(description="Share of units that bought anything after their first list.")


class ExperimentComparison(BaseModel):
    variant: str
    against: str = Field(description="The control: the first variant.")
    ready: bool = Field(description="Enough units and outcomes in both for the test (100 units, 10 with the outcome).")
    difference: float | None = None
    low: float | None = Field(None, description="The confidence interval of the difference, valid at every look.")
    high: float | None = None
    uplift: float | None = Field(None, description="The difference relative to the control's mean.")
    uplift_low: float | None = None
    uplift_high: float | None = None
    p_value: float = Field(description="Always valid: the smallest over the daily looks so far.")
    decision: str = Field(description="better, worse, no difference found yet, or too few units yet.")


class ExperimentLook(BaseModel):
    at: float = Field(description="The look's time, epoch seconds (the end of each day, then now).")
    variant: str
    units: int
    mean: float
    low: float | None
    high: float | None


class ExperimentReport(BaseModel):
    experiment: str
    status: str
    since: float
    until: float
    metric: str
    alpha: float
    alpha_per_comparison: float = Field(description="alpha / (variants - 1): each variant is compared with the control.")
    window_seconds: float
    variants: dict[str, VariantFigures]
    comparisons: list[ExperimentComparison]
    looks: list[ExperimentLook] = Field(description="The metric per variant at each daily look, with its interval.")
