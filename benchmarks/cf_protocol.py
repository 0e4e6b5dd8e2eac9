"""The standard collaborative-filtering protocol on MovieLens-100k, lookgraph's served feed against
baselines trained as their authors train them, and RecBole itself, in one run.

    python benchmarks/cf_protocol.py [--seed 2020] [--skip-recbole] [--methods ...]

Protocol (RecBole's default, `eval_args: RS [0.8, 0.1, 0.1], group_by user, RO, full`): each
user's ratings, all of them positives, shuffled and split 80/10/10 into train, validation and
test; every method learns from train (early stopping on validation where it trains by
epochs); each user with test items gets a full ranking of every item, their train and
validation items left out; Recall@20 and NDCG@20 as RecBole computes them (hits over the
user's test items; DCG over the ideal DCG of min(test items, 20)), averaged over users.

Methods: popularity; ItemKNN (cosine, 100 neighbours) and EASE (lambda 250); BPR-MF and
LightGCN (`embeddings/baselines.py`: Adam 0.001, batches of 2,048, early stopping after 10
epochs); the served feed: `lookgraph train`'s own `fit_artifact` on a store of the train
ratings, then the engine asked for each user's feed (`GET /shoppers/{id}/recommendations`,
through the same calls as the route) with k = 20 plus the user's validation items, which are
then left out as the protocol leaves them out; with exploration as served (`explore=true`) and
without. RecBole 1.2.1 runs LightGCN and BPR with its default config and seed in a virtual
environment of its own (`benchmarks/recbole_run.py`; pip installs it there, never into
lookgraph's), on its own split of the same protocol, and LightGCN once more stopped as the
harness stops its own (`RECBOLE_RUNS`); `harness_vs_recbole_recall` in the results divides
the harness's models by RecBole's. `--methods bpr-mf,lightgcn --out cf_protocol-reproduce`
runs only that comparison.

Results go to benchmarks/results/cf_protocol.json and .md. `--train-seeds 1,2,3 --methods
engine,engine-random` trains the served feed once with each seed instead (without exploration;
cf_protocol-seeds.json): how much the figure depends on the draw. `--rank-by FEATURE --methods engine`
is a diagnosis: the served engine's own candidates ranked by one feature alone (e.g.
`collaborative`), to tell what the candidates hold from what the ranker makes of them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from measure import RESULTS, ROOT
from movielens import convert, fetch, rows

K = 20
ENGINES = {"engine": "engine (served)", "engine-random": "engine (served, ranker split random)"}
"""The served feed as `lookgraph train` makes it by default (the ranker learns what shoppers
went on to after a moment), and with `--ranker-split random` (a random fifth held out, as this
protocol holds out)."""


def split_per_user(ratings: list[tuple[str, str]], seed: int) -> dict[str, dict[str, list[str]]]:
    """RecBole's `RS [0.8, 0.1, 0.1]` grouped by user in random order: each user's ratings
    shuffled, validation and test a tenth each rounded down (at least one where a tenth is
    under one), train the rest."""
    rng = np.random.default_rng(seed)
    by_user: dict[str, list[str]] = {}
    for user, item in ratings:
        by_user.setdefault(user, []).append(item)
    parts = {}
    for user in sorted(by_user, key=int):
        items = [by_user[user][i] for i in rng.permutation(len(by_user[user]))]
        total = len(items)
        counts = [0, int(0.1 * total), int(0.1 * total)]
        counts[0] = total - sum(counts[1:])
        for i in (1, 2):  # RecBole's _calcu_split_ids
            if counts[0] <= 1:
                break
            if 0 < 0.1 * total < 1:
                counts[-i] += 1
                counts[0] -= 1
        cut = np.cumsum(counts)
        parts[user] = {"train": items[: cut[0]], "valid": items[cut[0]: cut[1]], "test": items[cut[1]:]}
    return parts


def metrics(top: list[int], test: set[int]) -> tuple[float, float]:
    hits = np.array([item in test for item in top[:K]], dtype=np.float64)
    discounts = 1 / np.log2(np.arange(2, K + 2))
    ideal = discounts[: min(len(test), K)].sum()
    return hits.sum() / len(test), float((hits * discounts[: len(hits)]).sum() / ideal)


def score_all(method, graph, parts, index) -> dict:
    """Recall@20 and NDCG@20 of a harness method's full ranking."""
    shoppers, products = index
    recalls, ndcgs = [], []
    for user, part in parts.items():
        if not part["test"]:
            continue
        history = np.array([products[f"m{i}"] for i in part["train"] if f"m{i}" in products], dtype=np.int64)
        scores = method.for_shopper(shoppers[f"u{user}"], history).astype(np.float64)
        seen = [products[f"m{i}"] for i in part["train"] + part["valid"] if f"m{i}" in products]
        scores[seen] = -np.inf
        top = np.argpartition(-scores, K)[:K]
        top = top[np.argsort(-scores[top], kind="stable")].tolist()
        r, n = metrics(top, {products[f"m{i}"] for i in part["test"] if f"m{i}" in products})
        recalls.append(r)
        ndcgs.append(n)
    return {"recall@20": float(np.mean(recalls)), "ndcg@20": float(np.mean(ndcgs)), "users": len(recalls)}


class OneFeature:
    """A diagnosis, never served: candidates ranked by one feature's value alone."""

    def __init__(self, name: str):
        from lookgraph.recommend.features import FEATURES

        self.column = FEATURES.index(name)

    def score(self, x):
        return x[:, self.column]


def served(graph, parts, config, explore_modes=(True, False), rank_by: str | None = None) -> dict:
    """The feed as the API serves it after `lookgraph train` on the train ratings (with
    `rank_by`, the same engine and candidates ranked by that one feature instead)."""
    from lookgraph.embeddings.export import with_looks
    from lookgraph.recommend.engine import Ask
    from lookgraph.recommend.offline import fit_artifact, offline_engine

    started = time.perf_counter()
    result, ranker, _, mined = fit_artifact(graph, config, log_line=lambda line: print("  train:", line, flush=True))
    fit_seconds = time.perf_counter() - started
    out = {"fit_seconds": round(fit_seconds, 1), "ranker": ranker.describe() if ranker else None}
    if rank_by:
        ranker, out["ranker"] = OneFeature(rank_by), f"diagnosis: the feature {rank_by!r} alone"
    with offline_engine(with_looks(graph, mined), result.vectors, ranker) as engine:
        if rank_by:
            engine.strict_across = False  # the candidates and rules a learned ranker is served with
        for explore in explore_modes:
            recalls, ndcgs, full = [], [], []
            started = time.perf_counter()
            for user, part in parts.items():
                if not part["test"]:
                    continue
                leave_out = {f"m{i}" for i in part["valid"]}
                answer = engine.for_shopper(f"u{user}", Ask(k=K + len(leave_out), explore=explore))
                top = [r.product_id for r in answer.items if r.product_id not in leave_out][:K]
                full.append(len(top) == K)
                r, n = metrics(top, {f"m{i}" for i in part["test"]})
                recalls.append(r)
                ndcgs.append(n)
            out[f"explore={str(explore).lower()}"] = {
                "recall@20": float(np.mean(recalls)), "ndcg@20": float(np.mean(ndcgs)), "users": len(recalls),
                "full_lists": float(np.mean(full)), "ms_per_feed": round((time.perf_counter() - started) / len(recalls) * 1000, 2)}
    return out


RECBOLE_RUNS = {
    "lightgcn": ("RecBole LightGCN", "LightGCN", {}),
    "bpr": ("RecBole BPR", "BPR", {}),
    "lightgcn-harness-stopping": ("RecBole LightGCN, the harness's stopping", "LightGCN",
                                  {"valid_metric": "NDCG@20", "stopping_step": 50}),
}
"""RecBole's runs: its defaults (validation MRR@10, stopping after 10 epochs below the best),
and LightGCN stopped as this harness stops its own (validation NDCG@20, 50 epochs, LightGCN's
paper's protocol): the same schedule on both sides, so the two implementations are compared,
not two stopping rules."""


def recbole(model: str, data_path: Path, work: Path, changed: dict) -> dict:
    """RecBole 1.2.1 in a virtual environment of its own, beside lookgraph's packages (torch, scipy);
    `changed`: its settings that differ from its defaults."""
    venv = work / "recbole-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                              capture_output=True, text=True).stdout.strip()
        ours = subprocess.run([sys.executable, "-c", "import site; print(site.getsitepackages()[0])"], check=True,
                              capture_output=True, text=True).stdout.strip()
        Path(site, "lookgraph-packages.pth").write_text(ours + "\n")  # torch and scipy, not installed twice
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--no-deps", "recbole==1.2.1"], check=True)
        # What RecBole's training imports (not ray, plotly or thop: tuning and profiling only), of
        # the versions RecBole 1.2.1 was written for: numpy 1.x (it uses aliases numpy 2
        # removed), scipy before 1.12 (its LightGCN writes a dok_matrix through an internal that
        # later scipy removed), pandas before 2.2 (it fills missing values in place, which
        # copy-on-write ignores).
        subprocess.run([*pip, "numpy<2", "scipy<1.12", "pandas<2.2", "scikit-learn", "pyyaml", "colorlog==4.7.2",
                        "colorama==0.4.4", "tabulate", "texttable", "tensorboard"], check=True)
    out = work / f"recbole-{model}-{len(changed)}.json"
    subprocess.run([str(python), str(ROOT / "benchmarks" / "recbole_run.py"), model, str(data_path), str(out),
                    json.dumps(changed)], check=True, cwd=work)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--methods", default="popularity,itemknn,ease,bpr-mf,lightgcn,engine,engine-random")
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--recbole-runs", default=",".join(RECBOLE_RUNS), help=f"which of {', '.join(RECBOLE_RUNS)}")
    parser.add_argument("--out", default="cf_protocol", help="results under benchmarks/results/ as OUT.json and OUT.md")
    parser.add_argument("--rank-by", help="a diagnosis: the engine's candidates ranked by this feature alone "
                                          "(results in cf_protocol-rank-by-FEATURE.json)")
    parser.add_argument("--train-seeds", help="comma-separated training seeds: the engine methods trained once "
                                              "with each, without exploration (results in cf_protocol-seeds.json)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookgraph" / "recbole")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-cf-protocol")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    from lookgraph.embeddings.baselines import EASE, BPRMF, ItemKNN, LightGCNBaseline, Popularity
    from lookgraph.embeddings.export import export_graph
    from lookgraph.embeddings.train import TrainConfig, default_threads
    from lookgraph.graph.sqlite_store import SQLiteGraphStore
    from lookgraph.loaders.native import NativeSource
    from lookgraph.loaders.pipeline import load

    import torch

    torch.set_num_threads(default_threads())
    source = fetch(args.cache)
    ratings = [(r["user_id"], r["item_id"]) for r in rows(source / "ml-100k.inter")]
    parts = split_per_user(ratings, args.seed)
    train_pairs = {(u, i) for u, part in parts.items() for i in part["train"]}
    folder = args.work / f"ml-100k-train-{args.seed}"
    counts = convert(source, folder, keep=lambda u, i: (u, i) in train_pairs)
    store_path = args.work / f"train-{args.seed}.db"
    store_path.unlink(missing_ok=True)
    store = SQLiteGraphStore(store_path)
    load(NativeSource(folder), store)
    graph = export_graph(store)
    store.close()
    index = (graph.index("shopper"), graph.index("product"))
    results: dict = {"command": "python benchmarks/cf_protocol.py " + " ".join(sys.argv[1:]),
                     "protocol": "MovieLens-100k, every rating a positive; per user random 80/10/10; full ranking, "
                                 "train and validation items left out; Recall@20, NDCG@20 as RecBole",
                     "seed": args.seed, "train": counts, "users_tested": sum(bool(p["test"]) for p in parts.values()),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "methods": {}}
    valid = {index[0][f"u{u}"]: np.array([index[1][f"m{i}"] for i in part["valid"] if f"m{i}" in index[1]])
             for u, part in parts.items() if part["valid"]}
    for name in args.methods.split(","):
        started = time.perf_counter()
        if name in ENGINES and args.train_seeds:
            split = "random" if name == "engine-random" else "time"
            by_seed = {seed: served(graph, parts, TrainConfig(seed=int(seed), ranker_split=split), explore_modes=(False,))
                       for seed in args.train_seeds.split(",")}
            recalls = [found["explore=false"]["recall@20"] for found in by_seed.values()]
            results["methods"][ENGINES[name]] = {"by_training_seed": by_seed, "recall@20_mean": float(np.mean(recalls)),
                                                 "recall@20_std": float(np.std(recalls))}
            print(name, {seed: found["explore=false"] for seed, found in by_seed.items()}, flush=True)
            continue
        if name in ENGINES:
            split = "random" if name == "engine-random" else "time"
            results["methods"][ENGINES[name]] = served(graph, parts, TrainConfig(seed=args.seed % 1000, ranker_split=split),
                                                       rank_by=args.rank_by)
            print(name, results["methods"][ENGINES[name]], flush=True)
            continue
        method = {"popularity": Popularity, "itemknn": ItemKNN, "ease": EASE,
                  "bpr-mf": lambda: BPRMF(seed=args.seed), "lightgcn": lambda: LightGCNBaseline(seed=args.seed)}[name]()
        if name in ("bpr-mf", "lightgcn"):
            method.fit(graph, valid)
        else:
            method.fit(graph)
        fit_seconds = time.perf_counter() - started
        results["methods"][name] = {**score_all(method, graph, parts, index), "fit_seconds": round(fit_seconds, 1),
                                    **({"epochs": method.epochs_run} if hasattr(method, "epochs_run") else {})}
        print(name, results["methods"][name], flush=True)
    if not args.skip_recbole:
        for run in args.recbole_runs.split(","):
            name, model, changed = RECBOLE_RUNS[run]
            found = recbole(model, source.parent, args.work, changed)
            results["methods"][name] = {"recall@20": found["test"]["recall@20"], "ndcg@20": found["test"]["ndcg@20"],
                                        "fit_seconds": found["fit_seconds"], "epochs": found["epochs"],
                                        "valid_metric": found["valid_metric"], "stopping_step": found["stopping_step"]}
            print(name, found, flush=True)
    methods = results["methods"]
    baselines = [m for m in ("itemknn", "ease", "lightgcn", "RecBole LightGCN") if m in methods]
    best = {metric: max(methods[m][metric] for m in baselines) for metric in ("recall@20", "ndcg@20")} if baselines else {}
    for engine_name in (e for e in ENGINES.values() if e in methods and best and "by_training_seed" not in methods[e]):
        engine, modes = methods[engine_name], ("explore=true", "explore=false")
        results.setdefault("ratios", {})[engine_name] = {
            mode: {metric: round(engine[mode][metric] / best[metric], 3) for metric in best} for mode in modes}
        if "popularity" in methods:
            results.setdefault("ratios_to_popularity", {})[engine_name] = {
                mode: {metric: round(engine[mode][metric] / methods["popularity"][metric], 3) for metric in best}
                for mode in modes}
    for ours, theirs in (("lightgcn", "RecBole LightGCN"), ("lightgcn", "RecBole LightGCN, the harness's stopping"),
                         ("bpr-mf", "RecBole BPR")):
        if ours in methods and theirs in methods:  # the harness's model against RecBole's: within 5% is the goal
            results.setdefault("harness_vs_recbole_recall", {})[f"{ours} / {theirs}"] = round(
                methods[ours]["recall@20"] / methods[theirs]["recall@20"], 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.train_seeds:
        (RESULTS / "cf_protocol-seeds.json").write_text(json.dumps(results, indent=2) + "\n")
        return
    if args.rank_by:
        (RESULTS / f"cf_protocol-rank-by-{args.rank_by}.json").write_text(json.dumps(results, indent=2) + "\n")
        return
    (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| method | Recall@20 | NDCG@20 | fit s |", "|---|---|---|---|"]
    for name, found in methods.items():
        if name in ENGINES.values():
            for mode in ("explore=true", "explore=false"):
                lines.append(f"| {name[:-1]}, {mode}) | {found[mode]['recall@20']:.4f} | {found[mode]['ndcg@20']:.4f} "
                             f"| {found['fit_seconds']} |")
        else:
            lines.append(f"| {name} | {found['recall@20']:.4f} | {found['ndcg@20']:.4f} | {found['fit_seconds']} |")
    (RESULTS / f"{args.out}.md").write_text(f"{results['protocol']}; seed {args.seed}\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
