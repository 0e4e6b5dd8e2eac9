"""A small, hand-built shop for engine and API tests, with a clock the tests move.

Ann lives in London and dresses casual: jeans, boots, totes. The crowd teaches the engine that
toilet seats are bought once and coffee every 20 days.
"""

from __future__ import annotations

from lookgraph.graph.model import Attribute, Category, Event, Look, Product, Shopper
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.graph.store import GraphStore
from lookgraph.loaders.native import NativeSource, NativeWriter
from lookgraph.loaders.pipeline import load

DAY = 86_400.0
NOW = 1_790_000_000.0


class Clock:
    def __init__(self, now: float = NOW):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _categories():
    tree = {"fashion": None, "women": "fashion", "men": "fashion", "home": None,
            "women/bottoms": "women", "women/shoes": "women", "women/bags": "women", "women/accessories": "women",
            "men/tops": "men", "home/durables": "home", "home/consumables": "home",
            "women/bottoms/jeans": "women/bottoms", "women/shoes/boots": "women/shoes",
            "women/bags/totes": "women/bags", "women/accessories/belts": "women/accessories",
            "men/tops/shirts": "men/tops", "men/shoes": "men", "men/shoes/loafers": "men/shoes", "home/durables/toilet-seats": "home/durables",
            "home/consumables/coffee": "home/consumables"}
    return [Category(cid, cid.rsplit("/", 1)[-1].title(), parent) for cid, parent in tree.items()]


CASUAL = (Attribute("style", "casual"),)
PRODUCTS = [
    Product("jeans-1", "Slim jeans", "women/bottoms/jeans", 60, CASUAL),
    Product("jeans-2", "Wide jeans", "women/bottoms/jeans", 70, CASUAL),
    Product("boots-1", "Chelsea boots", "women/shoes/boots", 120, CASUAL),
    Product("boots-2", "Ankle boots", "women/shoes/boots", 110, ()),
    Product("tote-1", "Canvas tote", "women/bags/totes", 40, CASUAL),
    Product("belt-1", "Leather belt", "women/accessories/belts", 30, ()),
    Product("shirt-1", "Oxford shirt", "men/tops/shirts", 50, ()),
    Product("shirt-2", "Flannel shirt", "men/tops/shirts", 55, ()),
    Product("loafers-1", "Suede loafers", "men/shoes/loafers", 90, ()),
    Product("seat-1", "Oak toilet seat", "home/durables/toilet-seats", 45, ()),
    Product("seat-2", "Soft-close toilet seat", "home/durables/toilet-seats", 55, ()),
    Product("coffee-1", "House coffee", "home/consumables/coffee", 9, ()),
]
LOOKS = [
    Look("weekend-denim", "weekend denim", ("jeans-1", "boots-1", "tote-1")),
    Look("city-walk", "city walk", ("jeans-2", "boots-2", "belt-1")),
    Look("office-men", "office men", ("shirt-1", "loafers-1")),
]


def crowd_events() -> list[Event]:
    events = []
    for i in range(4):
        shopper = f"crowd-{i}"
        t = NOW - 200 * DAY + i * DAY
        events.append(Event(f"seat/{i}", f"crowd-{i}-seat", "seat-1", "purchase", t, shopper, "London"))
        for n in range(5):  # coffee every 20 days
            events.append(Event(f"coffee/{i}/{n}", f"crowd-{i}-coffee-{n}", "coffee-1", "purchase",
                                t + n * 20 * DAY, shopper, "London"))
        events.append(Event(f"view/{i}", f"crowd-{i}-jeans", "jeans-1", "view", t, shopper, "London"))
        events.append(Event(f"view2/{i}", f"crowd-{i}-jeans", "belt-1", "view", t + 60, shopper, "London"))
    # Recent carts across groups: what is trending now.
    for n, product in enumerate(("boots-2", "tote-1", "shirt-2", "loafers-1", "belt-1")):
        events.append(Event(f"trend/{n}", f"crowd-trend-{n}", product, "cart", NOW - 5 * DAY + n, "crowd-3", "Leeds"))
    # Ann's own history: four casual sessions, so her profile is clear.
    for n in range(4):
        t = NOW - (40 - n) * DAY
        events.append(Event(f"ann/{n}", f"ann-{n}", "jeans-2", "view", t, "ann", "London"))
    return events


def build(tmp_path, store: GraphStore | None = None) -> GraphStore:
    """The shop, loaded into `store` (an empty one) or into a new embedded store."""
    out = NativeWriter(tmp_path / "shop")
    out.write("categories", _categories())
    out.write("products", PRODUCTS)
    out.write("shoppers", [Shopper("ann", "London"), Shopper("bob", "Leeds"), Shopper("cat", "Leeds")]
              + [Shopper(f"crowd-{i}", "London") for i in range(4)])
    out.write("events", crowd_events())
    out.write("looks", LOOKS)
    store = store or SQLiteGraphStore(tmp_path / "graph.db")
    load(NativeSource(tmp_path / "shop"), store)
    return store
