"""The evaluation harness: one split, every method through the same code path.

Tasks
- complete the look: a seeded share of looks is held out; for each, every item is hidden in
  turn and all products are ranked given the rest of the look. HitRate@10/20, NDCG@10, MRR.
- shopper to product: for a seeded share of shoppers, their latest interacted product is
  held out and ranked given the rest of their history. Recall@20, NDCG@20.
- session next item (stores with sessions but no looks, e.g. Diginetica): for held-out
  sessions, the last item given the items before it. HitRate@20, MRR@20.
- beyond accuracy, over each method's top-20 lists: cross-category rate (share of items whose
  leaf category differs from every context item's; items without a category never count),
  catalogue coverage, intra-list diversity (mean pairwise 1 - cosine of content vectors).

No leakage: looks are held out together with every other look found in the same session
(sibling bundles overlap); a held-out look loses every edge (its items, its session, who saved
it), and the sessions it was found in lose their interactions with its items. A held-out
shopper interaction is removed from every session of that shopper and from the looks found in
those sessions. Query contexts hold only what remains (`tests/test_evaluation.py` proves it
on a small graph).
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .baselines import (
    BPRMF,
    EASE,
    ContentKNN,
    CoOccurrence,
    ItemKNN,
    LightGCNBaseline,
    Popularity,
    content_matrix,
    shopper_products,
)
from .collaborative import EASE_MAX_PRODUCTS
from .export import GraphExport
from .gds import FastRPKNN
from .metrics import Query, hit_rate_at, ndcg_at, rank_of, top_k
from .train import TrainConfig, default_threads, train
from .vectors import SAME_CATEGORY_CAP


@dataclass
class Split:
    train: GraphExport
    looks: list[Query] = field(default_factory=list)
    validation: list[Query] = field(default_factory=list)
    shoppers: list[tuple[int, Query]] = field(default_factory=list)
    shopper_times: list[float] = field(default_factory=list)
    """When each held-out shopper interaction happened (the engine is asked just before)."""
    sessions: list[Query] = field(default_factory=list)


def _without(graph: GraphExport, drop: dict[tuple[str, str, str], np.ndarray]) -> GraphExport:
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

    split.train = _without(graph, drop)
    # A shopper's history is what training kept of it (the sessions of held-out looks lost their
    # items), the same events the served engine reads from the training store.
    remaining = shopper_products(split.train)
    split.shoppers = [(s, Query(remaining[1][remaining[0] == s], q.target)) for s, q in split.shoppers]
    return split


def hold_out_futures(graph: GraphExport, seed: int, most: int, share: float = 0.2, least: int = 5
                     ) -> tuple[GraphExport, list[tuple[int, np.ndarray, float]]]:
    """What the ranker learns from: for up to `most` shoppers with two or more sessions and
    `least` or more distinct products, their latest sessions (those holding about the last
    `share` of their products, at least one session) held out of the graph. Returns (the graph
    without them, [(shopper, the products new to them in those sessions, the moment before the
    first of those sessions began)]). The query is a feed asked at the start of a visit: it sees
    only what the shopper did before, and every product they went on to is a label, so the
    ranker learns what a shopper goes on to, not how a visit continues (that is a session's)."""
    rng = np.random.default_rng(seed)
    interactions = graph.edges[("session", "interacted", "product")]
    owner = np.full(graph.count("session"), -1)
    had = graph.edges[("shopper", "had", "session")]
    owner[had[1]] = had[0]
    shopper = owner[interactions[0]]
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
    return _without(graph, {("session", "interacted", "product"): drop}), futures


# -- metrics ----------------------------------------------------------------------------------
def cross_category_rate(top: np.ndarray, context: np.ndarray, category: np.ndarray) -> float:
    context_categories = set(category[context].tolist())
    return float(np.mean([category[i] >= 0 and category[i] not in context_categories for i in top]))


def intra_list_diversity(top: np.ndarray, content) -> float:
    rows = content.to_sparse_coo().index_select(0, torch.from_numpy(top)).to_dense().numpy()
    similarity = rows @ rows.T
    n = len(top)
    return float(1 - (similarity.sum() - np.trace(similarity)) / (n * (n - 1)))


def served_ranks(method, split: Split, queries: list[Query], shoppers: bool = False, looks: bool = False
                 ) -> tuple[np.ndarray, list]:
    """Ranks of the targets in the lists a served method returns (beyond its list: k + 1), and
    the (list, context) pairs."""
    ranks, lists = [], []
    items = zip(split.shoppers, split.shopper_times) if shoppers else ((None, q) for q in queries)
    for a, b in items:
        shopper, query, when = (a[0], a[1], b) if shoppers else (None, b, None)
        top = method.served_list(shopper, query.context, when, looks)
        hit = np.flatnonzero(top == query.target)
        ranks.append(hit[0] + 1 if len(hit) else method.k + 1)
        lists.append((top, query.context))
    return np.array(ranks, dtype=np.float64), lists


def evaluate_method(method, split: Split, content, category: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {}
    lists: list[tuple[np.ndarray, np.ndarray]] = []  # (top 20, context) of every context query
    served = getattr(method, "served", False)

    def rank_contexts(queries: list[Query], looks: bool = False) -> np.ndarray:
        if served:
            ranks, served_lists = served_ranks(method, split, queries, looks=looks)
            lists.extend(served_lists)
            return ranks
        ranks = []
        for query in queries:
            scores = method.complete(query.context)
            ranks.append(rank_of(scores, query.target, query.context))
            lists.append((top_k(scores, query.context), query.context))
        return np.array(ranks)

    if split.looks:
        ranks = rank_contexts(split.looks, looks=True)
        out |= {"look_hr@10": hit_rate_at(ranks, 10), "look_hr@20": hit_rate_at(ranks, 20),
                "look_ndcg@10": ndcg_at(ranks, 10), "look_mrr": float(np.where(ranks <= 20, 1 / ranks, 0).mean()) if served
                else float((1 / ranks).mean())}
    if split.shoppers:
        if served:
            ranks, shopper_lists = served_ranks(method, split, [], shoppers=True)
            out["shopper_full_lists"] = float(np.mean([len(top) >= method.k for top, _ in shopper_lists]))
        else:
            ranks = np.array([rank_of(method.for_shopper(s, q.context), q.target, q.context) for s, q in split.shoppers])
        out |= {"shopper_recall@20": hit_rate_at(ranks, 20), "shopper_ndcg@20": ndcg_at(ranks, 20)}
    if split.sessions:
        ranks = rank_contexts(split.sessions)
        out |= {"session_hr@20": hit_rate_at(ranks, 20),
                "session_mrr@20": float(np.where(ranks <= 20, 1 / ranks, 0).mean())}
    if lists:
        lists = [(top, ctx) for top, ctx in lists if len(top) > 1]
        out |= {"cross_category@20": float(np.mean([cross_category_rate(top, ctx, category) for top, ctx in lists])),
                "coverage@20": len(np.unique(np.concatenate([top for top, _ in lists]))) / len(category),
                "diversity@20": float(np.mean([intra_list_diversity(top, content) for top, _ in lists]))}
    return out


class LookGNNMethod:
    """The GNN in the harness, scored exactly as served (`LookVectors.complete`): trained with
    early stopping and its content weight chosen on the split's validation looks."""

    name = "lookgnn"

    def __init__(self, config: TrainConfig, cap: int | None = SAME_CATEGORY_CAP):
        self.config, self.cap = config, cap

    def fit(self, graph: GraphExport, validation: list[Query] | None = None) -> None:
        self.vectors = train(graph, self.config, validation).vectors

    def uncapped(self) -> LookGNNMethod:
        """The same trained model without the cross-category cap (reported alongside)."""
        view = LookGNNMethod(self.config, cap=None)
        view.vectors = self.vectors
        view.name = "lookgnn (no category cap)"
        return view

    def complete(self, context: np.ndarray) -> np.ndarray:
        return self.vectors.complete(context, cap=self.cap)

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.vectors.for_shopper(shopper, history)


def default_methods(graph: GraphExport) -> tuple[str, ...]:
    """Every method, EASE where the catalogue is small enough for its dense solve."""
    ease = ("ease",) if graph.count("product") <= EASE_MAX_PRODUCTS else ()
    return ("popularity", "co-occurrence", "content-knn", "itemknn", *ease, "bpr-mf", "lightgcn", "lookgnn", "engine")


def run(graph: GraphExport, seeds: tuple[int, ...] = (0, 1, 2), config: TrainConfig | None = None,
        methods: tuple[str, ...] | None = None,
        log=print, store=None) -> dict:
    """Every method on every seed's split; mean and standard deviation per metric. `store`: the
    Neo4j store whose Graph Data Science runs the `fastrp-knn` method. `engine` is what the API
    serves after `lookgraph train` (`recommend/offline.py`)."""
    from ..recommend.offline import EngineMethod

    methods = methods or default_methods(graph)
    torch.set_num_threads(config.threads if config and config.threads else default_threads())

    content = content_matrix(graph)
    per_seed: dict[str, list[dict]] = {}
    for seed in seeds:
        split = make_split(graph, seed)
        for name in methods:
            method = {
                "popularity": Popularity, "co-occurrence": CoOccurrence, "content-knn": ContentKNN,
                "itemknn": ItemKNN, "ease": EASE,
                "bpr-mf": lambda: BPRMF(seed=seed), "lightgcn": lambda: LightGCNBaseline(seed=seed),
                "lookgnn": lambda: LookGNNMethod(TrainConfig(**{**(config.__dict__ if config else {}), "seed": seed})),
                "fastrp-knn": lambda: FastRPKNN(store, seed=seed),
                "engine": lambda: EngineMethod(TrainConfig(**{**(config.__dict__ if config else {}), "seed": seed}),
                                               log=lambda line: log(f"seed {seed} engine: {line}")),
            }[name]()
            started = time.perf_counter()
            if name in ("lookgnn", "engine"):
                method.fit(split.train, split.validation)
            else:
                method.fit(split.train)
            fit_seconds = time.perf_counter() - started
            variants = [method, method.uncapped()] if name == "lookgnn" else [method]
            try:
                scored = [(variant, evaluate_method(variant, split, content, graph.product_category)) for variant in variants]
            finally:
                if hasattr(method, "close"):
                    method.close()
            for variant, scores in scored:
                scores["fit_seconds"] = fit_seconds
                per_seed.setdefault(variant.name, []).append(scores)
                log(f"seed {seed} {variant.name:<14} " + "  ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    summary = {
        name: {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))}
               for k in runs[0]}
        for name, runs in per_seed.items()
    }
    return {
        "fingerprint": graph.fingerprint, "seeds": list(seeds),
        "queries": {"looks": len(split.looks), "shoppers": len(split.shoppers), "sessions": len(split.sessions)},
        "products": graph.count("product"), "machine": platform.platform(), "results": summary,
    }


def markdown_table(report: dict) -> str:
    # Every metric any method has (only the served engine has `shopper_full_lists`), in order.
    metrics = [k for k in dict.fromkeys(k for values in report["results"].values() for k in values) if k != "fit_seconds"]
    metrics.append("fit_seconds")
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for name, values in report["results"].items():
        cells = ["—" if m not in values else f"{values[m]['mean']:.1f}" if m == "fit_seconds"
                 else f"{values[m]['mean']:.4f} ± {values[m]['std']:.4f}" for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def save(report: dict, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    seeds = ", ".join(map(str, report["seeds"]))
    header = (f"dataset fingerprint `{report['fingerprint']}`, {report['products']:,} products, seeds {seeds}; "
              f"queries: {report['queries']}; mean ± std over seeds\n\n")
    path.with_suffix(".md").write_text(header + markdown_table(report) + "\n")

