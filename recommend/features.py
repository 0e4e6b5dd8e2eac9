"""Features: one row per candidate, the ranker's whole view of it.

Contract: `features(offers, rows, context)` returns a float matrix [len(rows), len(FEATURES)]
for the candidates `rows` of `offers`, computed from the offers' evidence and the `Context` of
the request. A feature the request cannot know (no trained model, no history) is 0, never
missing, so one ranker serves every request. `describe` is the pipeline's stage: the context
of one request, then its features.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from .candidates import SOURCES, Offers
from .model_sources import STRENGTH

FEATURES = (
    *(f"evidence_{s}" for s in SOURCES),
    "paths",              # how many reasons offered it
    "complement",         # LookGNN's category-gated complement score with the anchors (standardised)
    "preference",         # the shopper's preference vector . the product's (standardised)
    "content_match",      # TF-IDF cosine of its attributes and category path with the anchors'
    "co_engagement",      # looks and sessions it shares with the anchors (the artifact's crowd counts)
    "collaborative",      # the item-to-item index's score for the shopper's profile (standardised)
    "popularity",         # log(1 + positive events) in the training graph
    "trend",              # log(1 + positive events) in its last 30 days
    "same_leaf",          # shares a leaf category with an anchor
    "leaf_affinity",      # share of the shopper's profile events in its leaf category
    "group_affinity",     # ... in its category group
    "department_affinity",  # ... in its department (who it is for: women, men, home...)
    "leaf_return_rate",   # how often shoppers engage with a second product of its leaf category
    "history",            # log(1 + the shopper's profile events)
    "in_view",            # the request names an item in view or a session is going on
)


@dataclass
class Context:
    """What the features need to know of one request, beyond the offers."""

    anchor_leaves: set = field(default_factory=set)
    leaf_share: dict = field(default_factory=dict)
    group_share: dict = field(default_factory=dict)
    department_share: dict = field(default_factory=dict)
    history: int = 0
    in_view: bool = False
    group_of: callable = None
    department_of: callable = None
    complement: np.ndarray | None = None
    preference: np.ndarray | None = None
    content: np.ndarray | None = None
    co_engagement: np.ndarray | None = None
    collaborative: np.ndarray | None = None
    popularity: np.ndarray | None = None
    trend: np.ndarray | None = None
    leaf_return: dict = field(default_factory=dict)


def features(offers: Offers, rows: list[int], evidence: np.ndarray, context: Context) -> np.ndarray:
    """[len(rows), len(FEATURES)]; `evidence` is `offers.evidence()`; the context's per-candidate
    arrays (complement, preference, content, popularity, trend) are aligned with `rows`."""
    n = len(rows)
    out = np.zeros((n, len(FEATURES)))
    if not n:
        return out
    idx = np.asarray(rows)
    s = len(SOURCES)
    out[:, :s] = np.log1p(np.maximum(evidence[idx], 0.0))
    out[:, s] = np.log1p(offers.reasons()[idx])
    arrays = ("complement", "preference", "content", "co_engagement", "collaborative", "popularity", "trend")
    for j, name in enumerate(arrays):
        values = getattr(context, name)
        if values is not None:
            out[:, s + 1 + j] = values
    c = s + 1 + len(arrays)
    # The leaf category's five features, worked out once per leaf (candidates share a few leaves).
    of_leaf: dict = {}
    for leaf in {offers.cards[i].category for i in rows}:
        group = context.group_share.get(context.group_of(leaf), 0.0) if context.group_of is not None else 0.0
        department = (context.department_share.get(context.department_of(leaf), 0.0)
                      if context.department_of is not None else 0.0)
        of_leaf[leaf] = (leaf in context.anchor_leaves, context.leaf_share.get(leaf, 0.0), group, department,
                         context.leaf_return.get(leaf, 0.0))
    out[:, c : c + 5] = [of_leaf[offers.cards[i].category] for i in rows]
    out[:, c + 5] = np.log1p(context.history)
    out[:, c + 6] = float(context.in_view)
    return out


def describe(engine, request, offers: Offers, keep: list[int]) -> np.ndarray:
    """The features of the candidates `keep` of one request (a `request.Request`)."""
    tree, state, cards, anchors = engine.graph.categories, request.state, request.cards, request.anchors
    leaves, groups, departments = Counter(), Counter(), Counter()
    profile = [e.product_id for e in state.profile_events if e.type in STRENGTH and e.product_id in cards]
    # Without a history (a product page, for anyone), the items in view are the context.
    context_items = profile or [a for a in anchors if a in cards]
    for pid in context_items:
        leaf = cards[pid].category
        leaves[leaf] += 1
        groups[tree.group(leaf)] += 1
        departments[tree.department(leaf)] += 1
    total = max(len(context_items), 1)
    model = engine.model
    context = Context(
        anchor_leaves={cards[a].category for a in anchors} - {None},
        leaf_share={k: v / total for k, v in leaves.items()}, group_share={k: v / total for k, v in groups.items()},
        department_share={k: v / total for k, v in departments.items()}, department_of=tree.department,
        history=len(profile), in_view=request.page or state.current is not None, group_of=tree.group,
        leaf_return=model.leaf_return if model else {})
    if model is not None:
        rows = np.fromiter((model.row.get(offers.cards[i].id, -1) for i in keep), dtype=np.int64, count=len(keep))
        known = rows >= 0
        at = np.maximum(rows, 0)
        catalogue = offers.catalogue
        if "complement" in catalogue:
            context.complement = _standardised(catalogue["complement"][at], known)
            context.content = np.where(known, catalogue["content"][at], 0.0)
            crowd_rows, crowd_evidence = catalogue["co_engagement"]
            if len(crowd_rows):
                slot = np.minimum(np.searchsorted(crowd_rows, rows), len(crowd_rows) - 1)
                context.co_engagement = np.where(known & (crowd_rows[slot] == rows), crowd_evidence[slot], 0.0)
        if "preference" in catalogue:
            context.preference = _standardised(catalogue["preference"][at], known)
        if "collaborative" in catalogue:
            context.collaborative = _standardised(catalogue["collaborative"][at], known)
        for name in ("popularity", "trend"):
            if name in engine.vectors.arrays:
                setattr(context, name, np.where(known, np.log1p(engine.vectors.arrays[name][at]), 0.0))
    return features(offers, keep, offers.evidence(), context)


def _standardised(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Scores standardised over the known rows; unknown rows 0."""
    out = np.zeros(len(scores))
    if known.sum() > 1:
        values = scores[known]
        out[known] = (values - values.mean()) / (values.std() + 1e-9)
    return out
