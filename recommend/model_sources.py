"""The candidate sources that need the trained artifact, and the paths that show them.

Contract: `ModelSources(vectors, graph).offer(offers, anchors, state, page, out)` adds to
`offers` LookGNN's best complements of the anchors, content match, the crowd's counted
co-engagement, the products nearest the shopper's preference vector, what shoppers with a
history like theirs went on to (the item-to-item index) and (in a feed) the best sellers, each
over the whole catalogue, leaving out the products of `out`; the catalogue-wide
scores stay on `offers.catalogue` for the features. A path builder shows a pick by the graph
path it rests on (an attribute or category shared with an anchor) whenever there is one.
"""

from __future__ import annotations

import functools
import sys

import numpy as np

from ..embeddings.collaborative import ItemNeighbours
from ..embeddings.vectors import LookVectors
from ..graph.traversal import Traversal
from . import explanations as explain
from .candidates import NEIGHBOURS, PERSONAL, Offers, top_rows
from .policies import ShopperState

STRENGTH = {"purchase": 1.0, "cart": 0.8, "view": 0.5}
"""How much an event says about taste, by type."""


class ModelSources:
    def __init__(self, vectors: LookVectors, graph: Traversal):
        self.vectors, self.graph = vectors, graph
        # Interned ids, as the in-memory walks' are (see MemoryTraversal._number_product).
        self.row: dict[str, int] = {sys.intern(pid): i for i, pid in enumerate(vectors.ids["product"])}
        self.shopper_row = {sid: i for i, sid in enumerate(vectors.ids.get("shopper", []))}
        self.leaf_return = vectors.category_values("leaf_return_rate")
        self.popular = top_rows(vectors.arrays["popularity"], 5_000) if "popularity" in vectors.arrays else None
        self.collaborative = ItemNeighbours.from_arrays(vectors.arrays, vectors.meta.get("collaborative", ""))
        self._tokens = functools.lru_cache(maxsize=16_384)(self._tokens_of)  # this artifact's, gone with it
        # A path asks twice (the pick's path, then the attribute path it rests on): once is enough.
        self.shared_token = functools.lru_cache(maxsize=1_024)(self.shared_token)

    def shopper_erased(self, shopper_id: str) -> None:
        """Forget the shopper's learnt vector in this process: its id leaves the lookup and the
        in-memory copy of the id and vector are blanked (the files: `vectors.erase_shopper_from_artifacts`)."""
        row = self.shopper_row.pop(shopper_id, None)
        if row is not None:
            self.vectors.arrays["shopper"][row] = 0.0
            self.vectors.ids["shopper"][row] = ""

    def offer(self, offers: Offers, anchors: dict[str, tuple[float, str]], state: ShopperState,
              page: bool, out: set[str], session_share: float = 1.0) -> None:
        """The sources that need the artifact, each over the whole catalogue: LookGNN's score
        for completing the anchors (as `LookVectors.complete` serves it: the category-gated
        complement plus the content match at its validated weight), content match alone, the
        crowd's counted co-engagement, the shopper's preference vector, and in a feed the best
        sellers. The catalogue-wide scores stay on `offers.catalogue` for the features."""
        vectors = self.vectors
        rows = [(r, w) for a, (w, _) in anchors.items() if (r := self.row.get(a)) is not None]
        touched = np.fromiter((r for pid in out if (r := self.row.get(pid)) is not None), dtype=np.int64)
        complement_top = content_top = preference_top = popular_top = np.zeros(0, dtype=np.int64)
        crowd_top: list[tuple[int, float, int, int]] = []
        catalogue = offers.catalogue
        if rows:
            anchor_rows, weights = np.array([r for r, _ in rows]), np.array([w for _, w in rows])
            seen = np.concatenate([touched, anchor_rows])
            # On a product page most of the list must come from other categories than the
            # items in view: the best of those, and a fifth as many of the same categories.
            same = np.isin(vectors.product_category, vectors.product_category[anchor_rows]) if page else None

            def best(scores: np.ndarray, k: int) -> np.ndarray:
                if same is None:
                    return top_rows(scores, k, seen)
                across, alike = scores.copy(), scores.copy()
                across[same], alike[~same] = -np.inf, -np.inf
                return np.concatenate([top_rows(across, k, seen), top_rows(alike, k // 5, seen)])

            catalogue["content"] = match = vectors.content_scores(anchor_rows, weights / weights.sum())
            catalogue["complement"] = complement = vectors.complete(anchor_rows, cap=None, weights=weights, content=match)
            complement_top = best(complement, NEIGHBOURS)
            content_top = best(match, PERSONAL)
            content_top = content_top[match[content_top] > 0]
            crowd_rows, crowd_evidence, crowd_anchor, crowd_count = self.co_engaged(anchor_rows, weights)
            catalogue["co_engagement"] = (crowd_rows, crowd_evidence)
            fresh = ~np.isin(crowd_rows, seen) & (~same[crowd_rows] if same is not None else True)
            top = np.flatnonzero(fresh)[np.argsort(-crowd_evidence[fresh], kind="stable")[:NEIGHBOURS]]
            crowd_top = [(int(crowd_rows[t]), float(crowd_evidence[t]), int(crowd_anchor[t]), int(crowd_count[t])) for t in top]
        history = self.history(state, session_share)
        collaborative_top = np.zeros(0, dtype=np.int64)
        if self.collaborative is not None and len(history[0]):
            reach = self.collaborative.reach(history[0], len(vectors.ids["product"]))  # once: scores and reasons
            catalogue["collaborative"] = scores = reach.scores(history[1])
            collaborative_top = top_rows(scores, PERSONAL, np.concatenate([touched, history[0]]))
            collaborative_top = collaborative_top[scores[collaborative_top] > 0]
        preference = self.preference(state, session_share)
        if preference is not None:
            catalogue["preference"] = scores = vectors.arrays["product"] @ preference
            preference_top = top_rows(scores, PERSONAL, touched)
        if not page and self.popular is not None:  # a feed may hold best sellers; a product page, complements
            popular_top = self.popular[~np.isin(self.popular, touched)][:NEIGHBOURS // 2]
        product_ids = vectors.ids["product"]
        offered = np.unique(np.concatenate([complement_top, content_top, preference_top, popular_top, collaborative_top,
                                            np.array([r for r, *_ in crowd_top], dtype=np.int64)]))  # the sources overlap
        found = self.graph.cards([product_ids[r] for r in offered.tolist()])
        anchor_list = tuple((a, anchors[a][1]) for a in anchors)
        anchor_ids = [product_ids[r] for r, _ in rows]
        for r, evidence, anchor, count in crowd_top:
            if (card := found.get(product_ids[r]) or offers.card(product_ids[r])) is not None:
                offers.add(card, "crowd", evidence, explain.crowd_path, (anchor_ids[anchor], card.id, count))
        for rank, r in enumerate(popular_top.tolist()):
            if (card := found.get(product_ids[r])) is not None:
                name = self.graph.categories.names.get(card.category, card.category) if card.category else None
                offers.add(card, "popular", 1.0 - rank / len(popular_top), explain.popular_path, (card.category, name, card.id))
        verb_of = history[2]
        strongest = reach.strongest(collaborative_top) if len(collaborative_top) else {}
        for rank, r in enumerate(collaborative_top.tolist()):
            if r in strongest and (card := found.get(product_ids[r]) or offers.card(product_ids[r])) is not None:
                anchor, _ = strongest[r]
                offers.add(card, "collaborative", 1.0 - rank / len(collaborative_top), explain.collaborative_path,
                           (state.shopper_id, product_ids[anchor], card.id, verb_of.get(anchor, "had")))
        for source, top, build in (("embedding", complement_top, self.complement_path),
                                   ("content", content_top, self.content_path),
                                   ("personal", preference_top, self.personal_path)):
            for rank, r in enumerate(top.tolist()):
                if (card := found.get(product_ids[r]) or offers.card(product_ids[r])) is not None:
                    args = (state.shopper_id, anchor_list, card.id) if source == "personal" else (anchor_list, card.id)
                    offers.add(card, source, 1.0 - rank / len(top), build, args)

    def co_engaged(self, anchor_rows: np.ndarray, weights: np.ndarray):
        """The anchors' companions in the artifact's crowd counts: (product rows, evidence summed
        over the anchors as weight x log(1 + count), the anchor that gives most, its count)."""
        arrays = self.vectors.arrays
        if "crowd_indptr" not in arrays:
            empty = np.zeros(0, dtype=np.int64)
            return empty, np.zeros(0), empty, empty
        indptr, items, counts = arrays["crowd_indptr"], arrays["crowd_items"], arrays["crowd_counts"]
        spans = [(int(indptr[r]), int(indptr[r + 1])) for r in anchor_rows]
        rows = np.concatenate([items[s:e] for s, e in spans]).astype(np.int64)
        count = np.concatenate([counts[s:e] for s, e in spans]).astype(np.int64)
        anchor = np.repeat(np.arange(len(spans)), [e - s for s, e in spans])
        evidence = weights[anchor] * np.log1p(count)
        unique, slot = np.unique(rows, return_inverse=True)
        total = np.bincount(slot, weights=evidence, minlength=len(unique))
        best = np.lexsort((-evidence, slot))  # per product, its strongest anchor first
        first = best[np.searchsorted(slot[best], np.arange(len(unique)))]
        return unique, total, anchor[first], count[first]

    def history(self, state: ShopperState, session_share: float) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """The shopper's profile (not gifts, not trips off their taste) and current session (its
        events times `session_share`) as product rows, each weighted by its strongest event
        (`STRENGTH`), and how they had it."""
        strongest: dict[int, tuple[float, str]] = {}
        session = state.current.events if state.current is not None else []
        for e, share in [*((e, 1.0) for e in state.profile_events), *((e, session_share) for e in session)]:
            if e.type in STRENGTH and (r := self.row.get(e.product_id)) is not None:
                if share * STRENGTH[e.type] > strongest.get(r, (0.0, ""))[0]:
                    strongest[r] = (share * STRENGTH[e.type], explain.VERBS.get(e.type, e.type))
        rows = np.fromiter(strongest, dtype=np.int64, count=len(strongest))
        return rows, np.array([w for w, _ in strongest.values()]), {r: verb for r, (_, verb) in strongest.items()}

    def preference(self, state: ShopperState, session_share: float = 1.0) -> np.ndarray | None:
        """The shopper's preference vector: learnt in training, plus their profile's engagement
        since folded in (each product's vector weighted by the event's strength; the current
        session's times `session_share`, `policies.session_weight`)."""
        vectors = self.vectors
        learnt = self.shopper_row.get(state.shopper_id) if state.shopper_id else None
        rows = [(r, STRENGTH[e.type]) for e in state.profile_events[-50:]
                if e.type in STRENGTH and (r := self.row.get(e.product_id)) is not None]
        if state.current is not None:  # as much as the profile's once the session says enough
            rows += [(r, session_share * STRENGTH.get(e.type, 0.5)) for e in state.current.events[-10:]
                     if e.type in STRENGTH and (r := self.row.get(e.product_id)) is not None]
        if learnt is None and not rows:
            return None
        vector = np.zeros(vectors.arrays["product"].shape[1], dtype=np.float32)
        if learnt is not None:
            vector += vectors.arrays["shopper"][learnt]
        if rows:
            folded = vectors.arrays["product"][[r for r, _ in rows]]
            weights = np.array([w for _, w in rows], dtype=np.float32)
            vector += (weights[:, None] * folded).sum(0) / weights.sum()
        return vector

    # -- paths, for the items returned only -----------------------------------------------------
    def content_path(self, cards, anchors: tuple[tuple[str, str], ...], pid: str) -> explain.Path:
        """The anchor and the attribute (or category) it shares with `pid` that says most."""
        anchor, token = self.shared_token(anchors, pid)
        vectors = self.vectors
        n_attributes = len(vectors.ids.get("attribute", []))
        if anchor is None:
            return explain.embedding_path(cards, anchors[0][0], pid)
        verb = dict(anchors)[anchor]
        if token < n_attributes:
            return explain.attribute_path(cards, anchor, vectors.ids["attribute"][token], pid, verb)
        category = vectors.ids["category"][token - n_attributes]
        name = self.graph.categories.names.get(category, category)
        return explain.Path([explain._step(cards, anchor), explain.Step("Category", category, name), explain._step(cards, pid)],
                            ["IN_CATEGORY", "IN_CATEGORY"],
                            f"also in {name}, like the {explain._name(cards, anchor)} you {verb}")

    def complement_path(self, cards, anchors: tuple[tuple[str, str], ...], pid: str) -> explain.Path:
        """LookGNN's pick, shown by the graph path it rests on when there is one (an attribute
        or category shared with an anchor), else as the model's own judgement."""
        anchor, _ = self.shared_token(anchors, pid)
        if anchor is not None:
            return self.content_path(cards, anchors, pid)
        return explain.embedding_path(cards, anchors[0][0], pid)

    def personal_path(self, cards, shopper_id: str | None, anchors: tuple[tuple[str, str], ...], pid: str) -> explain.Path:
        anchor, token = self.shared_token(anchors, pid)
        if anchor is not None:  # a graph path to what they had, when there is one
            path = self.content_path(cards, anchors, pid)
            return explain.Path([explain.Step("Shopper", shopper_id or "", shopper_id or "this visit"), *path.nodes],
                                ["INTERACTED", *path.relationships], f"for your taste: {path.sentence}")
        closest = anchors[0] if anchors else (pid, "viewed")
        return explain.personal_path(cards, shopper_id, closest[0], pid, closest[1])

    def shared_token(self, anchors: tuple[tuple[str, str], ...], pid: str) -> tuple[str | None, int]:
        """The anchor sharing the most telling attribute or category with `pid`, and that token
        (the largest product of the two TF-IDF weights; on a tie the first anchor, then the
        lowest token), or (None, -1)."""
        mine = self._tokens(pid)  # each product's read once, for the paths of many requests
        best = (0.0, None, -1)
        for anchor, _ in anchors:
            theirs = self._tokens(anchor)
            for token in sorted(mine.keys() & theirs.keys()):
                if (weight := mine[token] * theirs[token]) > best[0]:
                    best = (weight, anchor, token)
        return best[1], best[2]

    def _tokens_of(self, pid: str) -> dict[int, float]:
        """A product's TF-IDF tokens (attributes, then categories) and their weights; {} for a
        product the artifact does not know."""
        row = self.row.get(pid)
        if row is None:
            return {}
        arrays = self.vectors.arrays
        span = slice(int(arrays["content_indptr"][row]), int(arrays["content_indptr"][row + 1]))
        return dict(zip(arrays["content_tokens"][span].tolist(), arrays["content_weights"][span].tolist()))
