"""Candidates: every product one request could recommend, and each reason it was offered.

Contract: `Offers` holds the distinct candidates (their cards, in the order first offered) and,
per candidate and source, the evidence that offered it (`SOURCES`, one column each), plus the
reasons that become paths. A source only offers; ranking is the ranker's, filtering the
policies'. The sources:

- `look`, `attribute`, `crowd`: the graph walks from every anchor at once
  (`Traversal.walk`), each row weighted by its anchor's weight (an attribute's also by how
  telling the attribute is, the crowd's by the log of the sessions shared);
- `content`: products sharing the rarest attributes and category path with the anchors
  (TF-IDF over the graph's HAS_ATTRIBUTE and IN_CATEGORY edges, from the artifact): the
  attribute walk over every attribute kind, weighted by how telling each attribute is;
- `embedding`: LookGNN's best complements of the anchors (its category-gated score over every
  product);
- `personal`: the products nearest the shopper's learnt preference vector (or, for a shopper
  the model has not seen, the vector folded in from their engagement);
- `collaborative`: what shoppers whose history resembles theirs went on to (the artifact's
  item-to-item index, EASE or ItemKNN, summed over the shopper's profile);
- `restock`, `returning`, `trip`, `trending`: consumables due, what the shopper carted or kept
  coming back to (`policies.touched`), what sells at a trip's location, and for a cold start
  what sells now;
- `popular`: best sellers, offered only to fill a list the other sources left short.

`gather` is the pipeline's stage: every source asked once for one request. A look item that
cannot be shown where the shopper is is stood in for there by the nearest available product of
its leaf category (`substitutes`). The items of a look pinned to a category page are placed
later, with the list (`arrange.py`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from ..graph.traversal import ATTRIBUTE, CROWD, LOOK, ProductCard, Walks
from . import explanations as explain
from . import policies

SOURCES = ("look", "attribute", "crowd", "content", "embedding", "personal", "collaborative", "restock", "returning",
           "trip", "trending", "popular")
COLUMN = {name: i for i, name in enumerate(SOURCES)}
WALK_COLUMN = np.array([COLUMN["look"], COLUMN["attribute"], COLUMN["crowd"]])  # by LOOK, ATTRIBUTE, CROWD
NO_WALKS = Walks(*(np.zeros(0, dtype=np.int64),) * 4, [], [], [], [])
PERSONAL = 100
"""Products offered by the shopper's preference vector, and by content match."""
NEIGHBOURS = 100
"""Products offered by LookGNN's complement score."""


class Offers:
    """The candidates of one request and why each was offered: the graph walks' rows (columns,
    with their evidence) and the other sources' reasons as (candidate, source, evidence, path
    builder, its arguments). Paths are built only for the items returned."""

    def __init__(self, walks: Walks, walk_evidence: np.ndarray):
        self.walks, self.walk_evidence = walks, walk_evidence
        self.cards: list[ProductCard] = list(walks.cards)
        self.position = {card.id: i for i, card in enumerate(self.cards)}
        self.others: list[tuple[int, str, float, Callable, tuple]] = []
        # The others' candidate, source column and evidence again, as columns: the features read
        # them as arrays, with no pass over the tuples.
        self._rows: list[int] = []
        self._columns: list[int] = []
        self._evidence: list[float] = []
        self.catalogue: dict[str, object] = {}
        """Scores the artifact gave every product for this request (by name), for the features."""

    def card(self, product_id: str) -> ProductCard | None:
        i = self.position.get(product_id)
        return None if i is None else self.cards[i]

    def add(self, card: ProductCard, source: str, evidence: float, build: Callable, args: tuple) -> int:
        i = self.position.setdefault(card.id, len(self.cards))
        if i == len(self.cards):
            self.cards.append(card)
        self.others.append((i, source, evidence, build, args))
        self._rows.append(i)
        self._columns.append(COLUMN[source])
        self._evidence.append(evidence)
        return i

    def rows_offered(self) -> np.ndarray:
        """The candidate of each of `others`, in order."""
        return np.array(self._rows, dtype=np.int64)

    def evidence(self) -> np.ndarray:
        """[candidates, sources]: each candidate's evidence per source, summed over its reasons."""
        rows = np.concatenate([self.walks.candidate, self.rows_offered()])
        columns = np.concatenate([WALK_COLUMN[self.walks.way], np.array(self._columns, dtype=np.int64)])
        evidence = np.concatenate([self.walk_evidence, np.array(self._evidence, dtype=np.float64)])
        # One flat bincount, the walks' rows first and then the others' in the order offered: it
        # sums in the order given, as np.add.at would, at a fraction of the cost.
        cells = len(self.cards) * len(SOURCES)
        return np.bincount(rows * len(SOURCES) + columns, weights=evidence, minlength=cells).reshape(-1, len(SOURCES))

    def reasons(self) -> np.ndarray:
        """Each candidate's count of reasons: graph-walk rows and other sources' offers."""
        counts = np.bincount(self.walks.candidate, minlength=len(self.cards))
        counts += np.bincount(self.rows_offered(), minlength=len(self.cards))
        return counts.astype(np.float64)


def walk_offers(walks: Walks, anchor_weights: np.ndarray, dismissed: set[str]) -> Offers:
    """Offers from the graph walks, each row weighted by its anchor; a dismissed item lowers
    the looks that hold it."""
    evidence = anchor_weights[walks.anchor] if len(walks.anchor) else np.zeros(0)
    crowd, shared = walks.way == CROWD, walks.way == ATTRIBUTE
    evidence[crowd] *= np.log1p(walks.via[crowd])
    if shared.any():
        evidence[shared] *= np.asarray(walks.attribute_weights)[walks.via[shared]]
    if dismissed:
        lowered = [i for i, hit in enumerate(walks.looks) if any(pid in dismissed for pid in hit.product_ids)]
        evidence[(walks.way == LOOK) & np.isin(walks.via, lowered)] *= 0.3
    return Offers(walks, evidence)


def top_rows(scores: np.ndarray, k: int, leave_out: np.ndarray | None = None) -> np.ndarray:
    """Rows of the `k` highest scores, best first (rows `leave_out` never)."""
    scores = scores.astype(np.float64, copy=True)
    if leave_out is not None and len(leave_out):
        scores[leave_out] = -np.inf
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.isfinite(scores[top])]
    return top[np.argsort(-scores[top], kind="stable")]


def gather(engine, request) -> Offers:
    """Every source's candidates for `request` (a `request.Request`): the graph walks from the
    anchors, the artifact's sources, restocks due, what the shopper is coming back to, what
    sells at a trip's location, and for a cold start what is trending; then the stand-ins for
    look items not shown here."""
    state, anchors, ask = request.state, request.anchors, request.ask
    across = (request.page or engine.strict_across) and not ask.same_category
    ids = list(anchors)
    walks = engine.graph.walk(ids, across_groups=across) if ids else NO_WALKS
    offers = walk_offers(walks, np.array([w for w, _ in anchors.values()]), state.dismissed)
    if engine.model is not None:
        engine.model.offer(offers, anchors, state, request.page and not ask.same_category, request.out,
                           request.session_share)
    for pid, days, cycle in request.restocks:
        offers.add(request.cards[pid], "restock", 1.0, explain.restock_path, (state.shopper_id, pid, days, cycle))
    for pid, how, times, days in request.coming_back:
        if pid in request.cards:
            # The strongest signal a storefront has: above any path from an anchor (at most 6).
            offers.add(request.cards[pid], "returning", 6.0 * times / (1.0 + days), explain.returning_path,
                       (state.shopper_id, pid, how, times, days))
    trending = engine.graph.trending()
    for card in trending.by_location.get(request.trip, [])[:20] if request.trip else []:
        offers.add(card, "trip", 1.0, explain.trip_path, (request.trip, card.id))
    if not offers.cards:  # a cold start: what is trending, groups ordered by this shopper's draw
        ordered, _, _ = policies.exploration_draws(state, trending, int(request.now // policies.DAY),
                                                   request.shown_groups, arms=engine.exploration_arms())
        for rank, group in enumerate(ordered):
            for card in trending.by_group[group][:5]:
                offers.add(card, "trending", 1.0 / (1 + rank), explain.trending_path,
                           (group, engine.graph.categories.names.get(group, group), card.id))
    substitutes(engine, offers, request)
    return offers


def substitutes(engine, offers: Offers, request) -> None:
    """A look item that cannot be shown here is stood in for by the nearest available
    product of its leaf category (by LookGNN's vectors when there are some, else by the
    crowd's co-sessions), offered with the look's evidence and saying so."""
    walks, location = offers.walks, request.location
    out = request.kept_out | request.state.dismissed | request.out
    for row in np.flatnonzero(walks.way == LOOK) if len(walks.candidate) else ():
        missing = offers.cards[walks.candidate[row]]
        if engine.merch.shown(missing.id, location) or missing.category is None:
            continue
        substitute = _nearest_available(engine, missing, location, out | {c.id for c in offers.cards})
        if substitute is None:
            continue
        hit = walks.looks[walks.via[row]]
        request.cards[missing.id] = missing
        offers.add(substitute, "look", float(offers.walk_evidence[row]), explain.substitute_path,
                   (hit.look_id, hit.look_name, missing.id, engine.merch.availability(missing.id, location), substitute.id))


def _nearest_available(engine, card: ProductCard, location: str | None, out: set[str]) -> ProductCard | None:
    """The product of `card`'s leaf category nearest it that can be shown and is not in `out`."""
    if engine.model is not None and card.id in engine.model.row:
        vectors = engine.vectors.arrays["product"]
        leaf = engine.vectors.product_category
        row = engine.model.row[card.id]
        same = np.flatnonzero(leaf == leaf[row])
        ordered = same[np.argsort(-(vectors[same] @ vectors[row]), kind="stable")]
        ids = engine.vectors.ids["product"]
        names = (ids[r] for r in ordered[:200])
    else:  # the crowd's co-sessions first, then the rest of the leaf category
        names = itertools.chain((hit.product_id for hit in engine.graph.co_sessions([card.id], 50)),
                                sorted(engine.store.products_matching([card.category], None, None, None)))
    # Their cards read a batch at a time (on Neo4j, one read per batch, not one per product).
    names = (pid for pid in names if pid != card.id and pid not in out and engine.merch.shown(pid, location))
    while batch := list(itertools.islice(names, 50)):
        found = engine.graph.cards(batch)
        for pid in batch:
            if pid in found and found[pid].category == card.category:
                return found[pid]
    return None
