"""The lookgraph graph model, written once.

Nodes and relationships (the README draws the same picture)::

    (:Shopper)-[:HAD_SESSION]->(:Session)
    (:Session)-[:INTERACTED {event_id, type, ts, location, gift}]->(:Product)
    (:Product)-[:IN_CATEGORY]->(:Category)-[:CHILD_OF]->(:Category)
    (:Product)-[:HAS_ATTRIBUTE]->(:Attribute {key, kind, value})
    (:Look)-[:INCLUDES {position}]->(:Product)
    (:Look)-[:FOUND_IN]->(:Session)
    (:Shopper)-[:SAVED {ts}]->(:Look)

Records are plain slotted dataclasses (not frozen: loads build a million at a time and frozen
ones are several times slower to construct): loaders produce them, stores persist them, and
nothing else invents its own shape for a product or an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

LABELS = ("Shopper", "Session", "Product", "Category", "Attribute", "Look")
RELATIONSHIPS = (
    "HAD_SESSION",
    "INTERACTED",
    "IN_CATEGORY",
    "CHILD_OF",
    "HAS_ATTRIBUTE",
    "INCLUDES",
    "FOUND_IN",
    "SAVED",
    "BOUGHT_WITH",
)

OPERATIONAL_LABELS = ("Channel", "Rule", "ConsoleSession", "Change", "ChangeSequence", "CrowdRefresh", "Impression",
                      "Attribution")
OPERATIONAL_RELATIONSHIPS = ("CONTACTED", "HAS_RULE", "PINS")
"""The outbound contact log, (:Shopper)-[:CONTACTED {ts}]->(:Channel), and the merchandisers'
rules, (:Rule), (:Shopper)-[:HAS_RULE]->(:Rule), (:Rule)-[:PINS]->(:Look): kept in the store
(a shopper's erased with them), the console's sign-in sessions, (:ConsoleSession), and the
change log serving processes keep fresh from, (:Change) numbered by (:ChangeSequence): kept in
the store, but not part of the graph that is counted, trained on or recommended from."""

EVENT_TYPES = ("view", "cart", "purchase", "dismiss")
"""Interaction types, weakest to strongest signal; `dismiss` is an explicit 'not for me'."""


@dataclass(frozen=True, slots=True)
class Attribute:
    """A product property that other products can share: brand, colour, style, title term..."""

    kind: str
    value: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def from_key(cls, key: str) -> Attribute:
        kind, _, value = key.partition(":")
        return cls(kind, value)


@dataclass(slots=True)
class Category:
    id: str
    name: str
    parent_id: str | None = None


@dataclass(slots=True)
class Product:
    id: str
    name: str
    category_id: str | None = None
    price: float | None = None
    attributes: tuple[Attribute, ...] = ()
    availability: str = "in_stock"
    """One of `AVAILABILITY`: only an item in stock is recommended."""
    unavailable_in: tuple[str, ...] = ()
    """Locations where an item otherwise in stock is out of stock (not recommended there)."""


AVAILABILITY = ("in_stock", "out_of_stock", "discontinued")


@dataclass(slots=True)
class Shopper:
    id: str
    home_location: str | None = None


@dataclass(slots=True)
class Look:
    """A curated outfit or bundle; `product_ids` are in display order (the `position`).
    A look `lookgraph mine-looks` found in baskets is `mined`, with its `support` (baskets
    holding all its items) and `lift` (how much more often than chance they go together)."""

    id: str
    name: str
    product_ids: tuple[str, ...]
    session_id: str | None = None
    mined: bool = False
    support: int | None = None
    lift: float | None = None


@dataclass(slots=True)
class Event:
    """One interaction of a session with a product. `shopper_id` is None for anonymous visitors."""

    id: str
    session_id: str
    product_id: str
    type: str
    ts: float
    shopper_id: str | None = None
    location: str | None = None
    gift: bool = False


@dataclass(slots=True)
class SavedLook:
    shopper_id: str
    look_id: str
    ts: float


RULE_ACTIONS = ("exclude", "boost", "bury", "pin")


@dataclass(frozen=True, slots=True)
class Rule:
    """A merchandiser's business rule. The items it is about: those in (or below) `category`,
    with the attribute `attribute` ("kind:value", e.g. "brand:acme"), priced within
    [`price_min`, `price_max`]; every condition given must hold. `exclude` keeps them out of
    every list, `boost`/`bury` move them up/down by `weight` standard deviations of the list's
    scores, `pin` puts the items of look `look_id` first on the `category` page. For
    `shopper_id`'s lists only, or everyone's; valid from `starts_at` to `ends_at` (epoch
    seconds), or always; with `variant` ("<experiment>/<variant>"), only in the lists that
    experiment's variant serves: a rule set under test."""

    id: str
    action: str
    name: str = ""
    category: str | None = None
    attribute: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    shopper_id: str | None = None
    weight: float = 1.0
    look_id: str | None = None
    starts_at: float | None = None
    ends_at: float | None = None
    variant: str | None = None

    def active(self, now: float) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)


@dataclass(frozen=True)
class Variant:
    """One arm of an experiment: its share of the experiment's traffic and what it changes."""

    name: str
    share: float
    policy: dict = field(default_factory=dict)
    """`PolicyConfig` fields set for this arm, e.g. {"explore_share": 0.1}."""
    ranker: str = "served"
    """"served" (the artifact's ranker, if any) or "hand-set" (the evidence weights)."""
    model: str = "served"
    """"served" (the artifact's vectors, if any), "none" (graph walks alone) or a trained
    version's name (its folder under `models/`: its vectors, and its ranker unless `ranker` is
    "hand-set"), e.g. the version served before the last training, against the new one."""
    rules: bool = True
    """False: the business rules' boosts, buries, pins and exclusions do not apply (availability does)."""


@dataclass(frozen=True)
class Experiment:
    """An A/B test (`recommend/experiments.py`): the lists of kinds `lists` served to each unit
    (a shopper or a session) from `starts_at` until `ends_at` are given one variant, drawn by a
    hash of the experiment and the unit; a `holdout` share of units is kept out of every variant
    and served as if there were no experiment. `metric` decides (`recommend/sequential.py`)."""

    id: str
    name: str
    variants: tuple[Variant, ...]
    unit: str = "shopper"
    lists: tuple[str, ...] = ("feed",)
    holdout: float = 0.0
    starts_at: float = 0.0
    ends_at: float | None = None
    metric: str = "conversion"
    minimum_effect: float = 0.1
    """The relative uplift the test is tuned to find soonest (its mixture's scale)."""
    created_at: float = 0.0

    def active(self, now: float) -> bool:
        return self.starts_at <= now and (self.ends_at is None or now < self.ends_at)


RECORD_KINDS = ("categories", "products", "shoppers", "events", "looks", "saved_looks")
"""Entity files in load order: each kind may only reference kinds loaded before it."""

RECORD_TYPES = {
    "categories": Category,
    "products": Product,
    "shoppers": Shopper,
    "events": Event,
    "looks": Look,
    "saved_looks": SavedLook,
}


@dataclass(slots=True)
class GraphStats:
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    top_categories: list[tuple[str, str, int]] = field(default_factory=list)
    """(category id, name, products in it or below it), largest first."""

    def as_dict(self) -> dict:
        return {
            "nodes": self.nodes,
            "relationships": self.relationships,
            "top_categories": [
                {"id": cid, "name": name, "products": n} for cid, name, n in self.top_categories
            ],
        }


@dataclass(frozen=True, slots=True)
class Neighbour:
    """One hop from a node: the relationship type, its direction, and the node at the far end."""

    rel: str
    direction: str  # "out" or "in"
    label: str
    id: str
    props: dict = field(default_factory=dict, hash=False, compare=False)


class ShownItem(NamedTuple):
    """One slot of a served list (a tuple: a million lists hold twenty million of them)."""

    product_id: str
    source: str
    """The candidate source that offered it (`candidates.SOURCES`), or "" for none."""
    path: str
    """Its first path's relationships, e.g. "INCLUDES>INCLUDES" (a look), "" for none."""
    exploration: bool = False


@dataclass(frozen=True)
class Impression:
    """One list the API served (`recommend/impressions.py`), kept under its recommendation id."""

    id: str
    list: str
    at: float
    items: tuple[ShownItem, ...]
    shopper_id: str | None = None
    session_id: str | None = None
    product_id: str | None = None
    """The product a page was about (complete the look, a product page in a feed)."""
    model: str | None = None
    ranker: str | None = None
    variant: str | None = None
    context: dict = field(default_factory=dict)
    """What the request asked: k, location, categories, explore, gift, items."""


IMPRESSION_LISTS = ("feed", "complete_the_look", "session", "outbound")
