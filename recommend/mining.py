"""Looks where no merchandiser made any: products bought or carted together, across
categories, more often than chance.

Contract: `mine_looks(graph)` reads a `GraphExport` and returns `Look` records marked `mined`,
each with its `support` (baskets that hold every item of it) and `lift` (the least, over its
pairs, of how many times more often than chance the pair shares a basket). `lookgraph train`
mines them from the training graph, trains on them with the curated looks, and writes them to
the store, replacing the earlier mined ones; the walks then reach them as any look, and the
explanation says "often bought together" instead of naming a look.

A basket is a session's carted and bought products (in a shop that records neither, its viewed
ones), cut in time order into windows of at most `WINDOW` items. A pair qualifies when its two
products have different leaf categories, share at least `min_support` baskets, and have a lift
of at least `min_lift`. Looks grow greedily from the strongest pairs: an item joins when it
qualifies with every member and brings a category the look lacks, up to `max_items`; each
product is in at most `per_product` mined looks.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..embeddings.baselines import session_windows
from ..embeddings.export import GraphExport
from ..graph.model import Look

WINDOW = 50
MINED_PREFIX = "mined:"


def baskets(graph: GraphExport) -> list[np.ndarray]:
    """Distinct products per basket (sorted), as described above."""
    strong = (1, 2)  # cart, purchase
    return session_windows(graph, strong if np.isin(graph.event_type, strong).any() else (0,), WINDOW)


def mine_looks(graph: GraphExport, min_support: int = 2, min_lift: float = 2.0, max_items: int = 4,
               per_product: int = 3, limit: int = 100_000) -> list[Look]:
    n = graph.count("product")
    found = baskets(graph)
    if not found or not n:
        return []
    category = graph.product_category
    item_support = np.bincount(np.concatenate(found), minlength=n).astype(np.float64)
    firsts, seconds = [], []
    for items in found:
        a, b = np.triu_indices(len(items), 1)
        firsts.append(items[a])
        seconds.append(items[b])
    first, second = np.concatenate(firsts), np.concatenate(seconds)
    across = (category[first] >= 0) & (category[second] >= 0) & (category[first] != category[second])
    keys, support = np.unique(first[across] * n + second[across], return_counts=True)
    a, b = keys // n, keys % n
    lift = support * len(found) / (item_support[a] * item_support[b])
    good = (support >= min_support) & (lift >= min_lift)
    a, b, support, lift = a[good], b[good], support[good], lift[good]
    pair = {(int(x), int(y)): (int(s), float(f)) for x, y, s, f in zip(a, b, support, lift)}
    partners: dict[int, list[int]] = {}
    for x, y in pair:
        partners.setdefault(x, []).append(y)
        partners.setdefault(y, []).append(x)

    def stats(x: int, y: int) -> tuple[int, float]:
        return pair[(x, y) if x < y else (y, x)]

    used = np.zeros(n, dtype=np.int64)
    looks, seen = [], set()
    for i in np.lexsort((-lift, -support)).tolist():  # strongest pairs first
        members = [int(a[i]), int(b[i])]
        if used[members].max() >= per_product:
            continue
        candidates = sorted(set(partners[members[0]]) & set(partners[members[1]]),
                            key=lambda c: -min(stats(c, m)[1] for m in members))
        for c in candidates:
            if len(members) >= max_items:
                break
            if used[c] < per_product and category[c] not in {category[m] for m in members} \
                    and all((min(c, m), max(c, m)) in pair for m in members):
                members.append(c)
        key = tuple(sorted(members))
        if key in seen:
            continue
        seen.add(key)
        used[members] += 1
        pairs = [stats(x, y) for j, x in enumerate(members) for y in members[j + 1 :]]
        looks.append(_look(graph, members, min(s for s, _ in pairs), min(f for _, f in pairs)))
        if len(looks) >= limit:
            break
    return looks


def _look(graph: GraphExport, members: list[int], support: int, lift: float) -> Look:
    ids = [graph.ids["product"][m] for m in members]
    names = [graph.category_names[c] if 0 <= (c := int(graph.product_category[m])) < len(graph.category_names)
             else graph.ids["category"][c] for m in members]
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]
    return Look(f"{MINED_PREFIX}{digest}", "often bought together: " + " + ".join(names), tuple(ids),
                mined=True, support=support, lift=round(lift, 3))
