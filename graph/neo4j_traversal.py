"""`CypherTraversal`: the engine's walks run inside Neo4j, statements of
`cypher/traversal.cypher` (the three walks one statement, `traversal.walks`), through the
store's managed read transactions.

Nothing of the graph is copied into the process but the category tree (small, and climbed on
every request), each product's card once read (kept as the change log says), and aggregates
over every event, kept for `stats_ttl` seconds and recomputed in
the background once older: the crowd's statistics (trending, repurchase) and each walked
attribute's most popular products (the second half of the shared-attribute walk; counted per
request, it cost 6 s a request on the 1M-event demo).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from .traversal import (
    TRENDING_DAYS, TRENDING_PER_GROUP, AttributeHit, CategoryTree,
    CrowdHit, LookHit, ProductCard, Repurchase, STATISTICS_TTL, Trending, Traversal, Walks, cycle_days,
    attribute_hits, in_background, telling_attributes,
)

TRENDING_PRODUCTS = 20_000
"""How many of the best-selling products are read to fill every category group's top 100."""


class CypherTraversal(Traversal):
    def __init__(self, store, stats_ttl: float = STATISTICS_TTL, clock=time.monotonic,
                 spawn: Callable[[Callable[[], None]], None] = in_background):
        self.store = store  # a Neo4jGraphStore: its `_read` runs a named statement in a read transaction
        self.stats_ttl, self.clock, self._spawn = stats_ttl, clock, spawn
        self._lock = threading.Lock()
        self._stats: tuple[float, Trending, dict[str, Repurchase]] | None = None
        self._refreshing = False
        self._attribute_tops: dict[tuple[str, int], tuple[float, list[ProductCard]]] = {}
        self._recounting: set[tuple[str, int]] = set()
        self._cards: dict[str, ProductCard] = {}
        """Each product's card (name, leaf category) once read: a feed asks for the cards of the
        shopper's events and of the lists they were shown, up to a thousand, each time (1.3 ms a
        feed on the 1M-event demo). Kept as the change log says: `product_added` (any process's
        product write, within the freshness poll) replaces one, a bulk load the traversal whole."""
        self.categories = self._category_tree()

    def _category_tree(self) -> CategoryTree:
        return CategoryTree.of(self.store.iter_records("categories"))

    def _card(self, row: dict) -> ProductCard:
        category = row["category_id"]
        if category is not None and category not in self.categories.names:
            self.categories = self._category_tree()  # a category loaded since start-up
        return ProductCard(row["id"], row["name"], category)

    # -- the walks -----------------------------------------------------------------------------
    def cards(self, product_ids: Iterable[str]) -> dict[str, ProductCard]:
        ids = list(dict.fromkeys(product_ids))
        if missing := [pid for pid in ids if pid not in self._cards]:
            for pid, name, category in self.store._read("traversal.product_cards", ids=missing)[0]["cards"]:
                self._cards[pid] = self._card({"id": pid, "name": name, "category_id": category})
        return {pid: self._cards[pid] for pid in ids if pid in self._cards}

    def looks_with(self, anchors: Sequence[str], per_anchor: int = 10) -> list[LookHit]:
        return self._looks(self._walks(anchors, looks_per_anchor=per_anchor)["looks"])

    def shared_attributes(self, anchors: Sequence[str], per_attribute: int = 8, across_groups: bool = True,
                          scanned: int = 80) -> list[AttributeHit]:
        found = self._walks(anchors, attributes=True)
        return self._shared(found["attributes"], found["products"], per_attribute, across_groups, scanned)

    def co_sessions(self, anchors: Sequence[str], per_anchor: int = 20) -> list[CrowdHit]:
        return self._crowd(self._walks(anchors, crowd_per_anchor=per_anchor)["crowd"])

    def walk(self, anchors: Sequence[str], looks_per_anchor: int = 10, per_attribute: int = 8,
             crowd_per_anchor: int = 20, across_groups: bool = True) -> Walks:
        """As `Traversal.walk`, in one round trip: the three walks in one statement, with the
        cards of what they reached."""
        found = self._walks(anchors, looks_per_anchor, True, crowd_per_anchor)
        looks, crowd = found["looks"], found["crowd"]
        cards = {pid: self._card({"id": pid, "name": name, "category_id": category})
                 for _, _, _, _, ids, items in looks for pid, (name, category) in zip(ids, items)}
        cards |= {pid: self._card({"id": pid, "name": name, "category_id": category})
                  for _, companions in crowd for pid, _, name, category in companions}
        self._cards.update(cards)
        return self._compose(anchors, self._looks(looks),
                             self._shared(found["attributes"], found["products"], per_attribute, across_groups),
                             self._crowd(crowd), cards)

    def _walks(self, anchors: Sequence[str], looks_per_anchor: int = 0, attributes: bool = False,
               crowd_per_anchor: int = 0) -> dict:
        """`traversal.walks`' one record: each walk's rows (a walk asked for none is not walked)."""
        return self.store._read("traversal.walks", anchors=list(anchors), looks_per_anchor=looks_per_anchor,
                                attributes=attributes, crowd_per_anchor=crowd_per_anchor)[0]

    @staticmethod
    def _looks(rows: list[list]) -> list[LookHit]:
        return [LookHit(anchor, look, name, tuple(ids), mined) for anchor, look, name, mined, ids, _ in rows]

    @staticmethod
    def _crowd(rows: list[list]) -> list[CrowdHit]:
        return [CrowdHit(anchor, pid, sessions) for anchor, companions in rows for pid, sessions, _, _ in companions]

    def _shared(self, rows: list[list], products: int, per_attribute: int, across_groups: bool,
                scanned: int = 80) -> list[AttributeHit]:
        held = {anchor: [(key, holders) for key, holders in attributes] for anchor, _, attributes in rows}
        pairs = [(anchor, key, weight) for anchor, mine in held.items() for key, weight in telling_attributes(mine, products)]
        # Each attribute's `scanned + 1` most popular (enough when one of them is the anchor).
        tops = self._attribute_top({key for _, key, _ in pairs}, scanned + 1)
        homes = {anchor: category for anchor, category, _ in rows}
        return attribute_hits(pairs, tops, homes, self.categories, per_attribute, across_groups)

    def _attribute_top(self, attributes: set[str], scanned: int) -> dict[str, list[ProductCard]]:
        """Each attribute's `scanned` most popular products: counted in the database the first
        time an attribute is walked, then kept; once older than `stats_ttl`, the last answer is
        served while a recount runs in the background."""
        now = self.clock()
        with self._lock:
            known = {a: top for a in attributes if (top := self._attribute_tops.get((a, scanned)))}
            stale = sorted(a for a, (at, _) in known.items()
                           if now - at > self.stats_ttl and (a, scanned) not in self._recounting)
            self._recounting.update((a, scanned) for a in stale)
        if stale:
            self._spawn(lambda: self._count_attribute_tops(stale, scanned))
        tops = self._count_attribute_tops(sorted(attributes - set(known)), scanned)
        with self._lock:  # a recount that already finished (or `spawn` ran it here) is served now
            tops |= {a: self._attribute_tops.get((a, scanned), top)[1] for a, top in known.items()}
        return tops

    def _count_attribute_tops(self, attributes: list[str], scanned: int) -> dict[str, list[ProductCard]]:
        if not attributes:
            return {}
        counted_at, found = self.clock(), {a: [] for a in attributes}
        try:
            for r in self.store._read("traversal.attribute_top_products", attributes=attributes, scanned=scanned):
                found[r["attribute"]].append(self._card(r))
            with self._lock:
                self._attribute_tops.update({(a, scanned): (counted_at, top) for a, top in found.items()})
        finally:
            with self._lock:
                self._recounting.difference_update((a, scanned) for a in attributes)
        return found

    def nearest(self, vector: np.ndarray, k: int = 50) -> list[str]:
        rows = self.store._read("traversal.nearest_products", k=k, candidates=2 * k, vector=[float(x) for x in vector])
        return [r["id"] for r in rows]

    def product_count(self) -> int:
        return self.store._read("traversal.product_count")[0]["products"]

    def product_added(self, product) -> None:
        self._cards[product.id] = self._card({"id": product.id, "name": product.name, "category_id": product.category_id})
        with self._lock:  # its attributes' most popular products may have changed
            self._attribute_tops.clear()

    # -- the crowd's statistics, computed in the database ------------------------------------
    def trending(self) -> Trending:
        return self._statistics()[1]

    def repurchase(self) -> dict[str, Repurchase]:
        return self._statistics()[2]

    def _statistics(self) -> tuple[float, Trending, dict[str, Repurchase]]:
        if self._stats is None:  # the first request waits; later ones are served the last answer
            self.refresh_statistics()
        elif self.clock() - self._stats[0] > self.stats_ttl and not self._refreshing:
            with self._lock:
                due, self._refreshing = not self._refreshing, True
            if due:
                self._spawn(self.refresh_statistics)
        return self._stats

    def refresh_statistics(self) -> None:
        """Recompute trending and repurchase from what is stored now, without waiting for the TTL."""
        try:
            stats = (self.clock(), self._read_trending(), self._read_repurchase())
            with self._lock:
                self._stats = stats
        finally:
            self._refreshing = False

    def _read_trending(self) -> Trending:
        latest = self.store._read("traversal.latest_sale_time")
        if not latest:
            return Trending()
        since = latest[0]["ts"] - TRENDING_DAYS * 86_400
        groups: dict[str, list[ProductCard]] = defaultdict(list)
        for r in self.store._read("traversal.trending_products", since=since, limit=TRENDING_PRODUCTS):
            card = self._card(r)
            group = groups[self.categories.group(card.category) or ""]
            if len(group) < TRENDING_PER_GROUP:
                group.append(card)
        by_location: dict[str, list[tuple[int, ProductCard]]] = defaultdict(list)
        for r in self.store._read("traversal.trending_by_location", since=since, per_location=TRENDING_PER_GROUP):
            by_location[r["location"]].append((r["rank"], self._card(r)))
        return Trending(dict(groups), {loc: [c for _, c in sorted(ranked, key=lambda rc: rc[0])]
                                       for loc, ranked in by_location.items()})

    def _read_repurchase(self) -> dict[str, Repurchase]:
        return {r["leaf"]: Repurchase(r["buyers"], r["repeat_buyers"], cycle_days(r["gaps"]), r["returning_buyers"])
                for r in self.store._read("traversal.repurchase")}
