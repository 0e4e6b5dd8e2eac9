"""The crowd's co-engagement, materialized in the graph:
`(:Product)-[:BOUGHT_WITH {sessions, lift, updated_at}]->(:Product)`; and the looks' category
complements: `(:Category)-[:GOES_WITH {looks, lift, updated_at}]->(:Category)`.

For each product, the `BOUGHT_WITH_PER_PRODUCT` products most often engaged with (anything but
a dismissal) in the same session, counted over its newest `CO_SESSIONS_SCANNED` sessions of 2
to `MAX_SESSION_ITEMS` distinct products (a longer session says little about what goes
together):

    sessions(a, b) = |{s : a in s, b in s}|
    lift(a, b)     = sessions(a, b) * S / (n(a) * n(b))

where S is the number of such sessions and n(x) those holding x: above 1, more often together
than chance. Both stores write the rows this one function computes (`co_engagement`), each its
own way (`GraphStore.replace_bought_with`), and walk them the same way (`co_sessions`): a
request reads a product's companions instead of walking the crowd's sessions.

When it is refreshed: in the transaction of a load that wrote events (so a load is never
served half counted), and for events appended since (the API's `POST /events`) or shoppers
erased, by `refresh` whenever the store's events or erasures moved on: every serving process
checks every `LOOKGRAPH_CROWD_REFRESH_SECONDS` and one at a time recomputes it (`refresh_when_due`,
a lease in the store), and `lookgraph refresh-crowd` runs it at once. `GOES_WITH` is rewritten
by the store itself in every write that changes looks (a load, `train`'s mined looks, a look
created), the store reading its looks' categories back: looks are few, so that costs
milliseconds, and it is never stale.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

import numpy as np

from .traversal import CO_SESSIONS_SCANNED, MAX_SESSION_ITEMS

BOUGHT_WITH_PER_PRODUCT = 20
"""As many as a walk reads from an anchor (`Traversal.walk`'s `crowd_per_anchor`)."""


def co_engagement(events: Iterable[tuple[str, str, float]]) -> list[tuple[str, str, int, float]]:
    """`events`: (session, product, time) of every event but dismissals. Returns
    (product, companion, sessions, lift) rows, each product's companions most sessions first
    (then by id), products in id order. In arrays throughout: 1M events take a few seconds."""
    rows = list(events)
    if not rows:
        return []
    session_ids, s = _numbered(row[0] for row in rows)
    ids, p = _numbered(row[1] for row in rows)
    ts = np.fromiter((row[2] for row in rows), dtype=np.float64, count=len(rows))
    started = np.full(len(session_ids), np.inf)
    np.minimum.at(started, s, ts)
    # Distinct (session, product) memberships, by session; sessions of 2 to MAX_SESSION_ITEMS products.
    member = np.unique(s.astype(np.int64) * len(ids) + p)
    m_session, m_product = member // len(ids), member % len(ids)
    size = np.bincount(m_session, minlength=len(session_ids))
    kept = (size[m_session] > 1) & (size[m_session] <= MAX_SESSION_ITEMS)
    m_session, m_product = m_session[kept], m_product[kept]
    if not len(m_session):
        return []
    holders = np.bincount(m_product, minlength=len(ids))
    together = int((np.bincount(m_session, minlength=len(session_ids)) > 0).sum())
    # Each product counts its newest CO_SESSIONS_SCANNED sessions only: a bestseller costs what any product costs.
    order = np.lexsort((-m_session, -started[m_session], m_product))  # newest first; ties: the later id first
    first = np.r_[0, np.flatnonzero(np.diff(m_product[order])) + 1]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(first, np.diff(np.r_[first, len(order)]))
    scanned = rank < CO_SESSIONS_SCANNED
    # Every scanned membership (a in s) meets every other product of s.
    session_start = np.r_[0, np.cumsum(np.bincount(m_session, minlength=len(session_ids)))]
    a_rows = np.flatnonzero(scanned)
    width = np.bincount(m_session, minlength=len(session_ids))[m_session[a_rows]]
    a = np.repeat(m_product[a_rows], width)
    offsets = np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width)
    b = m_product[np.repeat(session_start[m_session[a_rows]], width) + offsets]
    a, b = a[a != b], b[a != b]
    n = len(ids)
    keys, counts = np.unique(a * n + b, return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((dst, -counts, src))
    src, dst, counts = src[order], dst[order], counts[order]
    first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    rank = np.arange(len(src)) - np.repeat(first, np.diff(np.r_[first, len(src)]))
    keep = rank < BOUGHT_WITH_PER_PRODUCT
    src, dst, counts = src[keep], dst[keep], counts[keep]
    lift = np.round(counts * together / (holders[src] * holders[dst]), 4)
    return list(zip(ids[src].tolist(), ids[dst].tolist(), counts.tolist(), lift.tolist()))


def _numbered(values: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values in order, each value's position among them): `np.unique` with
    `return_inverse`, hashing rather than sorting every one of a million strings."""
    seen: dict[str, int] = {}
    first = np.fromiter((seen.setdefault(v, len(seen)) for v in values), dtype=np.int64)
    distinct = np.array(list(seen), dtype=object)
    order = np.argsort(distinct, kind="stable")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return distinct[order], position[first]


def due(store) -> bool:
    """Whether events were added or shoppers erased since `BOUGHT_WITH` was last computed."""
    state = store.bought_with_state()
    if state is None:
        return store.events_watermark() > 0
    if store.events_watermark() != state["events"]:
        return True
    return any(kind == "shopper" for _, kind, _ in store.changes_since(state["changes"]))


def refresh(store, clock=time.time) -> dict:
    """Recompute `BOUGHT_WITH` from every event the store holds and replace it; returns what
    was written (products, rows, seconds). Idempotent: two processes refreshing at once write
    the same rows."""
    started = time.perf_counter()
    events, changes = store.events_watermark(), store.latest_change()  # before reading: a later write makes it due again
    rows = co_engagement(store.engagements())
    store.replace_bought_with(rows, {"events": events, "changes": changes, "at": clock()})
    return {"products": len({r[0] for r in rows}), "rows": len(rows), "seconds": round(time.perf_counter() - started, 2)}


GOES_WITH_PER_CATEGORY = 20
"""Each leaf category's most frequent partners in looks that are kept."""


def goes_with(looks: Iterable[Iterable[str | None]]) -> list[tuple[str, str, int, float]]:
    """The looks' category complements: for the leaf categories of each look's items (None:
    an item without one), every pair of distinct categories one look puts together:

        looks(a, b) = |{l : a in l, b in l}|
        lift(a, b)  = looks(a, b) * L / (n(a) * n(b))

    where L is the number of looks of two or more categories and n(x) those holding x.
    Returns (category, partner, looks, lift) rows, each category's `GOES_WITH_PER_CATEGORY`
    partners most looks first (then by id), categories in id order. What every store writes
    whenever its looks change (`replace_goes_with`): what completes jeans, for a merchandiser
    in the Browser, without walking every look."""
    together: Counter = Counter()
    holders: Counter = Counter()
    counted = 0
    for items in looks:
        categories = sorted({c for c in items if c is not None})
        if len(categories) < 2:
            continue
        counted += 1
        holders.update(categories)
        together.update((a, b) for a in categories for b in categories if a != b)
    by_category: dict[str, list[tuple[int, str]]] = {}
    for (a, b), n in together.items():
        by_category.setdefault(a, []).append((-n, b))
    rows = []
    for a in sorted(by_category):
        for negative, b in sorted(by_category[a])[:GOES_WITH_PER_CATEGORY]:
            rows.append((a, b, -negative, round(-negative * counted / (holders[a] * holders[b]), 4)))
    return rows


REFRESH_LEASE_SECONDS = 1_800.0
"""How long one process may hold the refresh before another may take over (one that died)."""


def refresh_when_due(store, clock=time.time) -> dict | None:
    """What each serving process runs now and then: `refresh` when `due`, by one process at a
    time across every worker and server (a lease kept in the store). None when not due or
    another process is at it."""
    if not due(store) or not store.claim_crowd_refresh(clock(), REFRESH_LEASE_SECONDS):
        return None
    try:
        return refresh(store, clock)
    finally:
        store.release_crowd_refresh()
