"""The merchandiser console at `/console`: server-rendered pages (Jinja2) with htmx for the forms
that update part of a page and cytoscape.js for the drawings, both vendored under
`api/static/console/` (nothing is fetched at run time).

Pages: find a shopper or a product; a shopper's journey (sessions with their events, gift and
travel sessions flagged) and their recommendations now, each with its path drawn and the rules
that moved it; a product with its availability, its looks and what completes it; the business
rules (create, delete); looks (create, edit); the catalogue's complement map. Signing in with an
API key opens a session kept in the store (`sessions.py`); `security.Gate` checks each page's
scope as for the API (`read` for the catalogue, `personal` for a shopper's journey, `admin` for
rules and for changing looks), and that every form comes from the console itself (its origin
and the session's CSRF token). What the forms change goes through the same code as the API's
routes (`Actions`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import numpy as np

from fastapi import FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from pydantic import ValidationError

from ..graph.limits import shown_time
from ..graph.model import Rule
from ..graph.store import AlreadyExists, GraphStore, UnknownNode
from ..recommend.engine import Ask, Engine
from ..recommend.explanations import Recommendation
from . import schemas
from .security import CONSOLE, allows, scope
from .sessions import ConsoleSessions

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


@dataclass
class Actions:
    """The API's own ways to change rules and looks, so the console's forms do exactly what the
    routes do (validation, store, engine)."""

    create_rule: Callable[[schemas.RuleIn, bool], object]
    delete_rule: Callable[[str], None]
    save_look: Callable[[str, schemas.LookFields], object]
    experiment_report: Callable[[str], dict]
    end_experiment: Callable[[str], object]


PLOT = {"width": 640, "height": 220, "left": 56, "bottom": 24, "top": 8, "right": 8}
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04", "#db2777", "#65a30d")


def experiment_plot(looks: list[dict], variants: list[str]) -> dict:
    """The metric per variant at each look, with its interval as a band, as SVG coordinates."""
    width, height = PLOT["width"], PLOT["height"]
    x0, x1, y0, y1 = PLOT["left"], width - PLOT["right"], height - PLOT["bottom"], PLOT["top"]
    times = sorted({look["at"] for look in looks})
    values = [v for look in looks for v in (look["mean"], look["low"], look["high"]) if v is not None]
    if not times or not values:
        return {"lines": [], "ticks": [], **PLOT}
    low, high = max(0.0, min(values)), max(values) or 1.0
    span_t, span_v = (times[-1] - times[0]) or 1.0, (high - low) or 1.0
    x = lambda t: x0 + (t - times[0]) / span_t * (x1 - x0)  # noqa: E731
    y = lambda v: y0 - (min(max(v, low), high) - low) / span_v * (y0 - y1)  # noqa: E731
    lines = []
    for i, name in enumerate(variants):
        mine = sorted((look for look in looks if look["variant"] == name), key=lambda look: look["at"])
        banded = [look for look in mine if look["low"] is not None]
        band = [f"{x(look['at']):.1f},{y(look['high']):.1f}" for look in banded] + \
            [f"{x(look['at']):.1f},{y(look['low']):.1f}" for look in reversed(banded)]
        dots = [(round(x(look["at"]), 1), round(y(look["mean"]), 1)) for look in mine]
        lines.append({"name": name, "colour": COLOURS[i % len(COLOURS)], "band": " ".join(band), "dots": dots,
                      "points": " ".join(f"{a},{b}" for a, b in dots)})
    ticks = [{"y": y(v), "label": f"{v:.4g}"} for v in np.linspace(low, high, 4)]
    days = [{"x": x(t), "label": _when(t)[:10]} for t in (times[0], times[-1])]
    return {"lines": lines, "ticks": ticks, "days": days, **PLOT}


def path_graph(item: Recommendation) -> dict:
    """The item's first path as cytoscape elements."""
    nodes, edges = [], []
    if not item.paths:
        return {"nodes": nodes, "edges": edges}
    path = item.paths[0]
    for i, step in enumerate(path.nodes):
        nodes.append({"id": f"{i}:{step.label}:{step.id}", "label": step.name, "kind": step.label})
        if i:
            edges.append({"source": nodes[i - 1]["id"], "target": nodes[i]["id"], "label": path.relationships[i - 1],
                          "weight": 1})
    return {"nodes": nodes, "edges": edges}


def _shown(items: list[Recommendation]) -> list[dict]:
    return [{"product_id": r.product_id, "name": r.name, "category": r.category, "reason": r.reason, "rules": r.rules,
             "exploration": r.exploration, "graph": path_graph(r)} for r in items]


def _when(ts: float) -> str:
    moment = shown_time(ts)
    return moment.strftime("%Y-%m-%d %H:%M") if isinstance(moment, datetime) else f"{moment} (epoch seconds)"


def add_console(app: FastAPI, store: GraphStore, engine: Engine, model: Callable[[], str | None], actions: Actions,
                sessions: ConsoleSessions, sold: Callable[[], dict]) -> None:
    """The console's routes, on `app` itself (so that `security.Gate` sees each route's scope)."""
    read = {"openapi_extra": scope("read"), "include_in_schema": False}
    personal = {"openapi_extra": scope("personal"), "include_in_schema": False}
    admin = {"openapi_extra": scope("admin"), "include_in_schema": False}
    public = {"include_in_schema": False}

    def page(request: Request, name: str, title: str, status: int = 200, **context) -> HTMLResponse:
        session = getattr(request.state, "console", None)
        scopes = session.scopes if session is not None else frozenset()
        return templates.TemplateResponse(
            request, name, {"title": title, "csrf": session.csrf if session is not None else None,
                            "can": lambda needed: allows(scopes, needed), **context}, status_code=status)

    @app.get("/console/login", **public)
    def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", "Sign in")

    @app.post("/console/login", **public)
    def login(request: Request, key: Annotated[str, Form()]) -> Response:
        opened = sessions.open(key)
        if opened is None:
            return page(request, "login.html", "Sign in", 401, error="That key is not one of the API keys in force.")
        earlier = request.cookies.get(sessions.cookie)
        if earlier:
            sessions.close(earlier)
        response = RedirectResponse(CONSOLE, status_code=303)
        sessions.set_cookie(response, opened[0], request.url.scheme == "https")
        return response

    @app.post("/console/logout", **public)
    def logout(request: Request) -> Response:
        """Ends the session in the store (every worker refuses it from now on)."""
        token = request.cookies.get(sessions.cookie)
        if token:
            sessions.close(token)
        response = RedirectResponse(f"{CONSOLE}/login", status_code=303)
        sessions.clear_cookie(response, request.url.scheme == "https")
        return response

    @app.get("/console", **read)
    def home(request: Request) -> HTMLResponse:
        return page(request, "home.html", "Find a shopper or a product")

    @app.get("/console/find", **read)
    def find(request: Request, shopper: str = "", product: str = "") -> Response:
        if shopper.strip():
            return RedirectResponse(f"/console/shoppers/{quote(shopper.strip(), safe='')}", status_code=303)
        if product.strip():
            return RedirectResponse(f"/console/products/{quote(product.strip(), safe='')}", status_code=303)
        return page(request, "home.html", "Find a shopper or a product", 422, error="Give a shopper or a product id.")

    @app.get("/console/shoppers/{shopper_id:id}", **personal)
    def shopper(request: Request, shopper_id: str) -> HTMLResponse:
        try:
            home_location = store.get("shoppers", shopper_id).home_location
        except UnknownNode:
            return page(request, "home.html", "Find a shopper or a product", 404, error=f"No shopper {shopper_id!r}.")
        events = store.events(shopper_id=shopper_id, limit=500)
        cards = engine.graph.cards({e.product_id for e in events})
        journey: dict[str, dict] = {}
        for e in events:
            s = journey.setdefault(e.session_id, {"id": e.session_id, "events": [], "gift": False, "location": e.location,
                                                  "started": _when(e.ts)})
            s["gift"] |= e.gift
            s["events"].append({"type": e.type, "product_id": e.product_id,
                                "name": cards[e.product_id].name if e.product_id in cards else e.product_id})
        for s in journey.values():
            s["travel"] = bool(s["location"] and home_location and s["location"] != home_location)
        answer = engine.for_shopper(shopper_id, Ask(k=10), kind=None)  # a preview: not shown to them, not kept
        now = engine.clock()
        rules = [r.name or r.id for r in store.rules() if r.shopper_id in (None, shopper_id) and r.active(now)]
        return page(request, "shopper.html", f"Shopper {shopper_id}", home=home_location,
                    sessions=list(reversed(journey.values())), items=_shown(answer.items),
                    short_because=answer.short_because, rules=rules, model=model(),
                    policies=engine.policies_in_force(shopper_id))

    @app.get("/console/products/{product_id:id}", **read)
    def product(request: Request, product_id: str) -> HTMLResponse:
        try:
            found = schemas.ProductOut.of(store.get("products", product_id))
        except UnknownNode:
            return page(request, "home.html", "Find a shopper or a product", 404, error=f"No product {product_id!r}.")
        looks = [schemas.LookOut.of(store.get("looks", i)) for i in store.look_ids(product_id, 50, 0)]
        answer = engine.complete_the_look(product_id, Ask(k=10), kind=None)
        return page(request, "product.html", found.name, product=found, looks=looks, items=_shown(answer.items),
                    short_because=answer.short_because)

    def listed_rules() -> list[dict]:
        return [{**{n: getattr(r, n) for n in Rule.__dataclass_fields__}, "products": len(engine.merch.members(r.id)),
                 "window": " – ".join(_when(t) if t is not None else "…" for t in (r.starts_at, r.ends_at))
                 if (r.starts_at, r.ends_at) != (None, None) else "always"}
                for r in store.rules()]

    def rules_table(request: Request, status: int = 200, error: str | None = None) -> HTMLResponse:
        return page(request, "_rules_table.html", "Rules", status, rules=listed_rules(), error=error)

    @app.get("/console/rules", **admin)  # as GET /rules: per-shopper rules name shoppers
    def rules(request: Request, edit: str = "") -> HTMLResponse:
        listed = listed_rules()
        editing = next((r for r in listed if r["id"] == edit), None)
        return page(request, "rules.html", "Business rules", rules=listed, editing=editing)

    @app.post("/console/rules", **admin)
    async def create_rule(request: Request) -> HTMLResponse:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str) and v.strip() != ""}
        replace = form.pop("replace", None) is not None
        form.pop("csrf_token", None)  # checked by security.Gate
        try:
            await run_in_threadpool(actions.create_rule, schemas.RuleIn(**form), replace)  # a store write: off the loop
        except (ValidationError, RequestValidationError) as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"] if p not in ("body",))
            return rules_table(request, 422, f"{where or 'rule'}: {first['msg']}")
        except AlreadyExists as err:
            return rules_table(request, 409, str(err))
        return rules_table(request)

    @app.delete("/console/rules/{rule_id:id}", **admin)
    def delete_rule(request: Request, rule_id: str) -> HTMLResponse:
        try:
            actions.delete_rule(rule_id)
        except UnknownNode as err:
            return rules_table(request, 404, str(err))
        return rules_table(request)

    @app.get("/console/looks/edit", **read)
    def look_form(request: Request, look_id: str = "") -> HTMLResponse:
        look = None
        if look_id:
            try:
                look = schemas.LookOut.of(store.get("looks", look_id))
            except UnknownNode:
                return page(request, "look_form.html", "Looks", 404, error=f"No look {look_id!r}.")
        return page(request, "look_form.html", f"Look {look.name}" if look else "A new look", look=look)

    @app.post("/console/looks/edit", **admin)
    def save_look(request: Request, id: Annotated[str, Form()], name: Annotated[str, Form()],
                  product_ids: Annotated[str, Form()]) -> Response:
        try:
            fields = schemas.LookFields(name=name, product_ids=product_ids.replace(",", " ").split())
            actions.save_look(id.strip(), fields)
        except (ValidationError, RequestValidationError) as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"] if p != "body")
            return page(request, "look_form.html", "Looks", 422, error=f"{where}: {first['msg']}", look=None)
        return RedirectResponse(f"/console/looks/edit?look_id={quote(id.strip(), safe='')}", status_code=303)

    @app.get("/console/sold", **admin)
    def what_sold(request: Request) -> HTMLResponse:
        """`GET /metrics/recommendations` for the last 7 days, as tables."""
        figures = sold()
        days = [(shown_time(b["start"]), b) for b in figures["buckets"]]
        return page(request, "sold.html", "What the recommendations sold", figures=figures, days=days,
                    since=shown_time(figures["since"]), until=shown_time(figures["until"]),
                    window_hours=figures["window_seconds"] / 3600)

    @app.get("/console/experiments", **admin)
    def experiments(request: Request) -> HTMLResponse:
        now = engine.clock()
        listed = [{"id": e.id, "name": e.name, "lists": ", ".join(e.lists), "unit": e.unit, "metric": e.metric,
                   "variants": ", ".join(f"{v.name} ({v.share:.0%})" for v in e.variants),
                   "window": f"{_when(e.starts_at)} – {_when(e.ends_at) if e.ends_at is not None else '…'}",
                   "status": "scheduled" if now < e.starts_at else "running" if e.active(now) else "ended"}
                  for e in engine.experiments.all()]
        return page(request, "experiment_list.html", "Experiments", experiments=listed)

    @app.get("/console/experiments/{experiment_id}", **admin)
    def experiment(request: Request, experiment_id: str) -> HTMLResponse:
        found = next((e for e in store.experiments() if e.id == experiment_id), None)
        if found is None:
            return page(request, "home.html", "Find a shopper or a product", 404, error=f"No experiment {experiment_id!r}.")
        report = actions.experiment_report(experiment_id)
        names = [v.name for v in found.variants]
        own_rules: dict[str, list[str]] = {}
        for rule in store.rules():  # the rule sets made for this experiment's variants
            if rule.variant and rule.variant.startswith(f"{found.id}/"):
                own_rules.setdefault(rule.variant.split("/", 1)[1], []).append(rule.name or rule.id)
        return page(request, "experiment.html", f"Experiment {found.name}", experiment=found, report=report,
                    plot=experiment_plot(report["looks"], names), since=_when(report["since"]), until=_when(report["until"]),
                    own_rules=own_rules)

    @app.post("/console/experiments/{experiment_id}/end", **admin)
    def end_experiment(experiment_id: str) -> Response:
        actions.end_experiment(experiment_id)
        return RedirectResponse(f"/console/experiments/{quote(experiment_id, safe='')}", status_code=303)

    @app.get("/console/map", **read)
    def complement_map(request: Request) -> HTMLResponse:
        # The store's GOES_WITH (each pair both ways: shown once), not a walk over every look.
        top = sorted((row for row in store.iter_goes_with() if row[0] < row[1]), key=lambda r: (-r[2], r[0], r[1]))[:80]
        names = engine.graph.categories.names
        categories = sorted({c for a, b, _, _ in top for c in (a, b)})
        graph = {"nodes": [{"id": c, "label": names.get(c, c), "kind": "Category"} for c in categories],
                 "edges": [{"source": a, "target": b, "label": str(n), "weight": n} for a, b, n, _ in top]}
        return page(request, "map.html", "Complement map", graph=graph,
                    pairs=[(names.get(a, a), names.get(b, b), n, lift) for a, b, n, lift in top])

