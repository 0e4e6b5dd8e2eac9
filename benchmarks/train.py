"""Training benchmark: `lookgraph train` on BundleRec clothing and on the demo store at scale.

    python benchmarks/train.py [--events 1000000] [--data ../shared/data] [--demo-max-minutes 6]

Each training runs `lookgraph train` (default settings: early stopping, the ranker, mined
looks; on the demo store `--max-minutes` when `--demo-max-minutes` is given) in a child process (a fresh store is loaded first when needed) and reports wall time,
epochs, seconds per epoch, the ranker and the child's peak resident memory. Results go to
benchmarks/results/train.json. Goals: BundleRec clothing trains in under 5 minutes, the
1M-event demo in under 10, on a 2-core CPU.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from measure import RESULTS, demo_parser, demo_store, lookgraph, peak_rss_mib


def trained(home: Path, *train_args: str) -> dict:
    (seconds, out), peak = peak_rss_mib(lambda: lookgraph("train", *train_args, home=home))
    version = (home / "models" / "LATEST").read_text().strip()
    meta = json.loads((home / "models" / version / "model.json").read_text())
    ranker = meta.get("ranker") or {}
    return {"wall_seconds": round(seconds, 1), "peak_rss_mib": round(peak), "epochs": meta["metrics"]["epochs"],
            "seconds_per_epoch": round(meta["metrics"]["seconds_per_epoch"], 2),
            "train_seconds": round(meta["metrics"]["train_seconds"], 1),
            "val_ndcg@10": round(meta["metrics"]["val_ndcg@10"], 4), "content_weight": meta["content_weight"],
            "mined_looks": meta.get("mined_looks"), "ranker_trees": ranker.get("trees"),
            "ranker_valid_ndcg@20": ranker.get("valid_ndcg@20"),
            "epochs_on_every_interaction": meta["metrics"].get("epochs_on_every_interaction", 0),
            "validation_by_epoch": [round(e.get("val_ndcg@10", e.get("val_shopper_ndcg@20", 0.0)), 4)
                                    for e in meta["history"] if not e.get("every_interaction")],
            "threads": meta["metrics"].get("threads"), "nodes": meta["nodes"], "output": out.strip()}


def main() -> None:
    parser = demo_parser(__doc__)
    parser.add_argument("--demo-max-minutes", type=float, default=None,
                        help="Train the demo store with `lookgraph train --max-minutes` this many minutes.")
    args = parser.parse_args()
    results: dict = {"command": "python benchmarks/train.py " + " ".join(sys.argv[1:]),
                     "machine": {"python": platform.python_version(), "platform": platform.platform()}}

    clothing = args.data / "bundlerec" / "clothing"
    if clothing.is_dir():
        home = args.work / "train-clothing"
        if not (home / "graph.db").exists():
            lookgraph("load", str(clothing), "--format", "bundlerec", home=home)
        results["bundlerec_clothing"] = trained(home) | {"goal": "under 300 s"}
    else:
        results["bundlerec_clothing"] = f"skipped: {clothing} not found"

    home = args.work / f"train-demo-{args.events}"
    if not (home / "graph.db").exists():
        lookgraph("load", str(demo_store(args)), home=home)
    budget = ("--max-minutes", str(args.demo_max_minutes)) if args.demo_max_minutes else ()
    results["demo"] = trained(home, *budget) | {"events": args.events, "max_minutes": args.demo_max_minutes,
                                                "goal": "under 600 s"}

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "train.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
