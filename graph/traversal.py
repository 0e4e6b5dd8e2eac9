"""The in-memory index the recommendation engine walks, built from a `GraphStore`.

The store stays the record; this index holds what the engine traverses on every request,
as positions and small arrays:

- product -> leaf category, category -> parent (and each leaf's top-level group);
- product -> looks that include it, look -> its products (in order);
- product -> its style and occasion attributes, attribute -> products (most popular first);
- the wisdom of the crowd: for each product, the products most often in the same sessions;
  popularity overall, per category group and per location (recent carts and purchases);
- per leaf category, how often a buyer buys again and after how long (learned repurchase
  behaviour, for the one-time-purchase policy).

A shopper's own events are not here: the engine reads them from the store on every request,
which is what makes an event visible in the next recommendation. Products and looks added
through the API are added to the index at once.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from .model import Look, Product
from .store import GraphStore

ATTRIBUTE_KINDS = ("style", "occasion")
"""Attributes that link items across categories (a shared brand or colour says less)."""
CROWD_NEIGHBOURS = 50
TRENDING_DAYS = 30


@dataclass
class Repurchase:
    """Learnt from purchases in a leaf category: how many buyers bought again, and after how long."""

    buyers: int = 0
    repeat_buyers: int = 0
    cycle_days: float | None = None

    @property
    def rate(self) -> float:
        return self.repeat_buyers / self.buyers if self.buyers else 0.0


@dataclass
class GraphIndex:
    product_ids: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    category: list[str | None] = field(default_factory=list)
    category_names: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    looks: dict[str, Look] = field(default_factory=dict)
    product_looks: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    product_attributes: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    attribute_products: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    crowd: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    popularity: np.ndarray = field(default_factory=lambda: np.zeros(0))
    trending_by_group: dict[str, list[int]] = field(default_factory=dict)
    trending_by_location: dict[str, list[int]] = field(default_factory=dict)
    repurchase: dict[str, Repurchase] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _groups: dict[str | None, str | None] = field(default_factory=dict, repr=False)

    # -- lookups ---------------------------------------------------------------------------
    def group(self, category: str | None) -> str | None:
        """The category just below the root of the tree (e.g. `fashion/women/shoes` for a leaf
        `.../boots`): two items of one group are 'more of the same'."""
        found = self._groups.get(category, False)
        if found is not False:
            return found
        if category is None:
            return None
        chain = [category]
        while (up := self.parent.get(chain[-1])) is not None:
            chain.append(up)
        self._groups[category] = group = chain[-3] if len(chain) >= 3 else chain[0]
        return group

    def product(self, store: GraphStore, product_id: str) -> int:
        """Position of a product, reading it from the store if it was added since the build."""
        found = self.position.get(product_id)
        if found is None:
            self.add_product(store.get("products", product_id))  # raises store.UnknownNode
            found = self.position[product_id]
        return found

    def look(self, store: GraphStore, look_id: str) -> Look:
        found = self.looks.get(look_id)
        if found is None:
            found = store.get("looks", look_id)
            self.add_look(found)
        return found

    # -- updates (also used while building) ------------------------------------------------
    def add_product(self, product: Product) -> int:
        with self.lock:
            p = self.position.get(product.id)
            if p is None:
                p = self.position[product.id] = len(self.product_ids)
                self.product_ids.append(product.id)
                self.names.append(product.name)
                self.category.append(product.category_id)
                self.popularity = np.append(self.popularity, 0.0)
            else:
                self.names[p], self.category[p] = product.name, product.category_id
            for key in self.product_attributes.pop(p, []):
                self.attribute_products[key].remove(p)
            for attribute in product.attributes:
                if attribute.kind in ATTRIBUTE_KINDS:
                    self.product_attributes[p].append(attribute.key)
                    self.attribute_products[attribute.key].append(p)
            return p

    def add_look(self, look: Look) -> None:
        with self.lock:
            old = self.looks.get(look.id)
            for pid in old.product_ids if old else ():
                self.product_looks[self.position[pid]].remove(look.id)
            self.looks[look.id] = look
            for pid in look.product_ids:
                self.product_looks[self.position[pid]].append(look.id)


def build_index(store: GraphStore, now: float | None = None) -> GraphIndex:
    """Build the index from every record of the store (streamed)."""
    index = GraphIndex()
    for category in store.iter_records("categories"):
        index.category_names[category.id] = category.name
        index.parent[category.id] = category.parent_id
    for product in store.iter_records("products"):
        index.add_product(product)
    n = len(index.product_ids)

    session_items: dict[str, set[int]] = defaultdict(set)
    purchases: dict[tuple[str, str], list[float]] = defaultdict(list)  # (shopper, leaf) -> times
    bought: list[tuple[int, float, float, str | None]] = []  # carts and purchases: (product, weight, ts, location)
    popularity = np.zeros(n)
    for event in store.iter_records("events"):
        if event.type == "dismiss":
            continue
        p = index.position[event.product_id]
        session_items[event.session_id].add(p)
        weight = 3.0 if event.type == "purchase" else 2.0 if event.type == "cart" else 1.0
        popularity[p] += weight
        if event.type != "view":
            bought.append((p, weight, event.ts, event.location))
        if event.type == "purchase" and event.shopper_id and index.category[p]:
            purchases[(event.shopper_id, index.category[p])].append(event.ts)
    index.popularity = popularity
    index.crowd = _co_occurrence(session_items, n)
    del session_items

    horizon = (now or max((b[2] for b in bought), default=0.0)) - TRENDING_DAYS * 86_400
    recent: Counter = Counter()
    by_location: dict[str, Counter] = defaultdict(Counter)
    for p, weight, ts, location in bought:
        if ts >= horizon:
            recent[p] += weight
            if location:
                by_location[location][p] += weight
    groups: dict[str, list[int]] = defaultdict(list)
    for p, _ in recent.most_common():
        groups[index.group(index.category[p]) or ""].append(p)
    index.trending_by_group = {g: ps[:100] for g, ps in groups.items()}
    index.trending_by_location = {loc: [p for p, _ in c.most_common(100)] for loc, c in by_location.items()}
    for products in index.attribute_products.values():
        products.sort(key=lambda p: -popularity[p])

    gaps: dict[str, list[float]] = defaultdict(list)
    for (_, leaf), times in purchases.items():
        stats = index.repurchase.setdefault(leaf, Repurchase())
        stats.buyers += 1
        times.sort()
        distinct = [t for i, t in enumerate(times) if i == 0 or t - times[i - 1] > 86_400]
        if len(distinct) > 1:
            stats.repeat_buyers += 1
            gaps[leaf].extend(np.diff(distinct) / 86_400)
    for leaf, values in gaps.items():
        index.repurchase[leaf].cycle_days = float(np.median(values))

    for look in store.iter_records("looks"):
        index.add_look(look)
    return index


def _co_occurrence(session_items: dict[str, set[int]], n: int, cap: int = 30) -> dict[int, list[tuple[int, int]]]:
    """For each product, up to CROWD_NEIGHBOURS products most often in the same sessions."""
    rows, cols = [], []
    for items in session_items.values():
        if 1 < len(items) <= cap:
            its = np.fromiter(items, dtype=np.int64)
            a, b = np.meshgrid(its, its)
            off = a != b
            rows.append(a[off])
            cols.append(b[off])
    if not rows:
        return {}
    keys, counts = np.unique(np.concatenate(rows) * n + np.concatenate(cols), return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((-counts, src))
    src, dst, counts = src[order], dst[order], counts[order]
    bounds = np.flatnonzero(np.diff(src)) + 1
    crowd = {}
    for s, d, c in zip(np.split(src, bounds), np.split(dst, bounds), np.split(counts, bounds)):
        crowd[int(s[0])] = list(zip(d[:CROWD_NEIGHBOURS].tolist(), c[:CROWD_NEIGHBOURS].tolist()))
    return crowd

