"""`CypherTraversal`: the engine's walks run inside Neo4j, one statement of
`cypher/traversal.cypher` per walk, through the store's managed read transactions.

Nothing of the graph is copied into the process but the category tree (small, and climbed on
every request) and the crowd's statistics (trending, repurchase), which are aggregates over
all events: they are computed in the database and kept for `stats_ttl` seconds.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .traversal import (
    ATTRIBUTE_KINDS, CO_SESSIONS_SCANNED, TRENDING_DAYS, TRENDING_PER_GROUP, AttributeHit, CategoryTree,
    CrowdHit, LookHit, ProductCard, Repurchase, STATISTICS_TTL, Trending, Traversal, cycle_days, keep_across_groups,
)

MAX_SESSION_ITEMS = 30
TRENDING_PRODUCTS = 20_000
"""How many of the best-selling products are read to fill every category group's top 100."""


class CypherTraversal(Traversal):
    def __init__(self, store, stats_ttl: float = STATISTICS_TTL, clock=time.monotonic):
        self.store = store  # a Neo4jGraphStore: its `_read` runs a named statement in a read transaction
        self.stats_ttl, self.clock = stats_ttl, clock
        self._lock = threading.Lock()
        self._stats: tuple[float, Trending, dict[str, Repurchase]] | None = None
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
        return {r["id"]: self._card(r) for r in self.store._read("traversal.product_cards", ids=ids)} if ids else {}

    def looks_with(self, anchors: Sequence[str], per_anchor: int = 10) -> list[LookHit]:
        rows = self.store._read("traversal.looks_with", anchors=list(anchors), per_anchor=per_anchor)
        return [LookHit(r["anchor"], r["look_id"], r["look_name"], tuple(r["product_ids"])) for r in rows]

    def shared_attributes(self, anchors: Sequence[str], per_attribute: int = 8, across_groups: bool = True,
                          scanned: int = 80) -> list[AttributeHit]:
        rows = self.store._read("traversal.shared_attributes", anchors=list(anchors), kinds=list(ATTRIBUTE_KINDS),
                                per_attribute=scanned)
        hits = [AttributeHit(r["anchor"], r["attribute"], self._card(r)) for r in rows]
        homes = {a: card.category for a, card in self.cards(anchors).items()}
        return keep_across_groups(hits, homes, self.categories, per_attribute, across_groups)

    def co_sessions(self, anchors: Sequence[str], per_anchor: int = 20) -> list[CrowdHit]:
        rows = self.store._read("traversal.co_sessions", anchors=list(anchors), per_anchor=per_anchor,
                                scanned=CO_SESSIONS_SCANNED, max_session_items=MAX_SESSION_ITEMS)
        return [CrowdHit(r["anchor"], r["product_id"], r["sessions"]) for r in rows]

    def nearest(self, vector: np.ndarray, k: int = 50) -> list[str]:
        rows = self.store._read("traversal.nearest_products", k=k, vector=[float(x) for x in vector])
        return [r["id"] for r in rows]

    def product_count(self) -> int:
        return self.store._read("traversal.product_count")[0]["products"]

    # -- the crowd's statistics, computed in the database ------------------------------------
    def trending(self) -> Trending:
        return self._statistics()[1]

    def repurchase(self) -> dict[str, Repurchase]:
        return self._statistics()[2]

    def _statistics(self) -> tuple[float, Trending, dict[str, Repurchase]]:
        with self._lock:
            if self._stats is None or self.clock() - self._stats[0] > self.stats_ttl:
                self._stats = (self.clock(), self._read_trending(), self._read_repurchase())
            return self._stats

    def _read_trending(self) -> Trending:
        latest = self.store._read("traversal.latest_event_time")
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
        return {r["leaf"]: Repurchase(r["buyers"], r["repeat_buyers"], cycle_days(r["gaps"]))
                for r in self.store._read("traversal.repurchase")}
