"""How far above EASE can blending collaborative models go on the standard protocol? An upper
bound, measured on MovieLens-100k's test split itself.

    python benchmarks/cf_ceiling.py [--seed 2020]

The same split and metrics as `benchmarks/cf_protocol.py` (per user random 80/10/10, full
ranking, train and validation items left out, Recall@20 and NDCG@20 as RecBole). Each model
learns from train: the reproduced EASE, ItemKNN, BPR-MF and LightGCN of `embeddings/baselines.py`
and popularity, plus two more classic neighbourhood models written here, user kNN (cosine, 50
neighbours) and RP3beta (alpha 1, beta 0.5; Paudel et al. 2017); and EASE at other L2 weights
than RecBole's 250. Every user's scores from each
model are scaled by their largest magnitude, and the blend is EASE plus weights times the
others. The weights are chosen **on the test split** (coordinate ascent over a grid, the
strongest model first, until a pass changes nothing), so no ranker learnt from training data can beat the blend found here with these
inputs: it is a ceiling for fusing them, not a method.

Results go to benchmarks/results/cf_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from cf_protocol import K, metrics, split_per_user
from measure import RESULTS
from movielens import fetch, rows

WEIGHTS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def user_knn(x: np.ndarray, k: int = 50) -> np.ndarray:
    """Each user's score for an item: the cosine similarities of their k most similar users who had it."""
    norms = np.sqrt(x.sum(1)) + 1e-9
    similar = (x @ x.T) / norms[:, None] / norms[None, :]
    np.fill_diagonal(similar, 0.0)
    np.put_along_axis(similar, np.argsort(-similar, axis=1)[:, k:], 0.0, axis=1)
    return similar @ x


def rp3beta(x: np.ndarray, beta: float = 0.5) -> np.ndarray:
    """Three-step random walk user -> item -> user -> item, each item's arrival divided by its popularity^beta."""
    popularity = x.sum(0)
    user_to_item = x / (x.sum(1, keepdims=True) + 1e-9)
    item_to_user = x.T / (popularity[:, None] + 1e-9)
    walk = (item_to_user @ user_to_item) / (popularity[None, :] + 1e-9) ** beta
    np.fill_diagonal(walk, 0.0)
    return x @ walk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookgraph" / "recbole")
    args = parser.parse_args()

    import torch

    from lookgraph.embeddings.baselines import BPRMF, EASE, ItemKNN, LightGCNBaseline, Popularity
    from lookgraph.embeddings.collaborative import ease_weights
    from lookgraph.embeddings.train import default_threads

    torch.set_num_threads(default_threads())
    source = fetch(args.cache)
    ratings = [(r["user_id"], r["item_id"]) for r in rows(source / "ml-100k.inter")]
    parts = split_per_user(ratings, args.seed)
    graph = train_graph(source, parts)
    shoppers, products = graph.index("shopper"), graph.index("product")
    users = [u for u, part in parts.items() if part["test"]]
    rows_of = np.array([shoppers[f"u{u}"] for u in users])

    def ids(items):
        return [products[f"m{i}"] for i in items if f"m{i}" in products]

    x = np.zeros((graph.count("shopper"), graph.count("product")))
    for u, part in parts.items():
        x[shoppers[f"u{u}"], ids(part["train"])] = 1.0
    seen = np.zeros((len(users), x.shape[1]), dtype=bool)
    tests = []
    for row, u in enumerate(users):
        seen[row, ids(parts[u]["train"] + parts[u]["valid"])] = True
        tests.append(set(ids(parts[u]["test"])))

    def score(blend: np.ndarray) -> tuple[float, float]:
        blend = np.where(seen, -np.inf, blend)
        top = np.argpartition(-blend, K, axis=1)[:, :K]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(blend, top, axis=1), axis=1, kind="stable"), axis=1)
        found = np.array([metrics(t.tolist(), test) for t, test in zip(top, tests)])
        return float(found[:, 0].mean()), float(found[:, 1].mean())

    valid = {shoppers[f"u{u}"]: np.array(ids(part["valid"])) for u, part in parts.items() if part["valid"]}
    scores, fit_seconds = {}, {}
    for name, make in (("ease", EASE), ("itemknn", ItemKNN), ("popularity", Popularity),
                       ("bpr-mf", lambda: BPRMF(seed=args.seed)), ("lightgcn", lambda: LightGCNBaseline(seed=args.seed))):
        started = time.perf_counter()
        model = make()
        model.fit(graph, valid) if name in ("bpr-mf", "lightgcn") else model.fit(graph)
        scores[name] = np.stack([model.for_shopper(s, np.flatnonzero(x[s])) for s in rows_of]).astype(np.float64)
        fit_seconds[name] = round(time.perf_counter() - started, 1)
        print(name, fit_seconds[name], "s", flush=True)
    scores["user-knn"] = user_knn(x)[rows_of]
    scores["rp3beta"] = rp3beta(x)[rows_of]
    lambdas = {}  # EASE's L2 weight, on the same answers: is RecBole's 250 already its best?
    for lam in (100.0, 150.0, 200.0, 300.0, 400.0, 500.0):
        lambdas[int(lam)] = dict(zip(("recall@20", "ndcg@20"), score(x[rows_of] @ ease_weights(sp.csr_matrix(x), lam))))
    scaled = {name: s / (np.abs(s).max(1, keepdims=True) + 1e-12) for name, s in scores.items()}
    alone = {name: dict(zip(("recall@20", "ndcg@20"), score(s))) for name, s in scaled.items()}
    for name, found in alone.items():
        print(f"{name:12s} alone: {found}", flush=True)

    # Strongest alone first; passes until one changes nothing.
    weights = {name: 0.0 for name in sorted(scaled, key=lambda n: -alone[n]["recall@20"]) if name != "ease"}
    best, before = score(scaled["ease"]), None
    while weights != before:
        before = dict(weights)
        for name in weights:
            for w in (0.0, *WEIGHTS):
                trial = weights | {name: w}
                found = score(scaled["ease"] + sum(v * scaled[n] for n, v in trial.items() if v))
                if found[0] > best[0]:
                    best, weights = found, trial
        print("pass:", {n: w for n, w in weights.items() if w}, best, flush=True)
    ease = alone["ease"]
    result = {"command": "python benchmarks/cf_ceiling.py " + " ".join(sys.argv[1:]), "seed": args.seed,
              "users": len(users), "alone": alone, "ease_by_lambda": lambdas, "fit_seconds": fit_seconds,
              "ceiling": {"weights on EASE": {n: w for n, w in weights.items() if w},
                          "recall@20": round(best[0], 4), "ndcg@20": round(best[1], 4),
                          "over_ease": {"recall@20": round(best[0] / ease["recall@20"], 3),
                                        "ndcg@20": round(best[1] / ease["ndcg@20"], 3)}},
              "note": "weights chosen on the test split: an upper bound for fusing these models, not a method"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cf_ceiling.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ceiling"], indent=2))


def train_graph(source: Path, parts: dict):
    """The protocol's train ratings as the graph every baseline reads (the store cf_protocol builds)."""
    import tempfile

    from lookgraph.embeddings.export import export_graph
    from lookgraph.graph.sqlite_store import SQLiteGraphStore
    from lookgraph.loaders.native import NativeSource
    from lookgraph.loaders.pipeline import load
    from movielens import convert

    cache = Path(tempfile.gettempdir()) / "lookgraph-cf-ceiling"
    train_pairs = {(u, i) for u, part in parts.items() for i in part["train"]}
    folder = cache / "ml-100k-train"
    convert(source, folder, keep=lambda u, i: (u, i) in train_pairs)
    path = cache / "train.db"
    path.unlink(missing_ok=True)
    store = SQLiteGraphStore(path)
    try:
        load(NativeSource(folder), store)
        return export_graph(store)
    finally:
        store.close()


if __name__ == "__main__":
    main()
