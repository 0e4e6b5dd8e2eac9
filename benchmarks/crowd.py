"""The crowd's BOUGHT_WITH, materialized (graph/crowd.py): what it costs and how fresh it is.

    python benchmarks/crowd.py [--products 100000] [--shoppers 20000] [--events 1000000]

On the embedded store of the demo data (generated once under --work):
- `lookgraph load`, which now computes BOUGHT_WITH in the load's transaction, against the load
  time the README gave before (19.6 s at 1M events);
- `lookgraph refresh-crowd`: the serving job's whole recomputation (rows, products, seconds),
  and the store file's growth;
- the lag of an event posted now: 1,000 new events (250 sessions of 4 events pairing products never
  seen together), then the job and a serving process reading it again (`crowd_refreshed`); the lag a
  storefront sees is at most `LOOKGRAPH_CROWD_REFRESH_SECONDS` (300 s) plus these.
Results go to benchmarks/results/crowd.json.
"""

from __future__ import annotations

import json
import shutil
import time

from measure import RESULTS, demo_parser, demo_store, lookgraph

from lookgraph.graph import crowd
from lookgraph.graph.memory_traversal import MemoryTraversal
from lookgraph.graph.model import Event
from lookgraph.graph.sqlite_store import SQLiteGraphStore


def main() -> None:
    args = demo_parser(__doc__).parse_args()
    demo = demo_store(args)
    home = args.work / "crowd-home"
    shutil.rmtree(home, ignore_errors=True)
    load_seconds, _ = lookgraph("load", str(demo), home=home)
    store = SQLiteGraphStore(home / "graph.db")
    rows = sum(1 for _ in store.iter_bought_with())
    size_loaded = (home / "graph.db").stat().st_size
    started = time.perf_counter()
    refreshed = crowd.refresh(store)
    refresh_seconds = time.perf_counter() - started

    walk = MemoryTraversal.build(store, spawn=lambda work: work())
    products = sorted(store.known_ids("products"))
    pairs = [(products[i], products[-1 - i]) for i in range(250)]
    assert not any(b in {h.product_id for h in walk.co_sessions([a], 50)} for a, b in pairs[:20])
    posted = time.perf_counter()
    now = time.time()  # after every demo event: the newest sessions of each product
    store.append_events([Event(f"crowd-bench/{n}/{i}", f"crowd-bench-{n}", product, "cart", now + n * 60 + i)
                         for n, pair in enumerate(pairs) for i, product in enumerate(pair * 2)])
    job = time.perf_counter()
    assert crowd.due(store)
    crowd.refresh(store)
    job_seconds = time.perf_counter() - job
    read_again = time.perf_counter()
    walk.crowd_refreshed()
    read_seconds = time.perf_counter() - read_again
    seen = sum(b in {h.product_id for h in walk.co_sessions([a], 50)} for a, b in pairs)
    result = {
        "events": args.events, "products": args.products,
        "load_seconds": round(load_seconds, 1), "load_seconds_before": 19.6,
        "bought_with_rows": rows, "products_with_companions": refreshed["products"],
        "refresh_seconds": round(refresh_seconds, 1),
        "store_mib": round(size_loaded / 2**20, 1),
        "lag": {"events_posted": 1_000, "job_seconds": round(job_seconds, 1),
                "read_again_seconds": round(read_seconds, 1),
                "posted_to_served_seconds": round(time.perf_counter() - posted, 1),
                "new_pairs_walked": f"{seen} of {len(pairs)}",
                "worst_case": f"LOOKGRAPH_CROWD_REFRESH_SECONDS + {round(job_seconds + read_seconds, 1)} s"},
    }
    store.close()
    print(json.dumps(result, indent=2))
    (RESULTS / "crowd.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
