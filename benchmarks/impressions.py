"""What keeping impressions costs (recommend/impressions.py, recommend/attribution.py).

    python benchmarks/impressions.py [--lists 1000000] [--requests 500]

- the feed with impressions kept and not: `lookgraph serve` on the 2,000-product demo store,
  `GET /shoppers/{id}/recommendations?k=20` at concurrency 1, rounds alternating on and off in
  one run (the median round of each reported);
- the store: `--lists` served lists of 20 items each written through `append_impressions` in
  batches of 1,000 (as the writer thread does) into an embedded store; the file's growth (its
  write-ahead log copied in), per list and per item shown;
- attribution: one event for each of those lists, sent back with its recommendation id (a
  purchase of its first item), read from the store with the lists and credited
  (`attribution.recommendation_report`).
Goals (issue 24): < 1 ms on the feed's p50, nothing on its p99 beyond noise; 1M impressions
< 200 MB; attribution of 1M events with their ids < 60 s. Results: benchmarks/results/impressions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from api_latency import KEY, load as load_requests, median_round, serving
from measure import RESULTS, demo_store, lookgraph

from lookgraph.graph.model import Event, Impression, ShownItem
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.recommend.attribution import recommendation_report

SOURCES = ("look", "crowd", "attribute", "collaborative", "embedding")


def feed_cost(home: Path, requests: int, rounds: int = 3) -> dict:
    shoppers = [f"u{i:06d}" for i in range(0, 300, 3)]
    results = {}
    for on in ("true", "false") * rounds:
        port = 18990 if on == "true" else 18991
        env = {**os.environ, "LOOKGRAPH_HOME": str(home), "LOOKGRAPH_API_KEYS": f"{KEY}:read",
               "LOOKGRAPH_IMPRESSIONS": on}
        base = f"http://127.0.0.1:{port}"
        with serving([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(port), "--no-access-log"], env, base):
            asyncio.run(load_requests(base, shoppers, 1, 50, seed=1))  # warm
            results.setdefault(on, []).append(asyncio.run(load_requests(base, shoppers, 1, requests, seed=len(results))))
    on, off = (median_round(results[k], by="p50_ms") for k in ("true", "false"))
    return {"kept": {k: on[k] for k in ("p50_ms", "p99_ms", "requests_per_second")},
            "not_kept": {k: off[k] for k in ("p50_ms", "p99_ms", "requests_per_second")},
            "p50_added_ms": round(on["p50_ms"] - off["p50_ms"], 2), "p99_added_ms": round(on["p99_ms"] - off["p99_ms"], 2),
            "rounds": {k: [{m: r[m] for m in ("p50_ms", "p99_ms")} for r in v] for k, v in results.items()}}


def store_cost(home: Path, lists: int) -> dict:
    store = SQLiteGraphStore(home / "graph.db")
    products = sorted(store.known_ids("products"))
    shoppers = sorted(store.known_ids("shoppers"))
    before = _settled_size(home)
    started = time.perf_counter()
    now = 1.9e9
    for start in range(0, lists, 1_000):
        store.append_impressions([
            Impression(f"{n:032x}", "feed", now + n, tuple(ShownItem(products[(n * 7 + i * 13) % len(products)],
                                                                     SOURCES[i % len(SOURCES)], "INCLUDES>INCLUDES")
                                                           for i in range(20)),
                       shoppers[n % len(shoppers)], None, None, "20261206T000000Z-bench", "lambdarank", None,
                       {"k": 20, "location": None, "gift": None, "categories": [], "explore": True, "items": []})
            for n in range(start, min(lists, start + 1_000))])
    write_seconds = time.perf_counter() - started
    store.close()
    grown = _settled_size(home) - before
    return {"lists": lists, "items_shown": lists * 20, "write_seconds": round(write_seconds, 1),
            "store_growth_mib": round(grown / 2**20, 1), "bytes_per_list": round(grown / lists),
            "bytes_per_item_shown": round(grown / lists / 20, 1)}


def attribution_cost(home: Path, lists: int) -> dict:
    store = SQLiteGraphStore(home / "graph.db")
    shoppers = sorted(store.known_ids("shoppers"))
    first = {i.id: i.items[0].product_id for i in store.impressions(limit=None)}
    events = [Event(f"bench-buy-{n}", f"bench-buy-session-{n}", first[f"{n:032x}"], "purchase", 1.9e9 + n + 1,
                    shoppers[n % len(shoppers)]) for n in range(lists)]
    for start in range(0, lists, 5_000):
        store.append_events(events[start : start + 5_000])
        store.record_attributions([(e.id, f"{n:032x}") for n, e in enumerate(events[start : start + 5_000], start)])
    started = time.perf_counter()
    report = recommendation_report(store, 1.9e9, 1.9e9 + lists + 1, 86_400, 86_400)
    seconds = time.perf_counter() - started
    store.close()
    return {"events": lists, "seconds": round(seconds, 1), "purchases_credited": report["by_list"]["feed"]["purchases"]}


def _settled_size(home: Path) -> int:
    """The database file's size once its write-ahead log is copied in and emptied."""
    with sqlite3.connect(home / "graph.db") as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return (home / "graph.db").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lists", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-bench")
    args = parser.parse_args()
    args.products, args.shoppers, args.events = 2_000, 300, 20_000
    home = args.work / "impressions-home"
    shutil.rmtree(home, ignore_errors=True)
    lookgraph("load", str(demo_store(args)), home=home)
    result = {"command": "python benchmarks/impressions.py " + " ".join(sys.argv[1:])}
    result["feed"] = feed_cost(home, args.requests)
    print(json.dumps(result["feed"]), flush=True)
    result["store"] = store_cost(home, args.lists)
    print(json.dumps(result["store"]), flush=True)
    result["attribution"] = attribution_cost(home, args.lists)
    print(json.dumps(result, indent=2))
    (RESULTS / "impressions.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
