"""Does the ranker learn from what the feeds showed? Trained with logged impressions and without,
served to held-out simulated shoppers; and does the offline estimate say the same?

    python benchmarks/ranker_logs.py [--logged 4000] [--held-out 3000]

1. The 2,000-product demo shop, `lookgraph train` (defaults), served to `--logged` simulated
   shoppers (`simulator.py`) through the API: their feeds and clicks are kept (impressions,
   attributed events).
2. The store then trains twice, in two copies: `lookgraph train` (the ranker from held-out
   interactions alone) and `lookgraph train --impressions-days 60` (the same, plus the logged
   feeds: clicks against skips, weighed against position bias; `recommend/logged.py`). The
   second's report carries the offline estimate of both rankers on the last fifth of the logged
   feeds (item-position inverse propensity scoring).
3. Each copy serves `--held-out` new simulated shoppers, the same ones (one seed), through the
   API: the expected purchases a visit under the simulator's click model, and the realized
   conversion.

Goals (issue 24): the ranker trained with logged impressions beats the same ranker without
them online; the offline estimate's sign agrees. Results: benchmarks/results/ranker_logs.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
from experiments import copy_store
from measure import RESULTS, lookgraph
from simulator import Shop, demo_home

from lookgraph.loaders.demo import END_TS

DAY = 86_400.0


def simulate(home: Path, visits: int, seed: int, start: float, prefix: str) -> list:
    shop = Shop(home, start, seed, served_model=True, prefix=prefix, exploration_refresh_seconds=0,
                reload_check_seconds=0)
    done = []
    for _ in range(visits):
        done.append(shop.visit(0.2, lambda variant: 1.0))
        shop.clock.now += 60
    version = shop.app.state.served.version
    shop.close()
    print(f"  {visits} visits served by model {version}", flush=True)
    return done


def clone(source: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    copy_store(source / "graph.db", target / "graph.db")
    shutil.copytree(source / "models", target / "models")
    return target


def summary(visits: list) -> dict:
    return {"visits": len(visits), "expected_purchases_per_visit": round(float(np.mean([v.expected for v in visits])), 4),
            "conversion": round(float(np.mean([v.purchases > 0 for v in visits])), 4),
            "clicks_per_visit": round(float(np.mean([v.clicks for v in visits])), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logged", type=int, default=4_000)
    parser.add_argument("--held-out", type=int, default=3_000)
    args = parser.parse_args()
    work, home = demo_home("ranker-logs", shoppers=400)
    lookgraph("train", home=home)
    start = END_TS + DAY
    print("logging feeds and clicks ...", flush=True)
    logged = simulate(home, args.logged, seed=11, start=start, prefix="logged")
    later = start + args.logged * 60 + 2 * 3600  # every logged feed's reward window has passed
    results = {"logging": summary(logged), "held_out": {}}
    for name, extra in (("without_logs", ()), ("with_logs", ("--impressions-days", "60"))):
        copy = clone(home, work / name)
        seconds, _ = lookgraph("train", *extra, home=copy)
        report = copy / "models" / (copy / "models" / "LATEST").read_text().strip() / "ranker.json"
        if not report.exists():
            raise SystemExit(f"{name}: lookgraph train learnt no ranker on this shop")
        meta = json.loads(report.read_text())
        results["held_out"][name] = {"train_seconds": round(seconds, 1), "ranker_trees": meta["trees"],
                                     "valid_ndcg@20": meta["valid_ndcg@20"], **summary(simulate(copy, args.held_out, 99, later, prefix="held-out"))}
        if "logged" in meta:
            results["offline_estimate"] = meta["logged"]
    online = results["held_out"]["with_logs"]["expected_purchases_per_visit"] - \
        results["held_out"]["without_logs"]["expected_purchases_per_visit"]
    estimate = results.get("offline_estimate", {})
    offline = estimate.get("estimated_clicks_with_logs", 0.0) - estimate.get("estimated_clicks_without_logs", 0.0)
    results["goals"] = {"online_with_logs_beats_without": bool(online > 0),
                        "offline_sign_agrees": bool(np.sign(online) == np.sign(offline)),
                        "online_difference": round(online, 4), "offline_difference": round(offline, 2)}
    out = RESULTS / "ranker_logs.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
