"""The harness's splits: what is held out of a graph, and the queries that ask for it.

- `make_split`: looks held out with their session's siblings, the latest product of a share of
  shoppers, the last item of a share of sessions (stores without looks); the training graph
  keeps none of what the queries ask for (`tests/test_evaluation.py`).
- `hold_out_futures`: everything from one moment on, for the ranker to learn what shoppers go
  on to, asked before that moment (the default); `hold_out_latest_visits`, each shopper's
  latest visits, where too few shoppers span any one moment;
- `hold_out_missing`: a random fifth of chosen shoppers' products, for a catalogue where the
  order of engagement says nothing (ratings entered in bulk): the ranker learns to complete a
  taste rather than to foresee (`TrainConfig.ranker_split = "random"`).

Used by the evaluation (`embeddings/evaluate.py`) and by `lookgraph train`
(`recommend/offline.py`), which import this module and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .baselines import shopper_products
from .export import GraphExport
from .metrics import Query


@dataclass
class Split:
    train: GraphExport
    looks: list[Query] = field(default_factory=list)
    validation: list[Query] = field(default_factory=list)
    shoppers: list[tuple[int, Query]] = field(default_factory=list)
    shopper_times: list[float] = field(default_factory=list)
    """When each held-out shopper interaction happened (the engine is asked just before)."""
    sessions: list[Query] = field(default_factory=list)


def event_shoppers(graph: GraphExport) -> np.ndarray:
    """Each interaction's shopper (its session's), -1 for an anonymous visitor's."""
    owner = np.full(graph.count("session"), -1)
    had = graph.edges[("shopper", "had", "session")]
    owner[had[1]] = had[0]
    return owner[graph.edges[("session", "interacted", "product")][0]]


def without(graph: GraphExport, drop: dict[tuple[str, str, str], np.ndarray]) -> GraphExport:
    """A copy of `graph` without the edges masked True in `drop`."""
    edges, extras = {}, {}
    for edge_type, index in graph.edges.items():
        keep = ~drop[edge_type] if edge_type in drop else np.ones(index.shape[1], dtype=bool)
        edges[edge_type] = index[:, keep]
        if edge_type == ("session", "interacted", "product"):
            extras["event_type"], extras["event_ts"] = graph.event_type[keep], graph.event_ts[keep]
        if edge_type == ("look", "includes", "product"):
            extras["look_position"] = graph.look_position[keep]
    return GraphExport(graph.ids, edges, extras["event_type"], extras["event_ts"], extras["look_position"],
                       graph.product_category, graph.category_names, graph.mined_looks)


def make_split(graph: GraphExport, seed: int, test_share: float = 0.2, validation_share: float = 0.1,
               shopper_share: float = 0.2) -> Split:
    rng = np.random.default_rng(seed)
    interactions = graph.edges[("session", "interacted", "product")]
    drop = {e: np.zeros(graph.edges[e].shape[1], dtype=bool) for e in graph.edges}
    split = Split(graph)

    items = graph.look_items()
    includes = graph.edges[("look", "includes", "product")]
    found_in = graph.edges[("look", "found_in", "session")]
    # Looks found in one session are held out together: BundleRec's sibling bundles overlap
    # ({a, b} and {a, b, c}), and keeping one in training would hand over the other's answer.
    session_of = dict(zip(found_in[0].tolist(), found_in[1].tolist()))
    groups: dict[object, list[int]] = {}
    for look, its in enumerate(items):
        if len(its) >= 2:
            groups.setdefault(session_of.get(look, ("look", look)), []).append(look)
    order = [groups[k] for k in sorted(groups, key=str)]
    held: dict[int, str] = {}
    n_test, n_val = int(len(order) * test_share), int(len(order) * validation_share)
    for rank, g in enumerate(rng.permutation(len(order))[: n_test + n_val]):
        held |= dict.fromkeys(order[g], "test" if rank < n_test else "val")
    if held:
        held_ids = np.array(sorted(held))
        drop[("look", "includes", "product")] |= np.isin(includes[0], held_ids)
        drop[("look", "found_in", "session")] |= np.isin(found_in[0], held_ids)
        drop[("shopper", "saved", "look")] |= np.isin(graph.edges[("shopper", "saved", "look")][1], held_ids)
        # The sessions a held-out look was found in lose their interactions with its items.
        session_items = {(int(s), int(p)) for lk, s in found_in.T if int(lk) in held for p in items[int(lk)]}
        if session_items:
            keys = interactions[0] * graph.count("product") + interactions[1]
            held_keys = np.array([s * graph.count("product") + p for s, p in session_items])
            drop[("session", "interacted", "product")] |= np.isin(keys, held_keys)
        for look, kind in held.items():
            for k, target in enumerate(items[look]):
                query = Query(np.delete(items[look], k), int(target))
                (split.looks if kind == "test" else split.validation).append(query)

    # Shopper to product: the latest product of a share of shoppers with 3+ distinct products.
    pairs = shopper_products(graph)
    owner = np.full(graph.count("session"), -1)
    had = graph.edges[("shopper", "had", "session")]
    owner[had[1]] = had[0]
    event_shopper = owner[interactions[0]]
    latest: dict[int, tuple[float, int]] = {}
    for shopper, product, ts in zip(event_shopper, interactions[1], graph.event_ts):
        if shopper >= 0 and (shopper not in latest or ts > latest[shopper][0]):
            latest[int(shopper)] = (float(ts), int(product))
    counts = np.bincount(pairs[0], minlength=graph.count("shopper"))
    eligible = [s for s in sorted(latest) if counts[s] >= 3]
    for shopper in rng.permutation(eligible)[: int(len(eligible) * shopper_share)]:
        target = latest[int(shopper)][1]
        drop[("session", "interacted", "product")] |= (event_shopper == shopper) & (interactions[1] == target)
        # ...and from the looks found in their sessions, which would name it as well.
        their_looks = found_in[0][owner[found_in[1]] == shopper]
        drop[("look", "includes", "product")] |= np.isin(includes[0], their_looks) & (includes[1] == target)
        split.shoppers.append((int(shopper), Query(np.zeros(0, dtype=np.int64), target)))
        split.shopper_times.append(latest[int(shopper)][0] - 1.0)

    # Session next item, for graphs without looks: the last item of held-out sessions.
    if not len(items):
        order = np.lexsort((graph.event_ts, interactions[0]))
        sessions, products = interactions[0][order], interactions[1][order]
        bounds = np.flatnonzero(np.diff(sessions)) + 1
        groups = np.split(np.arange(len(sessions)), bounds)
        for group in rng.permutation(len(groups))[: int(len(groups) * test_share)]:
            rows = groups[group]
            sequence = products[rows]
            if len(np.unique(sequence)) >= 2 and sequence[-1] not in sequence[:-1]:
                split.sessions.append(Query(np.unique(sequence[:-1]), int(sequence[-1])))
                drop[("session", "interacted", "product")][order[rows]] = True

    split.train = without(graph, drop)
    # A shopper's history is what training kept of it (the sessions of held-out looks lost their
    # items), the same events the served engine reads from the training store.
    remaining = shopper_products(split.train)
    split.shoppers = [(s, Query(remaining[1][remaining[0] == s], q.target)) for s, q in split.shoppers]
    return split


def hold_out_futures(graph: GraphExport, seed: int, most: int, share: float = 0.2, least: int = 5
                     ) -> tuple[GraphExport, list[tuple[int, np.ndarray, float]]]:
    """What the ranker learns from, split in time for everyone at once: the moment T before
    which (1 - `share`) of the graph's engagement happened; every event from T on is held out
    of the graph, so that no feature, candidate or count (the crowd's included) reads anything
    later than the query. For up to `most` shoppers with `least` or more distinct products
    before T and a product new to them from T on, the query is their feed asked just before T,
    labelled by every product they went on to. Returns (the graph before T, [(shopper, those
    products, the query's moment)])."""
    rng = np.random.default_rng(seed)
    interactions = graph.edges[("session", "interacted", "product")]
    shopper = event_shoppers(graph)
    positive = np.isin(graph.event_type, (0, 1, 2))
    if not positive.any():
        return graph, []
    cut = float(np.quantile(graph.event_ts[positive], 1.0 - share))
    later = graph.event_ts >= cut
    before = positive & ~later & (shopper >= 0)
    after = positive & later & (shopper >= 0)
    n = graph.count("product")
    had_before = np.unique(shopper[before].astype(np.int64) * n + interactions[1][before])
    counts = np.bincount(had_before // n, minlength=graph.count("shopper"))
    went_on = np.unique(shopper[after].astype(np.int64) * n + interactions[1][after])
    went_on = went_on[~np.isin(went_on, had_before)]  # only what is new to them is a label
    who = went_on // n
    chosen = np.unique(who[counts[who] >= least])
    futures = [(int(s), np.sort(went_on[who == s] % n), cut - 1.0)
               for s in sorted(rng.permutation(chosen)[:most].tolist())]
    return without(graph, {("session", "interacted", "product"): later}), futures


def hold_out_missing(graph: GraphExport, seed: int, most: int, share: float = 0.2, least: int = 5
                     ) -> tuple[GraphExport, list[tuple[int, np.ndarray, float]]]:
    """For up to `most` shoppers with `least` or more distinct products, a random `share` of
    those products (every event of them) held out of the graph; the query is their feed asked
    after the graph's last event, labelled by the held-out products. Not split in time: the
    features see the rest of the shopper's history and the crowd's, later events included,
    so it suits only a catalogue where the order of engagement carries no information."""
    rng = np.random.default_rng(seed)
    interactions = graph.edges[("session", "interacted", "product")]
    shopper = event_shoppers(graph)
    positive = np.isin(graph.event_type, (0, 1, 2)) & (shopper >= 0)
    n = graph.count("product")
    pairs = np.unique(shopper[positive].astype(np.int64) * n + interactions[1][positive])
    who, products = pairs // n, pairs % n
    counts = np.bincount(who, minlength=graph.count("shopper"))
    chosen = np.flatnonzero(counts >= least)
    chosen = np.sort(rng.permutation(chosen)[:most])
    when = float(graph.event_ts.max()) + 1.0 if len(graph.event_ts) else 0.0
    drop = np.zeros(interactions.shape[1], dtype=bool)
    futures = []
    for s in chosen.tolist():
        mine = products[who == s]
        held = np.sort(rng.choice(mine, max(1, int(len(mine) * share)), replace=False))
        drop |= (shopper == s) & np.isin(interactions[1], held)
        futures.append((s, held, when))
    return without(graph, {("session", "interacted", "product"): drop}), futures


def hold_out_latest_visits(graph: GraphExport, seed: int, most: int, share: float = 0.2, least: int = 5
                     ) -> tuple[GraphExport, list[tuple[int, np.ndarray, float]]]:
    """For a shop whose shoppers come in short spells (too few span any one moment for
    `hold_out_futures`): for up to `most` shoppers with two or more sessions and `least` or
    more distinct products, their latest sessions (those holding about the last `share` of their
    products, at least one session) held out of the graph. Returns (the graph without them,
    [(shopper, the products new to them in those sessions, the moment before the first of those
    sessions began)]). The query is a feed asked at the start of a visit: it sees only what the
    shopper did before, and every product they went on to is a label. Each query's moment is
    its own, so the crowd's counts hold events after it (the one leak a single graph cannot
    avoid; `fit_artifact` says when it learns from this split)."""
    rng = np.random.default_rng(seed)
    interactions = graph.edges[("session", "interacted", "product")]
    shopper = event_shoppers(graph)
    positive = np.isin(graph.event_type, (0, 1, 2)) & (shopper >= 0)
    rows = np.flatnonzero(positive)[np.lexsort((graph.event_ts[positive], shopper[positive]))]
    by_shopper = np.split(rows, np.flatnonzero(np.diff(shopper[rows])) + 1) if len(rows) else []
    candidates = []
    for events in by_shopper:
        sessions = interactions[0][events]
        if len(np.unique(interactions[1][events])) < least or len(np.unique(sessions)) < 2:
            continue
        # Sessions in the order they began; the latest ones whose new products make about `share`.
        _, first = np.unique(sessions, return_index=True)
        order = sessions[np.sort(first)]
        products, first_event = np.unique(interactions[1][events], return_index=True)
        new_in = sessions[first_event]  # the session each product was first engaged in
        target = max(1, int(len(products) * share))
        held = []
        for session in order[::-1][:-1]:  # never every session: something must remain
            held.append(session)
            if np.isin(new_in, held).sum() >= target:
                break
        later = products[np.isin(new_in, held)]
        if len(later):
            begins = float(graph.event_ts[events][np.isin(sessions, held)].min())
            candidates.append((int(shopper[events[0]]), np.sort(later), np.array(held), begins - 1.0))
    drop = np.zeros(interactions.shape[1], dtype=bool)
    futures = []
    for pick in sorted(rng.permutation(len(candidates))[:most]):
        who, later, held, when = candidates[pick]
        drop |= np.isin(interactions[0], held)
        futures.append((who, later, when))
    return without(graph, {("session", "interacted", "product"): drop}), futures
