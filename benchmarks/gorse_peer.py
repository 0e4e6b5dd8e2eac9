"""Against a compiled peer: lookgraph's personal feed on a MovieLens-100k store, at Gorse's load.

    python benchmarks/gorse_peer.py [--requests 2000]

Issue 23 quotes Gorse v0.5.11 (Go, SQLite stores) serving its personal route on a MovieLens-100k
store on these 2 cores, one load generator beside it: p50 2.4 ms and 336 req/s at concurrency 1;
p50 16.9 ms, p99 88.7 ms and 360 req/s at concurrency 8. Gorse is not installed here (no Go
module proxy for its dependencies was tried in this run), so its figures are the quoted ones.

This script builds the same store for lookgraph: MovieLens-100k through the native loader
(`benchmarks/movielens.py`: ratings as purchases, a session per user and day, genres as
categories), `lookgraph load`, `lookgraph train` (defaults: the feed is served with its trained
model, as Gorse's is), then `lookgraph serve --workers 1` and `--workers 2` in turn, each measured
with `GET /shoppers/{id}/recommendations?k=20` (explanations included) at concurrency 1 and 8
from one client process (aiohttp) on the same cores: three rounds each, the median one
reported. Impressions are kept, as served by default. Before serving, where a feed's CPU goes:
every shopper's feed computed in one process (no HTTP, no impressions kept), twice over, with the
mean time of each pipeline stage (`recommend/engine.py`). Results: benchmarks/results/gorse_peer.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from measure import RESULTS, lookgraph
from workers import measure

GORSE = {"concurrency_1": {"p50_ms": 2.4, "requests_per_second": 336},
         "concurrency_8": {"p50_ms": 16.9, "p99_ms": 88.7, "requests_per_second": 360}}


STAGES = ("shopper_request", "gather", "admit", "describe", "rank", "arrange", "explain")
"""The pipeline's stages as `recommend/engine.py` calls them."""


def in_process(home: Path, shoppers: list[str], passes: int = 2) -> dict:
    """Mean milliseconds a feed, and per stage, computed in this process from the served app's
    engine (impressions not kept, so every pass asks the same)."""
    os.environ.update(LOOKGRAPH_HOME=str(home), LOOKGRAPH_API_KEYS="bench-key-0123456789abcdef:read",
                      LOOKGRAPH_IMPRESSIONS="false")
    from lookgraph.api.app import create_app
    from lookgraph.recommend import engine as pipeline
    from lookgraph.recommend.request import Ask

    engine = create_app().state.engine
    spent: collections.Counter = collections.Counter()

    def timed(name, stage):
        def run(*args, **kwargs):
            started = time.perf_counter()
            try:
                return stage(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started
        return run

    for shopper in shoppers[:100]:  # warm: caches, lazily built indexes
        engine.for_shopper(shopper, Ask(k=20))
    for name in STAGES:
        setattr(pipeline, name, timed(name, getattr(pipeline, name)))
    started = time.perf_counter()
    for _ in range(passes):
        for shopper in shoppers:
            engine.for_shopper(shopper, Ask(k=20))
    feeds = passes * len(shoppers)
    return {"feeds": feeds, "ms_per_feed": round(1000 * (time.perf_counter() - started) / feeds, 2),
            "ms_per_stage": {name: round(1000 * spent[name] / feeds, 3) for name in STAGES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2_000, help="Requests per round.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-bench")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)  # the child's part: a home
    args = parser.parse_args()
    if args.in_process:
        print(json.dumps(in_process(args.in_process, [f"u{i}" for i in range(1, 944)])))
        return
    native, home = args.work / "ml-100k-native", args.work / "home-gorse-peer"
    subprocess.run([sys.executable, str(Path(__file__).with_name("movielens.py")), "--out", str(native)], check=True)
    shutil.rmtree(home, ignore_errors=True)
    lookgraph("load", str(native), home=home)
    seconds, _ = lookgraph("train", home=home)
    shoppers = [f"u{i}" for i in range(1, 944)]
    results: dict = {"command": "python benchmarks/gorse_peer.py " + " ".join(sys.argv[1:]), "gorse_quoted": GORSE,
                     "train_seconds": round(seconds, 1)}
    # In a child: the served measurements below start from the same store, and this process
    # stays free of the app's threads.
    child = subprocess.run([sys.executable, __file__, "--in-process", str(home)], check=True, capture_output=True, text=True)
    results["in_process"] = json.loads(child.stdout.strip().splitlines()[-1])
    for workers in (1, 2):
        for concurrency in (1, 8):
            total = args.requests // 4 if concurrency == 1 else args.requests
            print(f"--workers {workers}, concurrency {concurrency} ...", flush=True)
            results[f"workers_{workers}_concurrency_{concurrency}"] = measure(
                "embedded", home, dict(os.environ), workers, shoppers, total, concurrency=concurrency)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gorse_peer.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: ({m: v.get(m) for m in ("p50_ms", "p99_ms", "requests_per_second", "server_cpu_ms_per_request")}
                          if isinstance(v, dict) and "p50_ms" in v else v) for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
