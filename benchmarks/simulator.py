"""Simulated shoppers with known tastes who browse, click and buy through the API.

The shop is the seeded demo store (`lookgraph demo-data`): every fashion product has a
department and a style. A simulated shopper is new, has a department and a style (drawn as the
demo draws its shoppers' tastes), and visits once:

1. views two products of their department and style (`POST /events`, in a new session);
2. asks for their feed (`GET /shoppers/{id}/recommendations?k=10`);
3. looks down the list: slot i is examined with probability 1 / log2(i + 2) (position bias),
   an examined item is clicked with probability 0.5 when it is of their department and style,
   0.15 of their department only (0.3 for the one shopper in five who seeks variety), 0.02
   otherwise, and a clicked item is bought with probability
   `buy` times the variant's true uplift (`uplift`, by the answer's variant: the truth the
   experiment is to find); clicks and purchases go back with the list's recommendation id.

It runs the real app (`create_app`: routes, engine, store, impression log) in process through
FastAPI's TestClient, with a clock it moves: days pass in seconds, and every request sees the
simulated time.
"""

from __future__ import annotations

import math
import random
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lookgraph.api.app import create_app
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.settings import Settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

KEY = "simulator-admin-key-0123456789abcdef"
HEADERS = {"X-API-Key": KEY}
DEPARTMENTS, DEPARTMENT_SHARE = ("women", "men"), 0.6
STYLES = ("casual", "classic", "sporty", "boho", "streetwear", "evening")
CLICK = {"taste": 0.5, "department": 0.15, "variety": 0.3, "other": 0.02}
VARIETY_SEEKERS = 0.2


def demo_home(prefix: str, shoppers: int = 300) -> tuple[Path, Path]:
    """A new working folder with the seeded 2,000-product demo store loaded into an embedded
    store: (the folder, the store's home)."""
    from measure import lookgraph

    work = Path(tempfile.mkdtemp(prefix=f"lookgraph-{prefix}-"))
    home = work / "home"
    lookgraph("demo-data", str(work / "demo"), "--products", "2000", "--shoppers", str(shoppers), "--events", "20000",
              home=home)
    lookgraph("load", str(work / "demo"), home=home)
    return work, home


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Visit:
    shopper: str
    variant: str | None
    shown: int
    clicks: int
    purchases: int
    expected: float
    """The purchases the list shown was worth to this shopper, in expectation (the click model's)."""


class Shop:
    """The app over a loaded demo store, with its catalogue's tastes and a simulated clock."""

    def __init__(self, home: Path, start: float, seed: int, served_model: bool = False, prefix: str = "sim",
                 **settings):
        """`served_model`: serve the latest trained artifact under `home` (else graph walks alone);
        `prefix`: the simulated shoppers' ids start with it (new shoppers, never seen before)."""
        self.store = SQLiteGraphStore(home / "graph.db")
        self.clock = Clock(start)
        self.app = create_app(Settings(home=home, api_keys=f"{KEY}:admin", crowd_refresh_seconds=0, **settings),
                              self.store, vectors=True if served_model else None, clock=self.clock)
        self.client = TestClient(self.app).__enter__()  # one event loop and thread pool for the whole run
        self.taste: dict[str, tuple[str, str]] = {}
        self.by_taste: dict[tuple[str, str], list[str]] = {}
        for product in self.store.iter_records("products"):
            parts = (product.category_id or "").split("/")
            style = next((a.value for a in product.attributes if a.kind == "style"), None)
            if parts[0] == "fashion" and len(parts) > 1 and style:
                self.taste[product.id] = (parts[1], style)
                self.by_taste.setdefault((parts[1], style), []).append(product.id)
        self.rng = random.Random(seed)
        self.visits, self.prefix = 0, prefix

    def post(self, path: str, body: dict) -> dict:
        answer = self.client.post(path, json=body, headers=HEADERS)
        if answer.status_code >= 300:
            raise RuntimeError(f"POST {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def get(self, path: str) -> dict:
        answer = self.client.get(path, headers=HEADERS)
        if answer.status_code >= 300:
            raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def visit(self, buy: float, uplift: Callable[[str | None], float], k: int = 10) -> Visit:
        """One new shopper's visit (see the module's docstring), at the clock's time."""
        rng, n = self.rng, self.visits
        self.visits += 1
        shopper, session = f"{self.prefix}-{n:07d}", f"{self.prefix}-session-{n:07d}"
        department = "women" if rng.random() < DEPARTMENT_SHARE else "men"
        style = rng.choice(STYLES)
        variety = rng.random() < VARIETY_SEEKERS
        viewed = rng.sample(self.by_taste[(department, style)], 2)
        self.post("/events", {"events": [
            {"event_id": f"{shopper}-view-{i}", "session_id": session, "product_id": pid, "type": "view",
             "shopper_id": shopper, "ts": _iso(self.clock.now + i)} for i, pid in enumerate(viewed)]})
        self.clock.now += 5
        answer = self.get(f"/shoppers/{shopper}/recommendations?k={k}&session_id={session}")
        events, clicks, purchases, expected = [], 0, 0, 0.0
        buys = buy * uplift(answer["variant"])
        for i, item in enumerate(answer["items"]):
            taste = self.taste.get(item["product_id"])
            p = CLICK["taste"] if taste == (department, style) else \
                (CLICK["variety"] if variety else CLICK["department"]) if taste and taste[0] == department else CLICK["other"]
            examined = 1.0 / math.log2(i + 2)
            expected += examined * p * buys
            if rng.random() >= examined or rng.random() >= p:
                continue
            clicks += 1
            common = {"session_id": session, "product_id": item["product_id"], "shopper_id": shopper,
                      "recommendation_id": answer["recommendation_id"]}
            events.append({**common, "event_id": f"{shopper}-click-{i}", "type": "view", "ts": _iso(self.clock.now + 10 + i)})
            if rng.random() < buys:
                purchases += 1
                events.append({**common, "event_id": f"{shopper}-buy-{i}", "type": "purchase",
                               "ts": _iso(self.clock.now + 60 + i)})
        if events:
            self.post("/events", {"events": events})
        return Visit(shopper, answer["variant"], len(answer["items"]), clicks, purchases, expected)

    def close(self) -> None:
        self.client.__exit__(None, None, None)  # the server's shutdown: what is queued is written
        self.store.close()


def _iso(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat()
