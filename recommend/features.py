"""Features: one row per candidate, the ranker's whole view of it.

Contract: `features(offers, rows, context)` returns a float matrix [len(rows), len(FEATURES)]
for the candidates `rows` of `offers`, computed from the offers' evidence and the `Context` of
the request. A feature the request cannot know (no trained model, no history) is 0, never
missing, so one ranker serves every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .candidates import SOURCES, Offers

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
    counts = np.bincount(offers.walks.candidate, minlength=len(offers.cards)).astype(np.float64)
    for i, *_ in offers.others:
        counts[i] += 1
    out[:, s] = np.log1p(counts[idx])
    arrays = ("complement", "preference", "content", "co_engagement", "collaborative", "popularity", "trend")
    for j, name in enumerate(arrays):
        values = getattr(context, name)
        if values is not None:
            out[:, s + 1 + j] = values
    c = s + 1 + len(arrays)
    leaves = [offers.cards[i].category for i in rows]
    out[:, c] = [leaf in context.anchor_leaves for leaf in leaves]
    out[:, c + 1] = [context.leaf_share.get(leaf, 0.0) for leaf in leaves]
    if context.group_of is not None:
        out[:, c + 2] = [context.group_share.get(context.group_of(leaf), 0.0) for leaf in leaves]
    if context.department_of is not None:
        out[:, c + 3] = [context.department_share.get(context.department_of(leaf), 0.0) for leaf in leaves]
    out[:, c + 4] = [context.leaf_return.get(leaf, 0.0) for leaf in leaves]
    out[:, c + 5] = np.log1p(context.history)
    out[:, c + 6] = float(context.in_view)
    return out
