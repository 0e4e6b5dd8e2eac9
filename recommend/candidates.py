"""Candidates: every product one request could recommend, and each reason it was offered.

Contract: `Offers` holds the distinct candidates (their cards, in the order first offered) and,
per candidate and source, the evidence that offered it (`SOURCES`, one column each), plus the
reasons that become paths. A source only offers; ranking is the ranker's, filtering the
policies'. The sources:

- `look`, `attribute`, `crowd`: the graph walks from every anchor at once
  (`Traversal.walk`), each row weighted by its anchor's weight (the crowd's by the log of the
  sessions shared);
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

Two `look` offers come from merchandising rather than walks: a look item that cannot be shown
is stood in for by the nearest available product of its leaf category (`Engine._substitutes`),
and the items of a look pinned to a category page lead it (`Engine._pinned`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..graph.traversal import CROWD, LOOK, ProductCard, Walks

SOURCES = ("look", "attribute", "crowd", "content", "embedding", "personal", "collaborative", "restock", "returning",
           "trip", "trending", "popular")
COLUMN = {name: i for i, name in enumerate(SOURCES)}
WALK_COLUMN = np.array([COLUMN["look"], COLUMN["attribute"], COLUMN["crowd"]])  # by LOOK, ATTRIBUTE, CROWD
NO_WALKS = Walks(*(np.zeros(0, dtype=np.int64),) * 4, [], [], [])
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
        self.others: list[tuple[int, int, float, Callable, tuple]] = []
        self.catalogue: dict[str, object] = {}
        """Scores the artifact gave every product for this request (by name), for the features."""

    def card(self, product_id: str) -> ProductCard | None:
        i = self.position.get(product_id)
        return None if i is None else self.cards[i]

    def add(self, card: ProductCard, source: str, evidence: float, build: Callable, args: tuple) -> int:
        i = self.position.setdefault(card.id, len(self.cards))
        if i == len(self.cards):
            self.cards.append(card)
        self.others.append((i, COLUMN[source], evidence, build, args))
        return i

    def evidence(self) -> np.ndarray:
        """[candidates, sources]: each candidate's evidence per source, summed over its reasons."""
        out = np.zeros((len(self.cards), len(SOURCES)))
        if len(self.walks.candidate):
            np.add.at(out, (self.walks.candidate, WALK_COLUMN[self.walks.way]), self.walk_evidence)
        for i, column, e, _, _ in self.others:
            out[i, column] += e
        return out


def walk_offers(walks: Walks, anchor_weights: np.ndarray, dismissed: set[str]) -> Offers:
    """Offers from the graph walks, each row weighted by its anchor; a dismissed item lowers
    the looks that hold it."""
    evidence = anchor_weights[walks.anchor] if len(walks.anchor) else np.zeros(0)
    crowd = walks.way == CROWD
    evidence[crowd] *= np.log1p(walks.via[crowd])
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
