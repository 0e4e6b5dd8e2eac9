"""Many workers, one truth: how long a write made through one process takes to hold in another.

    python benchmarks/freshness.py [--store embedded|neo4j] [--trials 10]

On a seeded demo store (2,000 products; `--store neo4j` loads it into the empty server at
NEO4J_URI), two `lookgraph serve` processes on two ports over one store, then one `lookgraph serve
--workers 2`:

- stock: `PATCH /products/{id} {"availability": "out_of_stock"}` on the first, then the second
  asked for the complete-the-look page that held the item, every 20 ms, until it is gone;
- a rule: `POST /rules` excluding the item's category on the first, until the second drops it;
- a look: `POST /looks` of two products on the first, until the second's page of one shows the
  other by a path through the new look (a pair no earlier look of the benchmark joined: a page
  shows two paths an item);
- with `--workers 2`: the same stock change, then 20 requests in a row, all of which must agree.

The lag is the time from the write's answer to the first answer of the other process that
reflects it; the poll interval is `LOOKGRAPH_FRESHNESS_SECONDS` (0.5 s by default). Results go to
benchmarks/results/freshness-embedded.json or freshness-neo4j.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from contextlib import ExitStack
from urllib.parse import quote

import numpy as np
from api_latency import serving
from measure import RESULTS, demo_parser, demo_store, lookgraph

from lookgraph.settings import Settings

KEY = "freshness-admin-key-0123456789abcdef"
PORTS = (18971, 18972)


def call(port: int, method: str, path: str, body=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer) if answer.status != 204 else None


def page(port: int, product: str, k: int = 20) -> list[dict]:
    return call(port, "GET", f"/products/{quote(product, safe='')}/complete-the-look?k={k}")["items"]


def joined_before(port: int, partner: str, item: str) -> bool:
    """Whether `partner`'s page reaches `item` through a look this benchmark made before."""
    return any(i["product_id"] == item and any(p["nodes"][1]["id"].startswith("fresh-") for p in i["paths"] if len(p["nodes"]) > 2)
               for i in page(port, partner, 50))


def until(check, limit: float = 30.0, every: float = 0.02) -> float:
    """Seconds until `check()` holds (polled every `every`), or inf after `limit`."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if check():
            return time.perf_counter() - started
        time.sleep(every)
    return float("inf")


def summary(lags: list[float]) -> dict:
    """Lags of the trials; one never seen within `until`'s limit is inf, and counted apart (a
    percentile that falls on one is inf: taken at a trial, never between two)."""
    lags_ms = np.array(lags) * 1000
    at = lambda q: round(float(np.percentile(lags_ms, q, method="higher")), 1)  # noqa: E731
    return {"trials": len(lags), "never_seen": int(np.isinf(lags_ms).sum()), "p50_ms": at(50), "p99_ms": at(99),
            "max_ms": round(float(lags_ms.max()), 1)}


def main() -> None:
    parser = demo_parser(__doc__)
    parser.add_argument("--store", choices=("embedded", "neo4j"), default="embedded")
    parser.add_argument("--trials", type=int, default=10)
    parser.set_defaults(products=2_000, shoppers=300, events=20_000)
    args = parser.parse_args()
    home = args.work / f"freshness-{args.store}"
    env = {**os.environ, "LOOKGRAPH_HOME": str(home), "LOOKGRAPH_API_KEYS": f"{KEY}:read,events,admin,personal",
           "LOOKGRAPH_STORE": args.store}
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "loaded").exists():
        os.environ["LOOKGRAPH_STORE"] = args.store
        lookgraph("load", str(demo_store(args)), home=home)
        (home / "loaded").touch()
    serve = [sys.executable, "-m", "lookgraph.cli", "serve", "--no-access-log"]
    results: dict = {"command": "python benchmarks/freshness.py " + " ".join(sys.argv[1:]), "store": args.store,
                     "freshness_seconds": Settings().freshness_seconds}
    with ExitStack() as stack:
        for port in PORTS:
            stack.enter_context(serving([*serve, "--port", str(port)], env, f"http://127.0.0.1:{port}"))
        first, second = PORTS
        run = f"{int(time.time())}"  # ids of this run's rules and looks: a rerun on the same store makes new ones
        looks = [lk for lk in call(first, "GET", "/looks?limit=200")["items"] if not lk["id"].startswith("fresh-")]
        stock, rules, made = [], [], []
        for trial in range(args.trials):
            look = looks[trial % len(looks)]
            anchor, item = look["product_ids"][0], look["product_ids"][1]
            if item not in {i["product_id"] for i in page(second, anchor)}:
                continue
            call(first, "PATCH", f"/products/{quote(item, safe='')}", {"availability": "out_of_stock"})
            stock.append(until(lambda: item not in {i["product_id"] for i in page(second, anchor)}))
            call(first, "PATCH", f"/products/{quote(item, safe='')}", {"availability": "in_stock"})
            until(lambda: item in {i["product_id"] for i in page(second, anchor)})
            category = call(first, "GET", f"/products/{quote(item, safe='')}")["category_id"]
            call(first, "POST", "/rules", {"id": f"fresh-{run}-{trial}", "action": "exclude", "category": category})
            rules.append(until(lambda: not any(i["category"] == category for i in page(second, anchor, 50))))
            call(first, "DELETE", f"/rules/fresh-{run}-{trial}")
            until(lambda: any(i["category"] == category for i in page(second, anchor, 50)))  # the rule gone there too
            # A partner the item does not hang off already by a look of an earlier trial or run:
            # a page shows two paths an item, and the new look's must be one of them.
            partner = next(pid for pid in (i["product_id"] for i in page(second, anchor, 50))
                           if pid != item and not joined_before(second, pid, item))
            look_id = f"fresh-{run}-look-{trial}"
            call(first, "POST", "/looks", {"id": look_id, "name": "fresh", "product_ids": [partner, item]})
            made.append(until(lambda: any(p["relationships"] == ["INCLUDES", "INCLUDES"] and p["nodes"][1]["id"] == look_id
                                          for i in page(second, partner, 50) for p in i["paths"])))
        results["two_servers"] = {"stock": summary(stock), "rule": summary(rules), "look": summary(made)}
    with serving([*serve, "--port", str(PORTS[0]), "--workers", "2"], env, f"http://127.0.0.1:{PORTS[0]}"):
        lags, agreed = [], 0
        for trial in range(args.trials):
            look = looks[(args.trials + trial) % len(looks)]
            anchor, item = look["product_ids"][0], look["product_ids"][1]
            call(PORTS[0], "PATCH", f"/products/{quote(item, safe='')}", {"availability": "out_of_stock"})
            lags.append(until(lambda: all(item not in {i["product_id"] for i in page(PORTS[0], anchor)} for _ in range(20))))
            agreed += all(item not in {i["product_id"] for i in page(PORTS[0], anchor)} for _ in range(20))
            call(PORTS[0], "PATCH", f"/products/{quote(item, safe='')}", {"availability": "in_stock"})
        results["workers_2"] = {"stock_all_of_20_agree": summary(lags), "then_agreeing": f"{agreed} of {args.trials}"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"freshness-{args.store}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
