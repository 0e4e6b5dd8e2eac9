"""Merchandising benchmark: how fast an availability change reaches the served answer, and how
much a boost rule changes lists, on both stores.

    python benchmarks/merchandising.py [--stores embedded,neo4j] [--shoppers 100] [--rules 500]

On the seeded demo store (2,000 products, 300 shoppers, 20,000 events; graph paths, no trained
model), through the API in-process (FastAPI's test client, so the figures are the server's
own time, not a network's):

1. Out of stock: for `--shoppers` shoppers, the top item of their feed is marked out of stock
   (`PATCH /products/{id}`) and the next `GET /shoppers/{id}/recommendations` is asked; the time
   from the PATCH being sent to that answer (which must not hold the item), p50 and max; then
   the item is put back in stock. Goal: under 50 ms.
2. Boosts: a boost rule on the category group with the most products, at weights 0.5, 1 and 2;
   the share of the top-20 slots whose item changed, over the same shoppers' feeds.
3. Rules at scale (`--rules 500`; issue 23's goal is stated at 10,000): that many boost and bury
   rules, each on a category group of the catalogue in turn, made one by one through `POST
   /rules`: the time each write takes (the first and the last fifty); the first 50 shoppers'
   feeds, three passes, before the first rule and with all of them in force (time and size).

Neo4j runs on NEO4J_URI (an empty database is loaded and emptied again: use a scratch server,
e.g. `LOOKGRAPH_NEO4J_HOME=/tmp/neo4j-bench bash scripts/neo4j.sh start`). Results go to
benchmarks/results/merchandising.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from measure import RESULTS

KEY = "bench-admin-key-0123456789abcdef"


def store_of(kind: str, folder: Path):
    from lookgraph.graph.stores import open_store
    from lookgraph.loaders.native import NativeSource
    from lookgraph.loaders.pipeline import load
    from lookgraph.settings import Settings

    settings = Settings(home=folder / "home")
    store = open_store(settings, kind)
    if kind == "neo4j":
        store._write("admin.delete_everything")
    load(NativeSource(folder / "demo"), store)
    return store, settings


def measure(kind: str, folder: Path, shoppers: int, rules: int) -> dict:
    from lookgraph.api.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    store, settings = store_of(kind, folder)
    client = TestClient(create_app(settings.model_copy(update={"api_keys": f"{KEY}:admin"}), store, vectors=None))
    headers = {"X-API-Key": KEY}
    feed = lambda s: [i["product_id"] for i in client.get(  # noqa: E731
        f"/shoppers/{s}/recommendations?k=20&explore=false", headers=headers).json()["items"]]
    people = sorted(store.known_ids("shoppers"))[:shoppers]

    seconds, patched, still_there = [], [], 0
    for shopper in people:
        top = feed(shopper)[0]
        started = time.perf_counter()
        client.patch(f"/products/{top}", json={"availability": "out_of_stock"}, headers=headers)
        patched.append(time.perf_counter() - started)
        after = feed(shopper)
        seconds.append(time.perf_counter() - started)
        still_there += top in after
        client.patch(f"/products/{top}", json={"availability": "in_stock"}, headers=headers)

    tree = client.app.state.engine.graph.categories
    products = list(store.iter_records("products"))
    group = Counter(tree.group(p.category_id) for p in products if p.category_id).most_common(1)[0][0]
    answered = []
    baseline = {}
    for s in people:
        started = time.perf_counter()
        baseline[s] = feed(s)
        answered.append(time.perf_counter() - started)
    shares = {}
    for weight in (0.5, 1.0, 2.0):
        rule = {"id": f"boost-{weight}", "action": "boost", "category": group, "weight": weight}
        client.post("/rules", json=rule, headers=headers)
        changed = [sum(a != b for a, b in zip(baseline[s], feed(s))) / max(len(baseline[s]), 1) for s in people]
        shares[str(weight)] = round(statistics.mean(changed), 3)
        client.delete(f"/rules/boost-{weight}", headers=headers)
    groups = sorted({tree.group(p.category_id) for p in products if p.category_id})

    def feeds_timed() -> tuple[list[float], list[int]]:
        """The first 50 shoppers' feeds, three passes: each request's milliseconds and size."""
        times, sizes = [], []
        for _ in range(3):
            for s in people[:50]:
                started = time.perf_counter()
                body = client.get(f"/shoppers/{s}/recommendations?k=20&explore=false", headers=headers).content
                times.append(1000 * (time.perf_counter() - started))
                sizes.append(len(body))
        return times, sizes

    before_times, _ = feeds_timed()
    writes = []
    for n in range(rules):
        rule = {"id": f"scale-{n:04d}", "action": "boost" if n % 2 else "bury", "category": groups[n % len(groups)],
                "weight": 0.1 + (n % 7) / 10}
        started = time.perf_counter()
        assert client.post("/rules", json=rule, headers=headers).status_code == 201
        writes.append(1000 * (time.perf_counter() - started))
    times, sizes = feeds_timed()
    at_scale = {"rules": rules, "first_50_writes_p50_ms": round(statistics.median(writes[:50]), 1),
                "last_50_writes_p50_ms": round(statistics.median(writes[-50:]), 1),
                "all_writes_seconds": round(sum(writes) / 1000, 1),
                "feed_p50_ms": round(statistics.median(times), 1), "feed_p50_kb": round(statistics.median(sizes) / 1024, 1),
                "feed_before_rules_p50_ms": round(statistics.median(before_times), 2),
                "feed_p50_over_no_rules": round(statistics.median(times) / statistics.median(before_times), 2),
                "goal": "a rule write < 50 ms, a feed p50 within 1.2x of no rules"} if rules else None
    if kind == "neo4j":
        store._write("admin.delete_everything")
    store.close()
    ms = sorted(1000 * s for s in seconds)
    return {"shoppers": len(people), "out_of_stock_to_next_answer_ms": {
                "p50": round(statistics.median(ms), 2), "p90": round(ms[int(0.9 * (len(ms) - 1))], 2),
                "max": round(ms[-1], 2), "of_which_the_patch_p50": round(1000 * statistics.median(patched), 2)},
            "a_feed_alone_p50_ms": round(1000 * statistics.median(answered), 2),
            "answers_still_holding_the_item": still_there, "boost_category_group": group,
            "share_of_top20_slots_changed_by_boost_weight": shares, "goal": "under 50 ms", "rules_at_scale": at_scale}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="embedded,neo4j")
    parser.add_argument("--shoppers", type=int, default=100)
    parser.add_argument("--rules", type=int, default=500)
    args = parser.parse_args()
    from lookgraph.loaders.demo import DemoSpec, write_demo_store

    folder = Path(tempfile.mkdtemp(prefix="lookgraph-merch-"))
    write_demo_store(folder / "demo", DemoSpec(2_000, 300, 20_000, 7))
    results: dict = {"command": "python benchmarks/merchandising.py " + " ".join(sys.argv[1:]),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    for kind in args.stores.split(","):
        if kind == "neo4j" and not os.environ.get("NEO4J_URI"):
            results[kind] = "skipped: NEO4J_URI is not set"
            continue
        results[kind] = measure(kind, folder, args.shoppers, args.rules)
        print(kind, json.dumps(results[kind]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "merchandising.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
