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

import numpy as np
import torch

from ..recommend.offline import EngineMethod
from .baselines import (
    BPRMF,
    EASE,
    ContentKNN,
    CoOccurrence,
    ItemKNN,
    LightGCNBaseline,
    Popularity,
    content_matrix,
)
from .collaborative import EASE_MAX_PRODUCTS
from .export import GraphExport
from .gds import FastRPKNN
from .metrics import Query, hit_rate_at, ndcg_at, rank_of, top_k
from .splits import Split, make_split
from .train import TrainConfig, default_threads, train
from .vectors import SAME_CATEGORY_CAP


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
        log=print, store=None, logged: list | None = None, shopper_share: float = 0.2) -> dict:
    """Every method on every seed's split; mean and standard deviation per metric. `store`: the
    Neo4j store whose Graph Data Science runs the `fastrp-knn` method. `engine` is what the API
    serves after `lookgraph train` (`recommend/offline.py`); with `logged` feeds
    (`recommend/logged.py`) its ranker also learns from them, and the rankers learnt with and
    without them are estimated against the logged one on the held-out feeds (`logged_feeds`).
    `shopper_share`: the share of shoppers whose latest product is asked for (more: less noise
    in the shopper task, and less of their history to learn from)."""
    methods = methods or default_methods(graph)
    torch.set_num_threads(config.threads if config and config.threads else default_threads())

    content = content_matrix(graph)
    per_seed: dict[str, list[dict]] = {}
    estimates: list[dict] = []
    for seed in seeds:
        split = make_split(graph, seed, shopper_share=shopper_share)
        for name in methods:
            method = {
                "popularity": Popularity, "co-occurrence": CoOccurrence, "content-knn": ContentKNN,
                "itemknn": ItemKNN, "ease": EASE,
                "bpr-mf": lambda: BPRMF(seed=seed), "lightgcn": lambda: LightGCNBaseline(seed=seed),
                "lookgnn": lambda: LookGNNMethod(TrainConfig(**{**(config.__dict__ if config else {}), "seed": seed})),
                "fastrp-knn": lambda: FastRPKNN(store, seed=seed),
                "engine": lambda: EngineMethod(TrainConfig(**{**(config.__dict__ if config else {}), "seed": seed}),
                                               log=lambda line: log(f"seed {seed} engine: {line}"), logged=logged),
            }[name]()
            started = time.perf_counter()
            if name in ("lookgnn", "engine"):
                method.fit(split.train, split.validation)
            else:
                method.fit(split.train)
            fit_seconds = time.perf_counter() - started
            estimated = (getattr(method, "ranker", None) and method.ranker.report.get("logged")) if name == "engine" else None
            if estimated:
                estimates.append({"seed": seed, **{k: v for k, v in estimated.items() if k != "examination"}})
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
        "shopper_share": shopper_share,
        "products": graph.count("product"), "machine": platform.platform(), "results": summary,
        **({"logged_feeds": estimates} if estimates else {}),
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
    for e in report.get("logged_feeds", ()):
        lines.append(f"\nseed {e['seed']}: on {e['held_out']} held-out logged feeds ({e['logged_clicks']:.0f} clicks as "
                     f"served), clicks estimated by item-position inverse propensity: the engine's ranker learnt with "
                     f"the logged feeds {e['estimated_clicks_with_logs']}, without {e['estimated_clicks_without_logs']}")
    return "\n".join(lines)


def save(report: dict, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    seeds = ", ".join(map(str, report["seeds"]))
    header = (f"dataset fingerprint `{report['fingerprint']}`, {report['products']:,} products, seeds {seeds}; "
              f"queries: {report['queries']}; mean ± std over seeds\n\n")
    path.with_suffix(".md").write_text(header + markdown_table(report) + "\n")

