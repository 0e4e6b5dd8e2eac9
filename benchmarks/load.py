"""Load benchmark: the demo store at scale and BundleRec clothing into the embedded store.

    python benchmarks/load.py [--products 100000] [--events 1000000] [--data ../shared/data]

Each load runs `lookgraph load` in a child process on a fresh store, so the figures are what a
user sees: wall time, events per second, and the child's peak resident memory. Results are
printed and written to benchmarks/results/load.json. Goal: 1M events in under 30 s with peak
memory under 2 GB on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys

from measure import RESULTS, demo_parser, demo_store, lookgraph, peak_rss_mib


def main() -> None:
    parser = demo_parser(__doc__)
    args = parser.parse_args()

    demo = demo_store(args)

    results: dict = {
        "command": "python benchmarks/load.py " + " ".join(sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    home = args.work / "home-demo"
    shutil.rmtree(home, ignore_errors=True)
    (seconds, out), peak = peak_rss_mib(lambda: lookgraph("load", str(demo), home=home))
    results["demo"] = {
        "products": args.products, "events": args.events, "wall_seconds": round(seconds, 2),
        "events_per_second": round(args.events / seconds), "peak_rss_mib": round(peak),
        "goal": "1M events < 30 s, peak RSS < 2048 MiB", "output": out.strip(),
    }
    (seconds, out), peak = peak_rss_mib(lambda: lookgraph("load", str(demo), home=home))
    results["demo_reload"] = {"wall_seconds": round(seconds, 2), "peak_rss_mib": round(peak), "output": out.strip()}

    clothing = args.data / "bundlerec" / "clothing"
    if clothing.is_dir():
        home = args.work / "home-clothing"
        shutil.rmtree(home, ignore_errors=True)
        (seconds, out), peak = peak_rss_mib(lambda: lookgraph("load", str(clothing), "--format", "bundlerec", home=home))
        _, stats = lookgraph("stats", "--json", home=home)
        results["bundlerec_clothing"] = {"wall_seconds": round(seconds, 2), "peak_rss_mib": round(peak),
                                         "stats": json.loads(stats)}
    else:
        results["bundlerec_clothing"] = f"skipped: {clothing} not found"

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
