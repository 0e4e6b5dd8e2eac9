"""`MemoryTraversal`: the engine's walks over an index held in memory, built from a store.

The embedded store is a file on the same machine, so the walks are fastest as lookups in an
index built once at start-up (streaming the store). Products are numbered; a product's looks,
its attributes and each attribute's products (most popular first) are kept in
dictionaries, its companions in the crowd's sessions (the store's BOUGHT_WITH) in flat arrays
(CSR), and the first few
products of an attribute outside each category group are remembered once asked for, so that
`walk` costs a few dictionary reads and array slices per anchor. The LookGNN product embeddings
sit in a vector index (`vector_index.py`).

Products and looks added through the API are added to the index at once; events posted
through the API reach the crowd's statistics (trending, repurchase) when they are next
recomputed, at most `STATISTICS_TTL` seconds later, as in Neo4j. The shopper's own events are
read from the store on every request. Popularity stays as it was at start-up (recounted on an
erasure); the crowd's companions are read again whenever the store's BOUGHT_WITH is
refreshed (`crowd_refreshed`, on the change the serving process polls for).
"""

from __future__ import annotations

import bisect
import itertools
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .model import Event, Look, Product
from .traversal import (
    ATTRIBUTE, CROWD, LOOK, STATISTICS_TTL, TRENDING_DAYS, TRENDING_PER_GROUP,
    AttributeHit, CategoryTree, CrowdHit, LookHit, ProductCard, Repurchase, Trending, Traversal, Walks, cycle_days,
    in_background, telling_attributes,
)
from .vector_index import VectorIndex

if TYPE_CHECKING:  # the store builds this index (`SQLiteGraphStore.traversal`); this module never imports it
    from .store import GraphStore

ANY_GROUP = object()
"""An attribute's products in any category group (`shared_attributes` within groups)."""


class MemoryTraversal(Traversal):
    """`stats_ttl`, `clock`: the crowd's statistics are recomputed, when events came in through
    `events_added`, once they are `stats_ttl` seconds old; `spawn` runs the recomputation (in a
    background thread, so that no request waits the 0.7 s it takes at 1M events)."""

    def __init__(self, categories: CategoryTree, vectors=None, stats_ttl: float = STATISTICS_TTL,
                 clock: Callable[[], float] = time.monotonic, spawn: Callable[[Callable[[], None]], None] = in_background):
        self.categories = categories
        self._cards: dict[str, ProductCard] = {}
        self._number: dict[str, int] = {}  # product id -> its row in the lists and arrays below
        self._ids: list[str] = []
        self._card_of: list[ProductCard] = []
        self._looks: dict[str, Look] = {}
        self._product_looks: dict[str, list[str]] = defaultdict(list)
        self._product_attributes: dict[str, list[str]] = defaultdict(list)
        self._attribute_products: dict[str, list[str]] = defaultdict(list)
        self._popularity: Counter = Counter()
        # The crowd: product n's neighbours are _crowd_products[_crowd_start[n]:_crowd_start[n + 1]].
        self._crowd_start, self._crowd_products, self._crowd_sessions = (np.zeros(1, np.int64), np.zeros(0, np.int32),
                                                                         np.zeros(0, np.int32))
        # (attribute, category group left out, how many, among how many) -> product numbers.
        self._attribute_tops: dict[tuple, tuple[int, ...]] = {}
        self._generation = 0  # bumped by every product added: remembered tops are then forgotten
        self._trending = Trending()
        self._repurchase: dict[str, Repurchase] = {}
        # The statistics are computed from the store's carts and purchases (`_store`), not from
        # events kept in memory: memory does not grow with what is ingested, and an erased
        # shopper's purchases are gone from the next refresh.
        self._store: GraphStore | None = None
        self.stats_ttl, self.clock, self._spawn = stats_ttl, clock, spawn
        self._stats_at, self._stats_stale, self._refreshing = clock(), False, False
        self._lock = threading.Lock()
        self._vectors, self._vector_source = None, vectors  # the index is built when first asked (`nearest`)

    # -- the walks -----------------------------------------------------------------------------
    def cards(self, product_ids: Iterable[str]) -> dict[str, ProductCard]:
        return {pid: card for pid in product_ids if (card := self._cards.get(pid)) is not None}

    def looks_with(self, anchors: Sequence[str], per_anchor: int = 10) -> list[LookHit]:
        return [LookHit(a, look.id, look.name, look.product_ids, look.mined)
                for a in anchors for look in (self._looks[i] for i in self._product_looks.get(a, [])[:per_anchor])]

    def shared_attributes(self, anchors: Sequence[str], per_attribute: int = 8, across_groups: bool = True,
                          scanned: int = 80) -> list[AttributeHit]:
        return [AttributeHit(a, key, self._card_of[q], weight) for a in anchors
                for key, weight, found in self._shared(a, per_attribute, across_groups, scanned) for q in found]

    def co_sessions(self, anchors: Sequence[str], per_anchor: int = 20) -> list[CrowdHit]:
        hits = []
        for a in anchors:
            products, sessions = self._crowd_of(a, per_anchor)
            hits += [CrowdHit(a, self._ids[q], n) for q, n in zip(products.tolist(), sessions.tolist())]
        return hits

    def walk(self, anchors: Sequence[str], looks_per_anchor: int = 10, per_attribute: int = 8,
             crowd_per_anchor: int = 20, across_groups: bool = True) -> Walks:
        """As `Traversal.walk` (a test holds them equal), on product numbers: no hit objects."""
        anchor, way, via, product = [], [], [], []

        def reached(i: int, how: int, through: int, products: list[int]) -> None:
            anchor.extend([i] * len(products))
            way.extend([how] * len(products))
            via.extend([through] * len(products))
            product.extend(products)

        looks = self.looks_with(anchors, looks_per_anchor)
        position = {a: i for i, a in enumerate(anchors)}
        for i, hit in enumerate(looks):
            reached(position[hit.anchor], LOOK, i, [q for pid in hit.product_ids
                                                     if pid != hit.anchor and (q := self._number.get(pid)) is not None])
        attributes: dict[str, int] = {}
        weights: list[float] = []
        for i, a in enumerate(anchors):
            for key, weight, found in self._shared(a, per_attribute, across_groups):
                if found:
                    if key not in attributes:
                        attributes[key] = len(attributes)
                        weights.append(weight)
                    reached(i, ATTRIBUTE, attributes[key], found)
        crowd = [(i, *self._crowd_of(a, crowd_per_anchor)) for i, a in enumerate(anchors)]
        products = np.concatenate([np.array(product, dtype=np.int64), *(p for _, p, _ in crowd)]).astype(np.int64)
        # Candidates numbered in the order first reached, as `Walks.of` numbers them.
        distinct, first, inverse = np.unique(products, return_index=True, return_inverse=True)
        order = np.argsort(first)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        return Walks(np.concatenate([np.array(anchor, dtype=np.int64), *(np.full(len(p), i) for i, p, _ in crowd)]),
                     np.concatenate([np.array(way, dtype=np.int64), np.full(len(products) - len(product), CROWD)]),
                     np.concatenate([np.array(via, dtype=np.int64), *(n for _, _, n in crowd)]).astype(np.int64),
                     rank[inverse], [self._card_of[q] for q in distinct[order].tolist()], looks, list(attributes),
                     weights)

    def _shared(self, a: str, per_attribute: int, across_groups: bool, scanned: int = 80):
        """(attribute, how telling, product numbers) for each of product `a`'s `telling_attributes`."""
        if not (keys := self._product_attributes.get(a)):
            return
        mine = self._number[a]
        leave_out = self.categories.group(self._cards[a].category) if across_groups else ANY_GROUP
        held = [(key, len(self._attribute_products[key])) for key in keys]
        for key, weight in telling_attributes(held, len(self._cards)):
            yield key, weight, [q for q in self._attribute_top(key, leave_out, per_attribute, scanned)
                                if q != mine][:per_attribute]

    def _attribute_top(self, key: str, leave_out, per_attribute: int, scanned: int) -> tuple[int, ...]:
        """The first `per_attribute + 1` products (enough when one is the anchor) among the
        attribute's `scanned + 1` most popular, outside the category group `leave_out`."""
        asked = (key, leave_out, per_attribute, scanned)
        top = self._attribute_tops.get(asked)
        if top is None:
            generation, group, cards = self._generation, self.categories.group, self._cards
            top = tuple(itertools.islice((self._number[q] for q in self._attribute_products[key][: scanned + 1]
                                          if leave_out is ANY_GROUP or group(cards[q].category) != leave_out),
                                         per_attribute + 1))
            with self._lock:
                if generation == self._generation:  # no product came in meanwhile
                    self._attribute_tops[asked] = top
        return top

    def _crowd_of(self, product_id: str, most: int) -> tuple[np.ndarray, np.ndarray]:
        n = self._number.get(product_id)
        if n is None or n + 1 >= len(self._crowd_start):  # unknown, or added since start-up
            return self._crowd_products[:0], self._crowd_sessions[:0]
        start = int(self._crowd_start[n])
        end = min(int(self._crowd_start[n + 1]), start + most)
        return self._crowd_products[start:end], self._crowd_sessions[start:end]

    def use_vectors(self, vectors) -> None:
        # One assignment: a search in flight keeps the old index. No request of the engine
        # searches it, so it is built only when first asked, never at start or reload.
        with self._lock:
            self._vectors, self._vector_source = None, vectors

    def nearest(self, vector: np.ndarray, k: int = 50) -> list[str]:
        index, source = self._vectors, self._vector_source
        if index is None and source is not None:
            index = VectorIndex(source.ids["product"], source.arrays["product"])
            with self._lock:
                if self._vector_source is source:
                    self._vectors = index
        return index.nearest(vector, k) if index is not None else []

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
            self._number_product(ProductCard(product.id, product.name, product.category_id))
            self._generation += 1
            self._attribute_tops = {}
            for key in self._product_attributes.pop(product.id, []):
                self._attribute_products[key].remove(product.id)
            for attribute in product.attributes:
                self._product_attributes[product.id].append(attribute.key)
                self._insert_by_popularity(self._attribute_products[attribute.key], product.id)

    def look_added(self, look: Look) -> None:
        with self._lock:
            old = self._looks.get(look.id)
            for pid in old.product_ids if old else ():
                self._product_looks[pid].remove(look.id)
            self._looks[look.id] = look
            for pid in dict.fromkeys(look.product_ids):  # curated looks first, then mined; each by id
                bisect.insort(self._product_looks[pid], look.id, key=lambda i: (self._looks[i].mined, i))

    def events_added(self, events: Sequence[Event]) -> None:
        # () : another process wrote events (the change the serving process polls for).
        if not events or any(event.type in ("cart", "purchase") for event in events):
            with self._lock:
                self._stats_stale = True

    def shopper_erased(self, shopper_id: str) -> None:
        """Recount popularity and the crowd's statistics from the store, which no longer holds
        the shopper (requests are served meanwhile from the counts before); the crowd's
        companions follow when the store's BOUGHT_WITH is refreshed (`crowd_refreshed`)."""
        if self._store is None:
            return
        popularity = _popularity_of_store(self._store)
        with self._lock:
            self._popularity = popularity
            for members in self._attribute_products.values():
                members.sort(key=lambda q: (-popularity[q], q))
            self._attribute_tops.clear()
        self.refresh_statistics()

    def crowd_refreshed(self) -> None:
        """The store's BOUGHT_WITH was recomputed (by any process): read it again."""
        if self._store is None:
            return

        def read_again() -> None:  # in the background: a write that polled the change waits for nothing
            with self._lock:
                number = dict(self._number)
            crowd = _crowd_of_store(self._store, number)
            with self._lock:
                self._crowd_start, self._crowd_products, self._crowd_sessions = crowd

        self._spawn(read_again)

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
            cards = dict(self._cards)
            self._stats_stale, self._refreshing = False, True
        done = False
        try:
            bought = self._store.carts_and_purchases(TRENDING_DAYS) if self._store is not None else []
            purchases = self._store.purchase_times() if self._store is not None else {}
            trending, repurchase = _trending(bought, cards, self.categories), _repurchase(purchases, cards)
            done = True
        finally:
            with self._lock:
                if done:
                    self._trending, self._repurchase = trending, repurchase
                self._stats_stale |= not done  # tried again after the interval
                self._stats_at, self._refreshing = self.clock(), False

    def _number_product(self, card: ProductCard) -> None:
        # Interned, as the vector index's and the engine's ids are: the engine looks the walks'
        # ids up in other large dictionaries, and identical strings compare without being read.
        card = card._replace(id=sys.intern(card.id))
        self._cards[card.id] = card
        n = self._number.setdefault(card.id, len(self._ids))
        if n == len(self._ids):
            self._ids.append(card.id)
            self._card_of.append(card)
        else:
            self._card_of[n] = card

    def _insert_by_popularity(self, products: list[str], pid: str) -> None:
        bisect.insort(products, pid, key=lambda q: (-self._popularity[q], q))

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, store: GraphStore, vectors=None, **options) -> MemoryTraversal:
        """Stream every record of the store into the index (`options`: see the class)."""
        index = cls(CategoryTree.of(store.iter_records("categories")), vectors, **options)
        index._store = store
        products = list(store.iter_records("products"))
        for product in products:
            index._number_product(ProductCard(product.id, product.name, product.category_id))
            for attribute in product.attributes:
                index._product_attributes[product.id].append(attribute.key)
                index._attribute_products[attribute.key].append(product.id)
        index._popularity = _popularity_of_store(store)
        index._crowd_start, index._crowd_products, index._crowd_sessions = _crowd_of_store(store, index._number)
        for members in index._attribute_products.values():
            members.sort(key=lambda q: (-index._popularity[q], q))
        for look in store.iter_records("looks"):
            index.look_added(look)
        index.refresh_statistics()
        return index


def _popularity_of_store(store: GraphStore) -> Counter:
    """Each product's positive events (everything but dismissals)."""
    return Counter(event.product_id for event in store.iter_records("events") if event.type != "dismiss")


def _crowd_of_store(store: GraphStore, number: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The store's BOUGHT_WITH (`graph/crowd.py`) as CSR over product numbers: (start per
    product and one past the last, companions, sessions shared), each product's most sessions first."""
    rows = [(number[a], number[b], n) for a, b, n, _ in store.iter_bought_with() if a in number and b in number]
    start = np.zeros(len(number) + 1, dtype=np.int64)
    if not rows:
        return start, np.zeros(0, np.int32), np.zeros(0, np.int32)
    src, dst, sessions = (np.array(column, dtype=np.int64) for column in zip(*rows))
    order = np.argsort(src, kind="stable")  # by product number, each product's companions in stored order
    start[1:] = np.cumsum(np.bincount(src, minlength=len(number)))
    return start, dst[order].astype(np.int32), sessions[order].astype(np.int32)


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
    products: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (shopper, pid), times in purchases.items():
        if cards[pid].category:
            by_leaf[(shopper, cards[pid].category)].extend(times)
            products[(shopper, cards[pid].category)].add(pid)
    stats: dict[str, Repurchase] = {}
    gaps: dict[str, list[float]] = defaultdict(list)
    for (shopper, leaf), times in by_leaf.items():
        times.sort()
        again = [b - a for a, b in zip(times, times[1:]) if b - a > 86_400]
        s = stats.setdefault(leaf, Repurchase())
        s.buyers += 1
        s.repeat_buyers += bool(again)
        s.returning_buyers += len(products[(shopper, leaf)]) > 1
        gaps[leaf].extend(again)
    for leaf, s in stats.items():
        s.cycle_days = cycle_days(gaps[leaf])
    return stats
