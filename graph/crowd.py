"""The crowd's co-engagement, materialized in the graph:
`(:Product)-[:BOUGHT_WITH {sessions, lift, updated_at}]->(:Product)`.

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
a lease in the store), and `lookgraph refresh-crowd` runs it at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from .traversal import CO_SESSIONS_SCANNED, MAX_SESSION_ITEMS

BOUGHT_WITH_PER_PRODUCT = 20
"""As many as a walk reads from an anchor (`Traversal.walk`'s `crowd_per_anchor`)."""


def co_engagement(events: Iterable[tuple[str, str, float]]) -> list[tuple[str, str, int, float]]:
    """`events`: (session, product, time) of every event but dismissals. Returns
    (product, companion, sessions, lift) rows, each product's companions most sessions first
    (then by id), products in id order."""
    items: dict[str, set[str]] = defaultdict(set)
    started: dict[str, float] = {}
    for session, product, ts in events:
        items[session].add(product)
        started[session] = min(started.get(session, ts), ts)
    kept = {s: members for s, members in items.items() if 1 < len(members) <= MAX_SESSION_ITEMS}
    ids = sorted({p for members in kept.values() for p in members})
    if not ids:
        return []
    position = {p: i for i, p in enumerate(ids)}
    holders = np.zeros(len(ids), dtype=np.int64)
    newest: dict[int, list[tuple[float, str]]] = defaultdict(list)
    for s, members in kept.items():
        for p in members:
            holders[position[p]] += 1
            newest[position[p]].append((started[s], s))
    rows, cols = [], []
    for a, sessions in newest.items():
        sessions.sort(reverse=True)  # each product's newest sessions only: a bestseller costs what any product costs
        for _, s in sessions[:CO_SESSIONS_SCANNED]:
            others = np.fromiter((position[q] for q in kept[s]), dtype=np.int64)
            others = others[others != a]
            rows.append(np.full(len(others), a))
            cols.append(others)
    n = len(ids)
    keys, counts = np.unique(np.concatenate(rows) * n + np.concatenate(cols), return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((dst, -counts, src))
    src, dst, counts = src[order], dst[order], counts[order]
    first = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    rank = np.arange(len(src)) - np.repeat(first, np.diff(np.r_[first, len(src)]))
    keep = rank < BOUGHT_WITH_PER_PRODUCT
    src, dst, counts = src[keep], dst[keep], counts[keep]
    lift = counts * len(kept) / (holders[src] * holders[dst])
    return [(ids[a], ids[b], int(c), round(float(x), 4)) for a, b, c, x in zip(src, dst, counts, lift)]


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
    rows = co_engagement((e.session_id, e.product_id, e.ts) for e in store.iter_records("events") if e.type != "dismiss")
    store.replace_bought_with(rows, {"events": events, "changes": changes, "at": clock()})
    return {"products": len({r[0] for r in rows}), "rows": len(rows), "seconds": round(time.perf_counter() - started, 2)}


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
