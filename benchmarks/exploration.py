"""Does exploration that learns sell more than a fixed exploration share?

    python benchmarks/exploration.py [--days 4] [--per-day 3000]

Simulated shoppers (`simulator.py`: known tastes, one in five seeking variety) visit the demo
shop through the API for `--days` days. One experiment (`POST /experiments`) splits them in
three, a third each:

- `fixed`: 20% of the feed's slots always explore (`explore_learns` off: the draw without rewards);
- `learning`: up to 20% explore, each slot only when a group's draw beats the ranking's own
  item, from what exploration earned (`recommend/exploration.py`);
- `none`: no exploration (the reference of what exploring costs or brings).

Every simulated hour the count runs as `lookgraph serve`'s job runs it (`exploration.refresh`)
and the server reads it (`freshness`). Reported: each arm's conversion (share of shoppers who
bought an item they were shown) and the experiment's report; and the regret curve, the
expected purchases each arm lost against the best arm in hindsight, visit by visit, as
benchmarks/results/exploration_regret.svg. Results: benchmarks/results/exploration.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from measure import RESULTS
from simulator import Shop, demo_home

from lookgraph.loaders.demo import END_TS
from lookgraph.recommend import exploration

DAY = 86_400.0
ARMS = ("fixed", "learning", "none")


def regret_svg(curves: dict[str, list[float]], path: Path, width: int = 640, height: int = 320) -> None:
    """The cumulative regret per arm against visits, as an SVG line chart."""
    left, bottom, top, right = 64, 36, 28, 110
    longest = max(len(c) for c in curves.values())
    peak = max(max(c) for c in curves.values() if c) or 1.0
    x = lambda i: left + i / max(longest - 1, 1) * (width - left - right)  # noqa: E731
    y = lambda v: height - bottom - v / peak * (height - bottom - top)  # noqa: E731
    colours = {"fixed": "#dc2626", "learning": "#2563eb", "none": "#16a34a"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             'font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="16">Cumulative regret: expected purchases lost against the best arm in hindsight</text>']
    for v in np.linspace(0, peak, 5):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e7ee"/>'
                     f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    parts.append(f'<text x="{(width - right + left) / 2}" y="{height - 8}" text-anchor="middle">visits to the arm '
                 f'(0 to {longest})</text>')
    for name, curve in curves.items():
        step = max(1, len(curve) // 300)
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in list(enumerate(curve))[::step] + [(len(curve) - 1, curve[-1])])
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colours.get(name, "#4b5563")}" stroke-width="2"/>')
        parts.append(f'<text x="{width - right + 6}" y="{y(curve[-1]) + 4:.1f}" fill="{colours.get(name, "#4b5563")}">'
                     f'{name} {curve[-1] + 0.0:.1f}</text>')
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--per-day", type=int, default=3_000)
    parser.add_argument("--buy", type=float, default=0.2)
    args = parser.parse_args()
    work, home = demo_home("exploration", shoppers=300)
    shop = Shop(home, END_TS + DAY, seed=3, exploration_refresh_seconds=0)
    engine = shop.app.state.engine
    shop.post("/experiments", {"id": "exploration", "name": "exploration that learns", "variants": [
        {"name": "fixed", "share": 1 / 3, "policy": {"explore_learns": False}},
        {"name": "learning", "share": 1 / 3},
        {"name": "none", "share": 1 - 2 / 3, "policy": {"explore_share": 0.0}}]})

    def group_of(product_id: str) -> str | None:
        card = engine.graph.cards([product_id]).get(product_id)
        return engine.graph.categories.group(card.category) if card else None

    visits: dict[str, list] = {arm: [] for arm in ARMS}
    hourly, counted = max(1, args.per_day // 24), []
    for n in range(args.days * args.per_day):
        visit = shop.visit(args.buy, lambda variant: 1.0)
        visits[visit.variant.split("/", 1)[1]].append(visit)
        shop.clock.now += DAY / args.per_day
        if (n + 1) % hourly == 0:  # the serving job's count, as each hour passes
            shop.app.state.impressions.flush()
            if done := exploration.refresh(shop.store, group_of, shop.clock()):
                counted.append({"through": done["through"], "lists": done["lists"]})
            shop.app.state.freshness.catch_up()
    shop.app.state.impressions.flush()
    shop.clock.now += DAY  # every outcome in, for the report
    report = shop.get("/experiments/exploration/report")
    arms = exploration.arms_of(shop.store.exploration_state()) or {}
    shop.close()

    mean = {arm: float(np.mean([v.expected for v in vs])) for arm, vs in visits.items()}
    best = max(mean.values())
    curves = {arm: (np.cumsum([best - v.expected for v in vs]).round(3) + 0.0).tolist() for arm, vs in visits.items()}
    regret_svg({arm: curves[arm] for arm in ARMS}, RESULTS / "exploration_regret.svg")
    results = {
        "design": {"days": args.days, "visits_per_day": args.per_day, "buy_given_click": args.buy},
        "arms": {arm: {"visits": len(vs), "conversion": round(float(np.mean([v.purchases > 0 for v in vs])), 4),
                       "purchases_per_visit": round(float(np.mean([v.purchases for v in vs])), 4),
                       "expected_purchases_per_visit": round(mean[arm], 4),
                       "clicks_per_visit": round(float(np.mean([v.clicks for v in vs])), 4),
                       "regret_at_end": curves[arm][-1]} for arm, vs in visits.items()},
        "report": {"variants": report["variants"], "comparisons": report["comparisons"]},
        "learned_arms": {arm: [round(s, 1), round(w, 1), round(w / s, 4) if s else None] for arm, (s, w) in
                         sorted(arms.items(), key=lambda kv: -kv[1][0])},
        "counts": len(counted),
        "goal_learning_beats_fixed": bool(mean["learning"] > mean["fixed"]),
    }
    out = RESULTS / "exploration.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "report"}, indent=2))
    print(f"written to {out} and {RESULTS / 'exploration_regret.svg'}")


if __name__ == "__main__":
    main()
