"""`MemoryTraversal`: the engine's walks over an index held in memory, built from a store.

The embedded store is a file on the same machine, so the walks are fastest as lookups in a
few dictionaries built once at start-up (streaming the store): product -> looks, product ->
style/occasion attributes -> products (most popular first), product -> the products most often
in its sessions, the crowd's statistics, and a vector index of the LookGNN product embeddings
(`vector_index.py`). Products and looks added through the API are added to the index at once;
events posted through the API reach the crowd's statistics (trending, repurchase) when they
are next recomputed, at most `STATISTICS_TTL` seconds later, as in Neo4j. The shopper's own
events are read from the store on every request. Sessions and popularity (the crowd's walks)
stay as they were at start-up.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .model import Event, Look, Product
from .store import GraphStore
from .traversal import (
    ATTRIBUTE_KINDS, CO_SESSIONS_SCANNED, STATISTICS_TTL, TRENDING_DAYS, TRENDING_PER_GROUP, AttributeHit,
    CategoryTree, CrowdHit, LookHit, ProductCard, Repurchase, Trending, Traversal, cycle_days,
)
from .vector_index import VectorIndex

CROWD_NEIGHBOURS = 50
MAX_SESSION_ITEMS = 30
"""Sessions with more distinct items than this say little about what goes together."""


def in_background(work: Callable[[], None]) -> None:
    threading.Thread(target=work, name="crowd-statistics", daemon=True).start()


class MemoryTraversal(Traversal):
    """`stats_ttl`, `clock`: the crowd's statistics are recomputed, when events came in through
    `events_added`, once they are `stats_ttl` seconds old; `spawn` runs the recomputation (in a
    background thread, so that no request waits the 0.7 s it takes at 1M events)."""

    def __init__(self, categories: CategoryTree, vectors=None, stats_ttl: float = STATISTICS_TTL,
                 clock: Callable[[], float] = time.monotonic, spawn: Callable[[Callable[[], None]], None] = in_background):
        self.categories = categories
        self._cards: dict[str, ProductCard] = {}
        self._looks: dict[str, Look] = {}
        self._product_looks: dict[str, list[str]] = defaultdict(list)
        self._product_attributes: dict[str, list[str]] = defaultdict(list)
        self._attribute_products: dict[str, list[str]] = defaultdict(list)
        self._popularity: Counter = Counter()
        self._crowd: dict[str, list[tuple[str, int]]] = {}
        self._trending = Trending()
        self._repurchase: dict[str, Repurchase] = {}
        # What the statistics are computed from: carts and purchases (product, weight, ts,
        # location), and each shopper's purchase times per product (dropped on erasure).
        self._bought: list[tuple[str, int, float, str | None]] = []
        self._purchases: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.stats_ttl, self.clock, self._spawn = stats_ttl, clock, spawn
        self._stats_at, self._stats_stale, self._refreshing = clock(), False, False
        self._lock = threading.Lock()
        self._vectors = VectorIndex(vectors.ids["product"], vectors.arrays["product"]) if vectors is not None else None

    # -- the walks -----------------------------------------------------------------------------
    def cards(self, product_ids: Iterable[str]) -> dict[str, ProductCard]:
        return {pid: card for pid in product_ids if (card := self._cards.get(pid)) is not None}

    def looks_with(self, anchors: Sequence[str], per_anchor: int = 10) -> list[LookHit]:
        return [LookHit(a, look.id, look.name, look.product_ids)
                for a in anchors for look in (self._looks[i] for i in self._product_looks.get(a, [])[:per_anchor])]

    def shared_attributes(self, anchors: Sequence[str], per_attribute: int = 8, across_groups: bool = True,
                          scanned: int = 80) -> list[AttributeHit]:
        hits, group = [], self.categories.group
        for a in anchors:
            home = group(self._cards[a].category) if a in self._cards else None
            for key in self._product_attributes.get(a, []):
                found = 0
                for q in self._attribute_products[key][: scanned + 1]:
                    if q != a and (not across_groups or group(self._cards[q].category) != home):
                        hits.append(AttributeHit(a, key, self._cards[q]))
                        found += 1
                        if found == per_attribute:
                            break
        return hits

    def co_sessions(self, anchors: Sequence[str], per_anchor: int = 20) -> list[CrowdHit]:
        return [CrowdHit(a, q, n) for a in anchors for q, n in self._crowd.get(a, [])[:per_anchor]]

    def nearest(self, vector: np.ndarray, k: int = 50) -> list[str]:
        return self._vectors.nearest(vector, k) if self._vectors is not None else []

    def trending(self) -> Trending:
        self._refresh_when_due()
        return self._trending

    def repurchase(self) -> dict[str, Repurchase]:
        self._refresh_when_due()
        return self._repurchase

    def product_count(self) -> int:
        return len(self._cards)

    # -- changes (also used while building) ----------------------------------------------------
    def product_added(self, product: Product) -> None:
        with self._lock:
            self._cards[product.id] = ProductCard(product.id, product.name, product.category_id)
            for key in self._product_attributes.pop(product.id, []):
                self._attribute_products[key].remove(product.id)
            for attribute in product.attributes:
                if attribute.kind in ATTRIBUTE_KINDS:
                    self._product_attributes[product.id].append(attribute.key)
                    self._insert_by_popularity(self._attribute_products[attribute.key], product.id)

    def look_added(self, look: Look) -> None:
        with self._lock:
            old = self._looks.get(look.id)
            for pid in old.product_ids if old else ():
                self._product_looks[pid].remove(look.id)
            self._looks[look.id] = look
            for pid in dict.fromkeys(look.product_ids):
                bisect.insort(self._product_looks[pid], look.id)

    def events_added(self, events: Sequence[Event]) -> None:
        with self._lock:
            for event in events:
                self._count(event)

    def shopper_erased(self, shopper_id: str) -> None:
        with self._lock:
            if self._purchases.pop(shopper_id, None):
                self._stats_stale = True

    def _count(self, event: Event) -> None:
        if event.type in ("cart", "purchase"):
            self._bought.append((event.product_id, 3 if event.type == "purchase" else 2, event.ts, event.location))
            self._stats_stale = True
        if event.type == "purchase" and event.shopper_id:
            self._purchases[event.shopper_id][event.product_id].append(event.ts)

    # -- the crowd's statistics ----------------------------------------------------------------
    def _refresh_when_due(self) -> None:
        due = lambda: self._stats_stale and not self._refreshing and self.clock() - self._stats_at >= self.stats_ttl  # noqa: E731
        if not due():  # read without the lock first: requests never wait on a snapshot being taken
            return
        with self._lock:
            if not due():
                return
            self._refreshing = True
        self._spawn(self.refresh_statistics)

    def refresh_statistics(self) -> None:
        """Recompute trending and repurchase from what was counted so far."""
        with self._lock:  # a snapshot: requests keep adding events meanwhile
            bought, cards = list(self._bought), dict(self._cards)
            purchases = {(shopper, pid): list(times) for shopper, products in self._purchases.items()
                         for pid, times in products.items()}
            self._stats_stale, self._refreshing = False, True
        done = False
        try:
            trending, repurchase = _trending(bought, cards, self.categories), _repurchase(purchases, cards)
            done = True
        finally:
            with self._lock:
                if done:
                    self._trending, self._repurchase = trending, repurchase
                self._stats_stale |= not done  # tried again after the interval
                self._stats_at, self._refreshing = self.clock(), False

    def _insert_by_popularity(self, products: list[str], pid: str) -> None:
        bisect.insort(products, pid, key=lambda q: (-self._popularity[q], q))

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, store: GraphStore, vectors=None, **options) -> MemoryTraversal:
        """Stream every record of the store into the index (`options`: see the class)."""
        index = cls(CategoryTree.of(store.iter_records("categories")), vectors, **options)
        session_items: dict[str, set[str]] = defaultdict(set)
        session_start: dict[str, float] = {}
        for event in store.iter_records("events"):
            if event.type == "dismiss":
                continue
            index._popularity[event.product_id] += 1
            session_items[event.session_id].add(event.product_id)
            session_start[event.session_id] = min(session_start.get(event.session_id, event.ts), event.ts)
            index._count(event)

        products = list(store.iter_records("products"))
        for product in products:
            index._cards[product.id] = ProductCard(product.id, product.name, product.category_id)
            for attribute in product.attributes:
                if attribute.kind in ATTRIBUTE_KINDS:
                    index._product_attributes[product.id].append(attribute.key)
                    index._attribute_products[attribute.key].append(product.id)
        for members in index._attribute_products.values():
            members.sort(key=lambda q: (-index._popularity[q], q))
        index._crowd = _co_sessions(session_items, session_start)
        for look in store.iter_records("looks"):
            index.look_added(look)
        index.refresh_statistics()
        return index


def _co_sessions(session_items: dict[str, set[str]], started: dict[str, float]) -> dict[str, list[tuple[str, int]]]:
    """For each product, the products most often in its newest `CO_SESSIONS_SCANNED` sessions
    of at most `MAX_SESSION_ITEMS` items (most sessions first, then by id)."""
    ids = sorted({p for items in session_items.values() for p in items})
    position = {p: i for i, p in enumerate(ids)}
    n = len(ids)
    # Each product keeps its newest sessions only, as the Cypher walk does.
    sessions_of: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for sid, items in session_items.items():
        for p in items:
            sessions_of[position[p]].append((started[sid], sid))
    rows, cols = [], []
    for a, sessions in sessions_of.items():
        sessions.sort(reverse=True)
        for _, sid in sessions[:CO_SESSIONS_SCANNED]:
            items = session_items[sid]
            if 1 < len(items) <= MAX_SESSION_ITEMS:
                others = np.fromiter((position[q] for q in items), dtype=np.int64)
                others = others[others != a]
                rows.append(np.full(len(others), a))
                cols.append(others)
    if not rows:
        return {}
    keys, counts = np.unique(np.concatenate(rows) * n + np.concatenate(cols), return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((dst, -counts, src))  # ids are sorted, so dst order is id order
    src, dst, counts = src[order], dst[order], counts[order]
    bounds = np.flatnonzero(np.diff(src)) + 1
    return {ids[int(s[0])]: [(ids[q], c) for q, c in zip(d[:CROWD_NEIGHBOURS].tolist(), k[:CROWD_NEIGHBOURS].tolist())]
            for s, d, k in zip(np.split(src, bounds), np.split(dst, bounds), np.split(counts, bounds))}


def _trending(bought, cards: dict[str, ProductCard], tree: CategoryTree) -> Trending:
    horizon = max((ts for _, _, ts, _ in bought), default=0.0) - TRENDING_DAYS * 86_400
    recent: Counter = Counter()
    by_location: dict[str, Counter] = defaultdict(Counter)
    for pid, weight, ts, location in bought:
        if ts >= horizon:
            recent[pid] += weight
            if location:
                by_location[location][pid] += weight
    ranked = lambda counts: sorted(counts, key=lambda p: (-counts[p], p))  # noqa: E731
    groups: dict[str, list[ProductCard]] = defaultdict(list)
    for pid in ranked(recent):
        group = groups[tree.group(cards[pid].category) or ""]
        if len(group) < TRENDING_PER_GROUP:
            group.append(cards[pid])
    return Trending(dict(groups), {loc: [cards[p] for p in ranked(c)[:TRENDING_PER_GROUP]] for loc, c in by_location.items()})


def _repurchase(purchases: dict[tuple[str, str], list[float]], cards: dict[str, ProductCard]) -> dict[str, Repurchase]:
    by_leaf: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (shopper, pid), times in purchases.items():
        if cards[pid].category:
            by_leaf[(shopper, cards[pid].category)].extend(times)
    stats: dict[str, Repurchase] = {}
    gaps: dict[str, list[float]] = defaultdict(list)
    for (_, leaf), times in by_leaf.items():
        times.sort()
        again = [b - a for a, b in zip(times, times[1:]) if b - a > 86_400]
        s = stats.setdefault(leaf, Repurchase())
        s.buyers += 1
        s.repeat_buyers += bool(again)
        gaps[leaf].extend(again)
    for leaf, s in stats.items():
        s.cycle_days = cycle_days(gaps[leaf])
    return stats
