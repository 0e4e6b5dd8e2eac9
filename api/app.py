"""The lookgraph REST API. Routes are thin: validate at the edge (`schemas.py`), check the key's
scope (`security.py`), call the engine (`engine.py`) or the store, shape the answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path as FilePath
from typing import Annotated

import anyio
from fastapi import Body, FastAPI, Path, Query, Request, Response, Security
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import ValidationError

from .. import __version__
from ..embeddings.vectors import LookVectors, erase_shopper_from_artifacts
from ..graph import crowd, limits
from ..graph.model import Attribute, Event, Look, Product, Rule
from ..graph.store import AlreadyExists, GraphStore, SessionConflict, UnknownNode
from ..graph.stores import open_store
from ..recommend.engine import Ask, Engine
from ..recommend.explanations import Answer
from ..recommend.freshness import Freshness
from ..recommend.attribution import recommendation_report
from ..recommend.experiment_report import experiment_report
from ..recommend.impressions import ImpressionLog
from ..recommend.policies import DAY, policy_config
from ..settings import Settings
from . import schemas
from .artifacts import ServedModel, load_version, versions
from .background import Progress, keep_beating, keep_crowd, keep_exploration, keep_fresh, keep_impressions, running
from .console import Actions, add_console
from .experiments import add_experiments
from .security import Gate, Keys, scope
from .sessions import ConsoleSessions

log = logging.getLogger("lookgraph.api")

API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="API key",
                       description="A key from LOOKGRAPH_API_KEYS (`Authorization: Bearer <key>` works too).")
"""The key scheme as the OpenAPI document declares it; `security.Gate` is what checks it."""
SWAGGER = "/docs/static"

DESCRIPTION = """
Complementary items across categories for every shopper and moment, each with the graph path
that explains it. Send every event to `POST /events`; the next recommendation reflects it.

Authenticate with `X-API-Key: <key>`. Scopes: `read` (recommendations, catalogue), `events`
(events, outbound picks), `personal` (a shopper's journey), `admin` (catalogue and rule changes,
rules, erasure; implies the others).

Ids go in the path as one percent-encoded segment (`clothing%2Fuser%2F42`); an id holding `/`
may also be sent with its slashes as they are (`clothing/user/42`). Every time is ISO 8601 (no
offset means UTC) from 1970-01-01 to before 2100-01-01 UTC; an event's at most a day after the
server's clock. The README's limits table lists every limit.
"""


access = logging.getLogger("lookgraph.access")
"""One record per request (method, path, route, status, milliseconds, client), structured fields
that `lookgraph serve` writes as a JSON line each; never the key."""


class Measure:
    """ASGI middleware: count and time every request by route template and status, and log it
    to `lookgraph.access` (a plain ASGI wrapper: Starlette's `BaseHTTPMiddleware` costs a task
    group per request)."""

    def __init__(self, app, requests: Counter, latency: Histogram):
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            name = getattr(route, "path_format", route.path) if route is not None else "unmatched"
            seconds = time.perf_counter() - started
            self.requests.labels(name, str(status)).inc()
            self.latency.labels(name).observe(seconds)
            if access.isEnabledFor(logging.INFO):
                query = scope.get("query_string", b"").decode("latin-1")
                access.info("request", extra={
                    "method": scope["method"], "path": scope["path"] + (f"?{query}" if query else ""), "route": name,
                    "status": status, "ms": round(seconds * 1000, 2), "client": (scope.get("client") or ("", 0))[0]})


def create_app(settings: Settings | None = None, store: GraphStore | None = None,
               vectors: LookVectors | None | bool = True, clock=time.time,
               heartbeat: Callable[[], None] | None = None) -> FastAPI:
    """Build the app over `store` (default: the configured one). `vectors=True` loads the
    latest artifact if there is one; None serves from the graph alone. `heartbeat` is called
    every second while the app makes progress (`serve --workers`' check, `background.keep_beating`)."""
    settings = settings or Settings()
    keys = Keys(settings.api_keys, settings.api_keys_file)
    if not keys:
        raise ValueError("set LOOKGRAPH_API_KEYS or LOOKGRAPH_API_KEYS_FILE "
                         "(e.g. 'a-long-random-key:read,events;another-long-key:admin')")
    store = store or open_store(settings)
    if store.bought_with_state() is None and store.events_watermark():
        log.info("the crowd's BOUGHT_WITH was never computed on this store (loaded by an earlier lookgraph): computing it")
        crowd.refresh(store)
    ranker, watch = None, vectors is True and settings.reload_check_seconds > 0
    if vectors is True:
        vectors, ranker = ServedModel.load_latest(settings.home)
        if vectors is None:
            log.warning("no trained model under %s yet: serving from graph paths alone", settings.home / "models")
    impressions = ImpressionLog(store, settings.impression_queue, settings.impression_flush_seconds,
                                counted=lambda outcome, n: impressions_kept.labels(outcome).inc(n)) if settings.impressions else None
    engine = Engine(store, store.traversal(vectors), vectors, policy_config(), clock, ranker,
                    keep_shown=impressions.record if impressions is not None else None,
                    load_version=lambda version: load_version(settings.home, version))
    served = ServedModel(engine, settings.home, vectors.meta.get("version") if vectors else None, clock)
    # Answers are computed `compute_threads` at a time, off the event loop: threads beyond what
    # the store's waits need only trade Python's interpreter lock (settings.py).
    computing = anyio.CapacityLimiter(settings.compute_threads or (4 if settings.store == "neo4j" else 1))

    progress = Progress(computing)

    async def computed(answer) -> Response:
        try:
            return await anyio.to_thread.run_sync(lambda: out(answer()), limiter=computing)
        finally:
            progress.finished += 1
    fresh = Freshness(engine, store)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        loops = [served.watch(settings.reload_check_seconds)] if watch else []
        if settings.freshness_seconds > 0:
            loops.append(keep_fresh(fresh, settings.freshness_seconds))
        if settings.crowd_refresh_seconds > 0:
            loops.append(keep_crowd(store, settings.crowd_refresh_seconds))
        if settings.exploration_refresh_seconds > 0:
            loops.append(keep_exploration(store, engine, settings.exploration_refresh_seconds))
        if heartbeat is not None:
            loops.append(keep_beating(heartbeat, progress.made))
        if impressions is not None:
            impressions.start()
            loops.append(keep_impressions(store, settings.impression_retention_days * DAY, clock))
        async with running(loops):  # shutting down: in-flight requests have been answered by now
            yield
        if impressions is not None:
            await asyncio.to_thread(impressions.close)  # what is still queued is written

    app = FastAPI(title="lookgraph", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    sessions = ConsoleSessions(store, keys, settings.console_session_hours * 3600, clock, settings.console_secure_cookie)
    app.state.engine, app.state.served, app.state.keys, app.state.freshness = engine, served, keys, fresh
    app.state.impressions = impressions
    app.add_middleware(Gate, routes=app.router.routes, keys=keys, sessions=sessions, max_bytes=settings.max_body_bytes)

    registry = CollectorRegistry()
    requests = Counter("lookgraph_requests_total", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram("lookgraph_request_seconds", "Request latency", ["route"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0))
    events_in = Counter("lookgraph_events_total", "Events received", ["new"], registry=registry)
    impressions_kept = Counter("lookgraph_impressions_total", "Served lists kept in the store (written) or lost "
                               "(dropped: the queue full, or the store away)", ["outcome"], registry=registry)

    app.add_middleware(Measure, requests=requests, latency=latency)

    @app.exception_handler(UnknownNode)
    async def unknown(_: Request, err: UnknownNode):
        return JSONResponse({"detail": str(err)}, status_code=404)

    @app.exception_handler(RequestValidationError)
    async def unprocessable(request: Request, err: RequestValidationError):
        """422 naming the field where the client put it: without the event form's tag."""
        errors = [{**e, "loc": [part for i, part in enumerate(e["loc"]) if not (i == 1 and part in schemas.EVENT_FORMS)]}
                  for e in err.errors()]
        return await request_validation_exception_handler(request, RequestValidationError(errors))

    @app.exception_handler(AlreadyExists)
    async def exists(_: Request, err: AlreadyExists):
        return JSONResponse({"detail": f"{err}; PUT replaces it"}, status_code=409)

    def guarded(name: str, *codes: int) -> dict:
        """A route's scope (enforced by `Gate` before the body is read), the key scheme (so that
        `/docs` has an Authorize button) and the errors it answers."""
        return {"openapi_extra": scope(name), "responses": schemas.errors(401, 403, *codes),
                "dependencies": [Security(API_KEY)]}

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI from the files shipped in `api/static/swagger-ui/`: nothing from the internet."""
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="lookgraph API", swagger_js_url=f"{SWAGGER}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER}/swagger-ui.css", swagger_favicon_url=f"{SWAGGER}/favicon-32x32.png",
                                   swagger_ui_parameters={"persistAuthorization": True})

    app.mount(SWAGGER, StaticFiles(directory=FilePath(__file__).parent / "static" / "swagger-ui"), name="swagger-ui")

    # Every route that reads or writes the store is a plain `def`: FastAPI runs it in its
    # threadpool, so a request waiting on Neo4j (or on SQLite's disk) never holds the event loop,
    # and requests run concurrently (`benchmarks/load.py --concurrency`). The recommendation
    # routes run theirs through `computed`, a few at a time.

    def out(answer: Answer) -> Response:
        """The answer as `schemas.Recommendations` (the routes' documented `response_model`),
        written straight from the engine's dataclasses."""
        return Response(schemas.RECOMMENDATIONS_JSON.dump_json(
            {"recommendation_id": answer.recommendation_id, "items": answer.items, "model": answer.model,
             "short_because": answer.short_because, "variant": answer.variant}), media_type="application/json")

    def known_categories(categories: list[str], where: list) -> tuple[str, ...]:
        """The category filter, every id checked: an unknown one is a mistake, not an empty list."""
        names = engine.graph.categories.names
        for i, category in enumerate(categories):
            if category not in names:
                raise RequestValidationError([{"type": "value_error", "loc": [*where, i], "input": category,
                                               "msg": f"unknown category {category!r}"}])
        return tuple(categories)

    def invalid(location: list, message: str, part: str = "body") -> RequestValidationError:
        return RequestValidationError([{"type": "value_error", "loc": [part, *location], "msg": message, "input": None}])

    @app.post("/events", response_model=schemas.EventsAccepted, **guarded("events", 413), tags=["events"],
              summary="Record one event or a batch")
    def post_events(body: Annotated[schemas.Events, Body()]) -> schemas.EventsAccepted:
        """One event or a batch (`{"events": [...]}`, at most 1,000). Idempotent by `event_id`."""
        batch, prefix = (body.events, ["events"]) if isinstance(body, schemas.EventBatch) else ([body], [])
        now = clock()
        known = engine.graph.cards({e.product_id for e in batch})
        events = []
        for i, e in enumerate(batch):
            where = [*prefix, i] if prefix else []
            if e.product_id not in known:
                raise invalid([*where, "product_id"], f"unknown product {e.product_id!r}")
            ts = e.ts.timestamp() if e.ts else now  # aware: schemas.Moment
            problem = limits.time_problem(ts, now)
            if problem:
                raise invalid([*where, "ts"], f"{e.ts.isoformat()} is {problem}")
            events.append(Event(e.event_id, e.session_id, e.product_id, e.type, ts, e.shopper_id, e.location, e.gift))
        try:  # the session's owner is checked inside the write transaction
            new = store.append_events(events)
        except SessionConflict as err:
            raise invalid([*prefix, err.position, "shopper_id"] if prefix else ["shopper_id"], str(err)) from None
        # Which list each was sent back with: after the events (a retry writes what a crash left out).
        store.record_attributions([(e.event_id, e.recommendation_id) for e in batch if e.recommendation_id])
        if new:  # the crowd's statistics are recounted from the store at their next refresh
            engine.graph.events_added(events)
        events_in.labels("true").inc(new)
        events_in.labels("false").inc(len(events) - new)
        return schemas.EventsAccepted(accepted=len(events), new=new)

    @app.get("/metrics/recommendations", response_model=schemas.RecommendationMetrics, **guarded("admin"),
             tags=["operations"], summary="What the recommendations sold")
    def recommendation_metrics(query: Annotated[schemas.MetricsQuery, Query()]) -> schemas.RecommendationMetrics:
        """Views, carts, purchases and revenue credited to the lists served from `since` until
        `until` (default: the last 7 days), per list kind, source, position and variant, and per
        time bucket: an event sent back with a list's `recommendation_id`, or else a view, cart or
        purchase of an item shown to the same shopper (or session) within `window_hours` before."""
        until = query.until.timestamp() if query.until else clock()
        since = query.since.timestamp() if query.since else until - 7 * DAY
        window = (query.window_hours or settings.attribution_window_hours) * 3600
        return schemas.RecommendationMetrics(**recommendation_report(store, since, until, window, query.bucket_hours * 3600))

    @app.get("/shoppers/{shopper_id:id}/recommendations", response_model=schemas.Recommendations,
             **guarded("read", 404), tags=["recommendations"], summary="A shopper's recommendations now")
    async def shopper_recommendations(shopper_id: Annotated[str, Path(**schemas.PATH_ID)], query: Annotated[schemas.ShopperQuery, Query()]) -> Response:
        """Complementary items for a shopper now: their session, their taste, the item in view."""
        ask = Ask(query.k, query.product_id, query.location, query.gift,
                  known_categories(query.category, ["query", "category"]), query.same_category, query.session_id,
                  explore=query.explore)
        return await computed(lambda: engine.for_shopper(shopper_id, ask))

    @app.get("/products/{product_id:id}/complete-the-look", response_model=schemas.Recommendations,
             **guarded("read", 404), tags=["recommendations"], summary="Complete the look around a product")
    async def complete_the_look(product_id: Annotated[str, Path(**schemas.PATH_ID)], query: Annotated[schemas.LookQuery, Query()]) -> Response:
        """What completes the look around a product, for anyone (no shopper needed)."""
        ask = Ask(query.k, categories=known_categories(query.category, ["query", "category"]), items=tuple(query.item),
                  same_category=query.same_category, session_id=query.session_id)

        def answer() -> Answer:  # the items checked in the answer's own read transaction
            known = engine.graph.cards(query.item)
            for i, pid in enumerate(query.item):
                if pid not in known:
                    raise invalid(["item", i], f"unknown product {pid!r}", "query")
            return engine.complete_the_look(product_id, ask)
        return await computed(lambda: store.read_together(answer))

    @app.post("/sessions/{session_id:id}/recommendations", response_model=schemas.Recommendations,
              **guarded("read", 404, 413), tags=["recommendations"], summary="An anonymous visitor's recommendations")
    async def session_recommendations(session_id: Annotated[str, Path(**schemas.PATH_ID)], body: schemas.SessionAsk) -> Response:
        """For an anonymous visitor: the session's events so far plus the items given."""
        ask = Ask(body.k, None, body.location, body.gift, known_categories(body.categories, ["body", "categories"]),
                  body.same_category, session_id, tuple(body.items), body.explore)

        def answer() -> Answer:  # the items checked in the answer's own read transaction
            known = engine.graph.cards(body.items)
            for i, pid in enumerate(body.items):
                if pid not in known:
                    raise invalid(["items", i], f"unknown product {pid!r}")
            return engine.for_session(session_id, ask)
        return await computed(lambda: store.read_together(answer))

    @app.get("/looks/{look_id:id}", response_model=schemas.LookOut, **guarded("read", 404), tags=["catalogue"],
             summary="One look")
    def get_look(look_id: Annotated[str, Path(**schemas.PATH_ID)]) -> schemas.LookOut:
        return schemas.LookOut.of(store.get("looks", look_id))

    @app.get("/looks", response_model=schemas.LookPage, **guarded("read"), tags=["catalogue"], summary="Looks, a page at a time")
    def list_looks(query: Annotated[schemas.LookListQuery, Query()]) -> schemas.LookPage:
        """Curated and mined looks by id, `limit` at a time from `offset`; with `product_id`,
        only the looks that include that product."""
        ids = store.look_ids(query.product_id, query.limit + 1, query.offset)
        looks = [schemas.LookOut.of(store.get("looks", look_id)) for look_id in ids[: query.limit]]
        return schemas.LookPage(items=looks, next_offset=query.offset + query.limit if len(ids) > query.limit else None)

    @app.get("/products/{product_id:id}", response_model=schemas.ProductOut, **guarded("read", 404), tags=["catalogue"],
             summary="One product")
    def get_product(product_id: Annotated[str, Path(**schemas.PATH_ID)]) -> schemas.ProductOut:
        return schemas.ProductOut.of(store.get("products", product_id))

    def look_of(look_id: str, body: schemas.LookFields) -> Look:
        known = engine.graph.cards(body.product_ids)
        for i, pid in enumerate(body.product_ids):
            if pid not in known:
                raise invalid(["product_ids", i], f"unknown product {pid!r}")
        if body.session_id is not None and not store.session_owners([body.session_id]):
            raise invalid(["session_id"], f"unknown session {body.session_id!r}")
        return Look(look_id, body.name, tuple(body.product_ids), body.session_id)

    @app.post("/looks", response_model=schemas.LookOut, status_code=201, **guarded("admin", 409, 413), tags=["catalogue"],
              summary="Create a look")
    def post_look(body: schemas.LookIn) -> schemas.LookOut:
        """A merchandiser's new look, recommendable at once; 409 when the id is taken."""
        look = look_of(body.id, body)
        store.create("looks", look)
        fresh.catch_up()
        return schemas.LookOut.of(look)

    @app.put("/looks/{look_id:id}", response_model=schemas.LookOut, **guarded("admin", 413), tags=["catalogue"],
             summary="Create or replace a look")
    def put_look(look_id: Annotated[str, Path(**schemas.PATH_ID)], body: schemas.LookFields) -> schemas.LookOut:
        """Create the look or replace it whole (name, items in order, session)."""
        return schemas.LookOut.of(save_look(look_id, body))

    def save_look(look_id: str, body: schemas.LookFields) -> Look:
        look = look_of(look_id, body)
        with store.bulk_load() as writer:
            writer.write("looks", [look])
        fresh.catch_up()
        return look

    def product_of(product_id: str, body: schemas.ProductFields) -> Product:
        if body.category_id is not None:
            try:
                store.get("categories", body.category_id)
            except UnknownNode:
                raise invalid(["category_id"], f"unknown category {body.category_id!r}") from None
        attributes = tuple(sorted({Attribute(kind.strip().lower(), v.strip())
                                   for kind, values in body.attributes.items()
                                   for v in (values if isinstance(values, list) else [values])}, key=lambda a: a.key))
        return Product(product_id, body.name, body.category_id, body.price, attributes, body.availability,
                       tuple(dict.fromkeys(body.unavailable_in)))

    def product_written(product: Product) -> schemas.ProductOut:
        """Walkable, and its availability and rules in force, from this process's next request
        on (every other process's within `LOOKGRAPH_FRESHNESS_SECONDS`)."""
        fresh.catch_up()
        return schemas.ProductOut.of(product)

    @app.post("/products", response_model=schemas.ProductOut, status_code=201, **guarded("admin", 409, 413),
              tags=["catalogue"], summary="Create a product")
    def post_product(body: schemas.ProductIn) -> schemas.ProductOut:
        """A new product, recommendable at once through its attributes and looks, before
        retraining; 409 when the id is taken."""
        product = product_of(body.id, body)
        store.create("products", product)
        return product_written(product)

    @app.put("/products/{product_id:id}", response_model=schemas.ProductOut, **guarded("admin", 413), tags=["catalogue"],
             summary="Create or replace a product")
    def put_product(product_id: Annotated[schemas.ProductId, Path(**schemas.PATH_ID)], body: schemas.ProductFields) -> schemas.ProductOut:
        """Create the product or replace it whole (name, category, price, attributes, availability)."""
        product = product_of(product_id, body)
        with store.bulk_load() as writer:
            writer.write("products", [product])
        return product_written(product)

    @app.patch("/products/{product_id:id}", response_model=schemas.ProductOut, **guarded("admin", 404, 413),
               tags=["catalogue"], summary="Change some of a product's fields")
    def patch_product(product_id: Annotated[str, Path(**schemas.PATH_ID)],
                      body: schemas.ProductPatch) -> schemas.ProductOut:
        """Only the fields given change, e.g. `{"availability": "out_of_stock"}`: the product
        leaves every list from the next request on, without retraining."""
        before = store.get("products", product_id)
        current = schemas.ProductOut.of(before).model_dump(exclude={"id"})
        changed = {**current, **{k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}}
        try:  # what is given and what stays must make a whole product
            fields = schemas.ProductFields(**changed)
        except ValidationError as err:
            raise RequestValidationError([{**e, "loc": ["body", *e["loc"]]} for e in err.errors()]) from None
        product = product_of(product_id, fields)
        if set(body.model_fields_set) <= {"availability", "unavailable_in"}:  # a stock update: only that is written
            store.set_availability(product_id, product.availability, product.unavailable_in)
        else:
            with store.bulk_load() as writer:
                writer.write("products", [product])
        return product_written(product)

    @app.delete("/products/{product_id:id}", response_model=schemas.ProductOut, **guarded("admin", 404),
                tags=["catalogue"], summary="Withdraw a product")
    def withdraw_product(product_id: Annotated[str, Path(**schemas.PATH_ID)]) -> schemas.ProductOut:
        """Marks it discontinued: never recommended again, while the shoppers' events that
        name it stay their history (so the record stays, and `PUT` brings it back)."""
        current = store.get("products", product_id)
        product = Product(current.id, current.name, current.category_id, current.price, current.attributes, "discontinued",
                          current.unavailable_in)
        store.set_availability(product_id, product.availability, product.unavailable_in)
        return product_written(product)

    def rule_out(rule: Rule) -> schemas.RuleOut:
        fields = {name: getattr(rule, name) for name in Rule.__dataclass_fields__}
        return schemas.RuleOut(**{**fields, "starts_at": limits.shown_time(rule.starts_at),
                                  "ends_at": limits.shown_time(rule.ends_at)},
                               products=len(engine.merch.members(rule.id)))

    @app.get("/rules", response_model=list[schemas.RuleOut], **guarded("admin"), tags=["merchandising"],
             summary="Every business rule")
    def list_rules() -> list[schemas.RuleOut]:
        return [rule_out(rule) for rule in store.rules()]

    @app.post("/rules", response_model=schemas.RuleOut, status_code=201, **guarded("admin", 409, 413),
              tags=["merchandising"], summary="Create a business rule")
    def post_rule(body: schemas.RuleIn) -> schemas.RuleOut:
        """Filters (`exclude`), `boost`s and `bury`s with a weight and a validity window, and
        looks pinned to a category page (`pin`), for everyone or one shopper. Every rule that
        moves an item is named in its explanation (`rules`). In force from the next request."""
        return rule_out(create_rule(body))

    @app.put("/rules/{rule_id:id}", response_model=schemas.RuleOut, **guarded("admin", 413), tags=["merchandising"],
             summary="Create or replace a business rule")
    def put_rule(rule_id: Annotated[str, Path(**schemas.PATH_ID)], body: schemas.RuleFields) -> schemas.RuleOut:
        """The rule of this id, replaced whole (or made); in force from the next request."""
        return rule_out(create_rule(schemas.RuleIn(id=rule_id, **body.model_dump()), replace=True))

    def create_rule(body: schemas.RuleIn, replace: bool = False) -> Rule:
        if body.category is not None and body.category not in engine.graph.categories.names:
            raise invalid(["category"], f"unknown category {body.category!r}")
        stamp = lambda at: at.timestamp() if at else None  # noqa: E731 (aware, in range: schemas.Moment)
        rule = Rule(**{**body.model_dump(), "starts_at": stamp(body.starts_at), "ends_at": stamp(body.ends_at)})
        try:
            (store.replace_rule if replace else store.create_rule)(rule)
        except UnknownNode as err:
            raise invalid(["shopper_id" if err.label == "Shopper" else "look_id"], str(err)) from None
        fresh.catch_up()
        return rule

    @app.delete("/rules/{rule_id:id}", status_code=204, **guarded("admin", 404), tags=["merchandising"],
                summary="Delete a business rule")
    def delete_rule(rule_id: Annotated[str, Path(**schemas.PATH_ID)]) -> Response:
        remove_rule(rule_id)
        return Response(status_code=204)

    def remove_rule(rule_id: str) -> None:
        store.delete_rule(rule_id)
        fresh.catch_up()

    def experiment_results(experiment_id: str) -> dict:
        experiment = next((e for e in store.experiments() if e.id == experiment_id), None)
        if experiment is None:
            raise UnknownNode("Experiment", experiment_id)
        return experiment_report(store, experiment, clock(), settings.attribution_window_hours * 3600)

    def end_experiment(experiment_id: str):
        ended = store.end_experiment(experiment_id, clock())
        fresh.catch_up()
        return ended

    add_experiments(app, store, clock, fresh.catch_up, experiment_results, end_experiment, guarded, invalid,
                    lambda: versions(settings.home))

    add_console(app, store, engine, lambda: served.version,
                Actions(create_rule, remove_rule, save_look, experiment_results, end_experiment), sessions,
                sold=lambda: recommendation_report(store, clock() - 7 * DAY, clock(), settings.attribution_window_hours * 3600,
                                                   DAY))
    app.mount("/console/static", StaticFiles(directory=FilePath(__file__).parent / "static" / "console"), name="console")

    @app.get("/shoppers/{shopper_id:id}/journey", response_model=schemas.Journey, **guarded("personal", 404),
             tags=["shoppers"], summary="What is kept of a shopper: sessions and events")
    def journey(shopper_id: Annotated[str, Path(**schemas.PATH_ID)],
                limit: Annotated[int, Query(ge=1, le=5_000, description="The latest events, at most this many.")] = 500
                ) -> schemas.Journey:
        """The shopper's home location and their sessions with their events, newest session
        first (what the console's shopper page shows; what a request for one's own data gets)."""
        return schemas.Journey.of(store.get("shoppers", shopper_id), store.events(shopper_id=shopper_id, limit=limit + 1),
                                  limit)

    @app.delete("/shoppers/{shopper_id:id}", response_model=schemas.Erased, **guarded("admin", 404), tags=["shoppers"],
                summary="Erase a shopper")
    def erase_shopper(shopper_id: Annotated[str, Path(**schemas.PATH_ID)]) -> schemas.Erased:
        """Erase every trace of the shopper's personal data (events, sessions, saved looks,
        contact log, embeddings, and what this server remembers of them)."""
        removed = store.delete_shopper(shopper_id)
        fresh.catch_up()  # this process forgets them now, every other within the freshness interval
        removed["artifacts"] = len(erase_shopper_from_artifacts(settings.home / "models", shopper_id))
        return schemas.Erased(shopper_id=shopper_id, removed=removed)

    @app.post("/shoppers/{shopper_id:id}/outbound", response_model=schemas.OutboundOut, **guarded("events", 404),
              tags=["shoppers"], summary="Picks for an email or push, within the contact caps")
    def outbound(shopper_id: Annotated[str, Path(**schemas.PATH_ID)], channel: Annotated[str, Query(pattern="^(email|push|sms)$")] = "email",
                 k: Annotated[int, Query(ge=1, le=20)] = 4) -> schemas.OutboundOut:
        """Picks for an email or push, or `contact: false` while the shopper is capped or in a
        quiet period (then nothing is logged)."""
        decision = engine.outbound(shopper_id, channel, k)
        retry = decision["retry_after"]
        return schemas.OutboundOut(
            contact=decision["contact"], reason=decision["reason"],
            retry_after=datetime.fromtimestamp(retry, timezone.utc) if retry else None,
            items=schemas.RECOMMENDATION_LIST.dump_python(decision["items"]),
            recommendation_id=decision.get("recommendation_id"), variant=decision.get("variant"))

    @app.get("/health", response_model=schemas.Health, tags=["operations"], summary="Liveness, the store and the model served")
    def health() -> schemas.Health:
        return schemas.Health(status="ok", store=store.name, products=engine.graph.product_count(), **served.describe())

    @app.post("/admin/reload", response_model=schemas.Health, **guarded("admin"), tags=["operations"],
              summary="Serve the newest trained model now")
    async def reload() -> schemas.Health:
        """Swap in the model `lookgraph train` published last (the server also looks by itself
        every `LOOKGRAPH_RELOAD_CHECK_SECONDS`); requests in flight finish on the old one."""
        await served.refresh()
        return schemas.Health(status="ok", store=store.name, products=engine.graph.product_count(), **served.describe())

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics() -> Response:
        """Prometheus metrics."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
