"""Is the experiments' test right? A/A false positives, A/B power and coverage, looked at daily.

    python benchmarks/experiments.py [--replications 200] [--days 14] [--uplift 0.10]

1. Pilot: simulated shoppers (`simulator.py`) visit the demo shop through the API with no
   experiment running; the share of them who buy an item they were shown is the baseline
   per-unit conversion.
2. The documented sample size: A/B experiments of 0/1 unit outcomes at that baseline, the
   variant's true conversion `--uplift` higher, units arriving evenly over `--days` days and the
   test read at the end of every day exactly as `GET /experiments/{id}/report` reads it
   (`sequential.scale` and `sequential.decide`, alpha 0.05, minimum effect 0.1). The smallest
   units per arm, on a grid of 500, at which 85% of twice `--replications` experiments find the
   uplift by their last day (a margin over the 80% goal); beside it the fixed-horizon sample
   size of a two-sided z-test read once.
3. At that size, `--replications` A/A experiments (goal: <= 5% ever declared different at any
   daily look; a fixed-horizon z-test read daily beside it) and A/B experiments (goal: >= 80%
   found; the uplift's interval covering the true uplift in >= 90%, at the last look and at
   the look that decided).
4. Through the API at that size: one A/A and one A/B experiment (`POST /experiments`, the
   simulated shoppers assigned by the API, the true uplift applied by the simulator to the
   answers that name the treated variant), `GET /experiments/{id}/report` read every day.

Results: benchmarks/results/experiments.json.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import time
from pathlib import Path

import numpy as np
from measure import RESULTS
from simulator import Shop, demo_home

from lookgraph.loaders.demo import END_TS
from lookgraph.recommend import sequential

DAY = 86_400.0
ALPHA, MINIMUM_EFFECT = 0.05, 0.1
SIZING_POWER = 0.85
"""The documented size is where this share of the sizing experiments found the uplift: with a
margin over the 80% goal, so that an independent set of experiments at that size clears it."""


def replicate(p_a: float, p_b: float, per_arm: int, days: int, replications: int, seed: int) -> dict:
    """`replications` experiments of `per_arm` units an arm over `days` daily looks."""
    rng = np.random.default_rng(seed)
    daily = np.diff(np.linspace(0, per_arm, days + 1).round().astype(int))
    truth = p_b - p_a
    found, decided_covered, end_covered, peeking = 0, 0, 0, 0
    for _ in range(replications):
        x_a, x_b = rng.binomial(daily, p_a).cumsum(), rng.binomial(daily, p_b).cumsum()
        n = daily.cumsum()
        best, at_decision, peeked, last = 1.0, None, False, None
        for d in range(days):
            arms = [sequential.Arm(int(n[d]), x / n[d], x / n[d] * (1 - x / n[d]) * n[d] / max(n[d] - 1, 1), int(x))
                    for x in (x_a[d], x_b[d])]
            c = sequential.decide(arms[0], arms[1], sequential.scale(arms, MINIMUM_EFFECT), ALPHA)
            spread = math.sqrt((arms[0].var + arms[1].var) / n[d]) if n[d] > 1 else 0.0
            peeked |= spread > 0 and abs(arms[1].mean - arms[0].mean) / spread > 1.96
            if c is None:
                continue
            last = c
            if c.p_value < best:
                best = c.p_value
            if best < ALPHA and at_decision is None:
                at_decision = c
        found += best < ALPHA
        peeking += peeked
        if last is not None:
            end_covered += last.low <= truth <= last.high
        if at_decision is not None:
            decided_covered += at_decision.low <= truth <= at_decision.high
    return {"per_arm": per_arm, "declared_different": float(found / replications),
            "interval_covers_at_end": float(end_covered / replications),
            "interval_covers_when_decided": float(decided_covered / max(found, 1)),
            "z_test_read_daily_declared": float(peeking / replications)}


def fixed_horizon(p: float, uplift: float, power: float = 0.8) -> int:
    """Units per arm for a two-sided z-test at ALPHA, read once."""
    q = p * (1 + uplift)
    return math.ceil((1.959964 + 0.841621) ** 2 * (p * (1 - p) + q * (1 - q)) / (q - p) ** 2)


def through_api(home: Path, experiment: str, per_arm: int, days: int, buy: float, uplift: float, seed: int) -> dict:
    """One experiment served by the API to simulated shoppers, its report read every day."""
    shop = Shop(home, END_TS + DAY, seed)
    arms = [{"name": "control", "share": 0.5}, {"name": "treated", "share": 0.5}]
    shop.post("/experiments", {"id": experiment, "name": experiment, "variants": arms})
    treated = f"{experiment}/treated"
    per_day, looks, started = 2 * per_arm // days, [], time.perf_counter()
    for day in range(days):
        for _ in range(per_day):
            shop.visit(buy, lambda variant: 1 + uplift if variant == treated else 1.0)
            shop.clock.now += DAY / per_day
        shop.app.state.impressions.flush()
        report = shop.get(f"/experiments/{experiment}/report")
        c = report["comparisons"][0]
        looks.append({"day": day + 1, "units": {k: v["units"] for k, v in report["variants"].items()},
                      "conversion": {k: v["conversion"] for k, v in report["variants"].items()},
                      "p_value": c["p_value"], "decision": c["decision"],
                      "uplift_interval": [c.get("uplift_low"), c.get("uplift_high")]})
        print(f"  {experiment} day {day + 1}: {looks[-1]}", flush=True)
    seconds = time.perf_counter() - started
    shop.close()
    return {"true_uplift_per_click": uplift, "looks": looks, "visits": shop.visits,
            "seconds": round(seconds, 1), "ms_per_visit": round(1000 * seconds / shop.visits, 2)}


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of an embedded store (SQLite's online backup: its write-ahead log included)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replications", type=int, default=200)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--uplift", type=float, default=0.10)
    parser.add_argument("--buy", type=float, default=0.2, help="P(buy | click) in the control")
    parser.add_argument("--pilot", type=int, default=600)
    parser.add_argument("--no-api", action="store_true", help="skip part 4 (the experiments through the API)")
    args = parser.parse_args()
    work, home = demo_home("experiments", shoppers=300)
    clean = work / "clean.db"
    copy_store(home / "graph.db", clean)

    shop = Shop(home, END_TS + DAY, seed=1)
    visits = [shop.visit(args.buy, lambda variant: 1.0) for _ in range(args.pilot)]
    shop.close()
    baseline = sum(v.purchases > 0 for v in visits) / len(visits)
    clicks = sum(v.clicks for v in visits) / len(visits)
    print(f"pilot: {len(visits)} visits, {clicks:.2f} clicks a visit, per-unit conversion {baseline:.3f}", flush=True)

    p_a, p_b = baseline, baseline * (1 + args.uplift)
    grid, sized = [], None
    for per_arm in range(1_000, 30_001, 500):
        row = replicate(p_a, p_b, per_arm, args.days, 2 * args.replications, seed=per_arm)
        grid.append(row)
        print(f"  {per_arm} units an arm: {row['declared_different']:.0%} found", flush=True)
        if row["declared_different"] >= SIZING_POWER:
            sized = per_arm
            break
    sized = sized or grid[-1]["per_arm"]
    aa = replicate(p_a, p_a, sized, args.days, args.replications, seed=1_000_001)
    ab = replicate(p_a, p_b, sized, args.days, args.replications, seed=2_000_002)
    print(f"A/A at {sized}: {aa}\nA/B at {sized}: {ab}", flush=True)
    results = {
        "pilot": {"visits": len(visits), "clicks_per_visit": round(clicks, 3), "baseline_conversion": round(baseline, 4)},
        "design": {"days": args.days, "alpha": ALPHA, "minimum_effect": MINIMUM_EFFECT, "true_uplift": args.uplift,
                   "replications": args.replications},
        "sample_size": {"sequential_per_arm": sized, "fixed_horizon_per_arm": fixed_horizon(p_a, args.uplift),
                        "grid": grid},
        "aa": aa, "ab": ab,
        "goals": {"aa_false_positive_at_most_5pct": bool(aa["declared_different"] <= 0.05),
                  "ab_found_at_least_80pct": bool(ab["declared_different"] >= 0.8),
                  "ab_interval_covers_at_least_90pct": bool(ab["interval_covers_at_end"] >= 0.9)},
    }
    if not args.no_api:
        results["api"] = {}
        for name, uplift in (("aa", 0.0), ("ab", args.uplift)):
            fresh = work / f"home-{name}"  # the loaded shop as it was before the pilot
            fresh.mkdir()
            copy_store(clean, fresh / "graph.db")
            results["api"][name] = through_api(fresh, f"sim-{name}", sized, args.days, args.buy, uplift,
                                               seed=7 + len(name))
    out = RESULTS / "experiments.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k not in ("api",)}, indent=2))
    print(f"written to {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
