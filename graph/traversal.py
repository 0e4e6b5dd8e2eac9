"""`Traversal`: what the recommendation engine asks of the graph, in a few batched walks.

Every walk starts from a handful of anchor products (the item in view, the session's items,
the profile's) and returns what it reached, so that one request costs a fixed number of round
trips whatever the store:

- `looks_with`: anchor <-INCLUDES- Look -INCLUDES-> the look's other items;
- `shared_attributes`: anchor -HAS_ATTRIBUTE-> attribute <-HAS_ATTRIBUTE- other items, through
  the anchor's most telling attributes of any kind (the rarest: `telling_attributes`), most
  popular first;
- `co_sessions`: anchor -BOUGHT_WITH-> the products most often in the same sessions (the
  crowd's co-engagement, materialized in the store by `graph/crowd.py`);
- `walk`: the three walks above at once, as columns (what the engine ranks from);
- `nearest`: products whose LookGNN embedding is nearest a query vector;
- `cards`: name and leaf category of the products the engine is about to rank;
- `trending` and `repurchase`: the crowd's statistics (what sells now, per category group and
  per location; how often each leaf category is bought again, and after how long).

Two implementations: `MemoryTraversal` (`graph/memory_traversal.py`) walks an in-memory index
built from the embedded store; `CypherTraversal` (`graph/neo4j_traversal.py`) runs each walk as
one statement of `cypher/traversal.cypher` inside Neo4j. `GraphStore.traversal()` picks.
A shopper's own events are never cached by either: the engine reads them from the store on
every request, which is what makes an event visible in the next recommendation.
"""

from __future__ import annotations

import abc
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .model import Category, Event, Look, Product

ATTRIBUTES_PER_ANCHOR = 5
"""An anchor walks through this many of its attributes, the most telling first (whatever
their kind: brand, colour, style, title term...)."""
COMMON_ATTRIBUTE_SHARE = 0.25
"""An attribute held by more than this share of the catalogue (a colour everything comes in),
and by more than `COMMON_ATTRIBUTE_HOLDERS` products, ties everything to everything: it is not
walked (in a small catalogue every attribute is)."""
COMMON_ATTRIBUTE_HOLDERS = 50
TRENDING_DAYS = 30
TRENDING_PER_GROUP = 100
STATISTICS_TTL = 300.0
"""Seconds the crowd's statistics (trending, repurchase) are served before they are recomputed."""
MAX_SESSION_ITEMS = 30
"""Sessions with more distinct items than this say little about what goes together: the
crowd's walk skips them, on both stores."""
CO_SESSIONS_SCANNED = 500
"""A walk through the crowd's sessions reads at most this many of an anchor's latest sessions,
so that a bestseller costs what any product costs."""

# Walk results are named tuples: immutable, and less than half the cost of a frozen dataclass to
# make, which counts at several hundred per request.


class ProductCard(NamedTuple):
    id: str
    name: str
    category: str | None


class LookHit(NamedTuple):
    anchor: str
    look_id: str
    look_name: str
    product_ids: tuple[str, ...]
    mined: bool = False
    """Found in baskets by `lookgraph mine-looks`, not made by a merchandiser."""


class AttributeHit(NamedTuple):
    anchor: str
    attribute: str
    """The attribute's key, `kind:value`."""
    product: ProductCard
    weight: float = 1.0
    """How telling the attribute is (`attribute_weight`)."""


def attribute_weight(holders: int, products: int) -> float:
    """How telling an attribute held by `holders` of `products` products is: its inverse
    document frequency, log(products / holders), over log(products), so that an attribute
    of one product weighs 1 and one of every product 0."""
    if products <= 1 or holders <= 0:
        return 0.0
    return max(0.0, math.log(products / holders) / math.log(products))


def telling_attributes(held: Iterable[tuple[str, int]], products: int) -> list[tuple[str, float]]:
    """Of an anchor's attributes, as (key, how many products hold it), those walked: at most
    `ATTRIBUTES_PER_ANCHOR`, the most telling first (ties by key), none too common
    (`COMMON_ATTRIBUTE_SHARE`) nor held by the anchor alone. One rule for both stores."""
    most = max(COMMON_ATTRIBUTE_SHARE * products, COMMON_ATTRIBUTE_HOLDERS)
    walked = [(key, attribute_weight(holders, products)) for key, holders in held if 1 < holders <= most]
    return sorted(walked, key=lambda kw: (-kw[1], kw[0]))[:ATTRIBUTES_PER_ANCHOR]


class CrowdHit(NamedTuple):
    anchor: str
    product_id: str
    sessions: int


LOOK, ATTRIBUTE, CROWD = 0, 1, 2
"""The ways of a walk: through a look, a shared attribute, the crowd's sessions."""


class Walks(NamedTuple):
    """Where the walks from some anchors lead: one row per (anchor, way, candidate), as columns,
    rows in the order looks, attributes, crowd, each anchor by anchor. A candidate is reached
    once per way and anchor at most, except through several looks or attributes.

    `via` says which look (an index into `looks`), which attribute (into `attributes`, how
    telling each is in `attribute_weights`) or, for the crowd, in how many sessions. `candidate`
    indexes `cards`: the distinct products reached, in the order first reached."""

    anchor: np.ndarray
    way: np.ndarray
    via: np.ndarray
    candidate: np.ndarray
    cards: list[ProductCard]
    looks: list[LookHit]
    attributes: list[str]
    attribute_weights: list[float]

    @classmethod
    def of(cls, rows: Sequence[tuple[int, int, int, str]], cards: dict[str, ProductCard], looks: list[LookHit],
           attributes: list[str], attribute_weights: list[float]) -> Walks:
        """From rows (anchor, way, via, product id); rows of products without a card are dropped."""
        rows = [r for r in rows if r[3] in cards]
        position: dict[str, int] = {}
        for r in rows:
            position.setdefault(r[3], len(position))
        column = lambda i: np.array([r[i] for r in rows], dtype=np.int64)  # noqa: E731
        return cls(column(0), column(1), column(2), np.array([position[r[3]] for r in rows], dtype=np.int64),
                   [cards[pid] for pid in position], looks, attributes, attribute_weights)


@dataclass
class Repurchase:
    """Learnt from purchases in a leaf category: how many buyers bought again (more than a day
    after their previous purchase there), the median gap between such purchases, and how many
    bought more than one distinct product of it. Buying the same thing again (coffee) and
    coming back for another one (books, films, basics) are different signals; a sofa is rare
    on both."""

    buyers: int = 0
    repeat_buyers: int = 0
    cycle_days: float | None = None
    returning_buyers: int = 0

    @property
    def rate(self) -> float:
        return self.repeat_buyers / self.buyers if self.buyers else 0.0

    @property
    def return_rate(self) -> float:
        return self.returning_buyers / self.buyers if self.buyers else 0.0


@dataclass
class Trending:
    """Carts and purchases of the last `TRENDING_DAYS` (a purchase counts 3, a cart 2)."""

    by_group: dict[str, list[ProductCard]] = field(default_factory=dict)
    by_location: dict[str, list[ProductCard]] = field(default_factory=dict)


@dataclass
class CategoryTree:
    """The category tree, held whole: it is small, and every request climbs it."""

    names: dict[str, str] = field(default_factory=dict)
    parent: dict[str, str | None] = field(default_factory=dict)
    _groups: dict[str | None, str | None] = field(default_factory=dict, repr=False)
    _departments: dict[str | None, str | None] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, categories: Iterable[Category]) -> CategoryTree:
        tree = cls()
        for category in categories:
            tree.names[category.id] = category.name
            tree.parent[category.id] = category.parent_id
        return tree

    def group(self, category: str | None) -> str | None:
        """The category two levels below the root (e.g. `fashion/women/shoes` for a leaf
        `.../boots`), or the root of a shallow tree: two items of one group are 'more of the same'."""
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

    def department(self, category: str | None) -> str | None:
        """The category one level below the root (e.g. `fashion/women`): who an item is for."""
        found = self._departments.get(category, False)
        if found is not False:
            return found
        chain = [category] if category is not None else []
        while chain and (up := self.parent.get(chain[-1])) is not None:
            chain.append(up)
        self._departments[category] = department = (chain[-2] if len(chain) >= 2 else chain[0]) if chain else None
        return department

    def within(self, category: str | None, wanted: Iterable[str]) -> bool:
        """Whether `category` is one of `wanted` or below one of them."""
        wanted = set(wanted)
        while category is not None:
            if category in wanted:
                return True
            category = self.parent.get(category)
        return False


class Traversal(abc.ABC):
    categories: CategoryTree

    @abc.abstractmethod
    def cards(self, product_ids: Iterable[str]) -> dict[str, ProductCard]:
        """The card of each product that exists (unknown ids are left out)."""

    @abc.abstractmethod
    def looks_with(self, anchors: Sequence[str], per_anchor: int = 10) -> list[LookHit]:
        """Up to `per_anchor` looks that include each anchor, with their items in order."""

    @abc.abstractmethod
    def shared_attributes(self, anchors: Sequence[str], per_attribute: int = 8, across_groups: bool = True,
                          scanned: int = 80) -> list[AttributeHit]:
        """For each anchor and each of its `telling_attributes`, up to `per_attribute` other
        products with that attribute, most popular first, among the `scanned` most popular;
        only products of another category group than the anchor's when `across_groups`."""

    @abc.abstractmethod
    def co_sessions(self, anchors: Sequence[str], per_anchor: int = 20) -> list[CrowdHit]:
        """For each anchor, up to `per_anchor` other products most often in the same sessions
        (dismissals do not count), most sessions first: its BOUGHT_WITH as last refreshed."""

    def walk(self, anchors: Sequence[str], looks_per_anchor: int = 10, per_attribute: int = 8,
             crowd_per_anchor: int = 20, across_groups: bool = True) -> Walks:
        """`looks_with`, `shared_attributes` and `co_sessions` from the same anchors, as columns."""
        return self._compose(anchors, self.looks_with(anchors, looks_per_anchor),
                             self.shared_attributes(anchors, per_attribute, across_groups),
                             self.co_sessions(anchors, crowd_per_anchor))

    def _compose(self, anchors: Sequence[str], looks: list[LookHit], shared: list[AttributeHit],
                 crowd: list[CrowdHit], known: dict[str, ProductCard] | None = None) -> Walks:
        """The three walks' hits as `Walks` columns; the cards of what they reached are looked up
        unless `known`."""
        position = {a: i for i, a in enumerate(anchors)}
        rows = [(position[hit.anchor], LOOK, i, pid)
                for i, hit in enumerate(looks) for pid in hit.product_ids if pid != hit.anchor]
        attributes: dict[str, int] = {}
        weights: list[float] = []
        cards: dict[str, ProductCard] = dict(known or {})
        for hit in shared:
            cards[hit.product.id] = hit.product
            if hit.attribute not in attributes:
                attributes[hit.attribute] = len(attributes)
                weights.append(hit.weight)
            rows.append((position[hit.anchor], ATTRIBUTE, attributes[hit.attribute], hit.product.id))
        rows += [(position[hit.anchor], CROWD, hit.sessions, hit.product_id) for hit in crowd]
        cards.update(self.cards(r[3] for r in rows if r[3] not in cards))
        return Walks.of(rows, cards, looks, list(attributes), weights)

    @abc.abstractmethod
    def nearest(self, vector: np.ndarray, k: int = 50) -> list[str]:
        """The `k` products whose embedding is nearest `vector` by cosine similarity."""

    @abc.abstractmethod
    def trending(self) -> Trending: ...

    @abc.abstractmethod
    def repurchase(self) -> dict[str, Repurchase]:
        """Repurchase behaviour per leaf category that has buyers."""

    @abc.abstractmethod
    def product_count(self) -> int: ...

    def use_vectors(self, vectors) -> None:
        """Answer nearest-neighbour walks from another artifact's vectors (a `LookVectors`, or
        None) from now on. Neo4j's walks use the vectors stored in the database: nothing to do."""

    def product_added(self, product: Product) -> None:
        """A product was written to the store (through the API): make it walkable at once."""

    def look_added(self, look: Look) -> None:
        """A look was written to the store (through the API): make it walkable at once."""

    def events_added(self, events: Sequence[Event]) -> None:
        """Events were written to the store (through the API): count them in the crowd's
        statistics at their next refresh."""

    def shopper_erased(self, shopper_id: str) -> None:
        """A shopper was erased from the store: forget what the walks hold of them."""

    def crowd_refreshed(self) -> None:
        """The store's BOUGHT_WITH was recomputed: what walks read it in place has nothing to do."""

    @abc.abstractmethod
    def refresh_statistics(self) -> None:
        """Recompute the crowd's statistics now (they refresh by themselves every
        `STATISTICS_TTL` seconds)."""


def attribute_hits(pairs: Iterable[tuple[str, str, float]], tops: dict[str, list[ProductCard]],
                   anchor_categories: dict[str, str | None], tree: CategoryTree, per_attribute: int,
                   across_groups: bool) -> list[AttributeHit]:
    """`shared_attributes`' second half: for each (anchor, attribute, weight) of `pairs`, the
    attribute's products in popularity order (`tops`), the anchor left out, another group than
    the anchor's (when asked), at most `per_attribute` of them. A hit is made only for what is
    kept (the 80 most popular of each attribute are read: most are passed over)."""
    kept = []
    for anchor, key, weight in pairs:
        home, found = tree.group(anchor_categories.get(anchor)), 0
        for card in tops[key]:
            if found == per_attribute:
                break
            if card.id != anchor and not (across_groups and tree.group(card.category) == home):
                kept.append(AttributeHit(anchor, key, card, weight))
                found += 1
    return kept


def in_background(work: Callable[[], None]) -> None:
    """How the traversals recompute the crowd's statistics: no request waits for it."""
    threading.Thread(target=work, name="crowd-statistics", daemon=True).start()


def cycle_days(gaps_seconds: Sequence[float]) -> float | None:
    return float(np.median(gaps_seconds)) / 86_400 if len(gaps_seconds) else None
