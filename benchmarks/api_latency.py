"""API latency benchmark on the demo store (100k products, 1M events), embedded store.

    python benchmarks/api_latency.py [--home /tmp/lookgraph-bench/train-demo-1000000]

Needs a loaded and trained home (`python benchmarks/train.py` makes one). Starts one
`lookgraph serve` process, then from a separate client process measures
`GET /shoppers/{id}/recommendations?k=20` (explanations included) at concurrency 1 and 32:
p50/p99 latency and requests per second (each in `--rounds` rounds, the round of median
throughput reported); the same request offered at `--rate` (500) per second over 32
connections, open loop, latency counted from when each request was due; how long a posted
event takes to show in the next recommendation; the same loads against the same app whose engine
answers at once (`canned_server.py`: the ceiling of one server process on this machine); and,
in-process, the engine's time per request against a bare numpy top-k over
the same embeddings, and the vector index's recall against an exact scan. Goals: p99 < 25 ms
at concurrency 32, >= 500 requests/s, engine < 5x the bare top-k, event visible in < 50 ms. Results go to benchmarks/results/api_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from measure import RESULTS, wait_until_answering

KEY = "bench-key-0123456789abcdef"


async def load(base: str, shoppers: list[str], concurrency: int, total: int, seed: int, rate: float | None = None,
               route: str = "/shoppers/{}/recommendations?k=20") -> dict:
    """`total` requests over `concurrency` connections. Closed loop (no `rate`): each connection
    sends its next request when the last one is answered. Open loop (`rate`), as wrk2 measures:
    request i is due `i / rate` seconds in, and its latency counts from then, so a server that
    cannot keep up shows it in the latency instead of slowing the clients down.
    aiohttp, not httpx: measured here, httpx spends 2.1 ms of CPU per request (aiohttp 0.4 ms),
    so on these 2 shared cores it could not send 500 requests a second. `route` is the feed's
    path with `{}` for the shopper (another server's personal route can be measured alike)."""
    import aiohttp

    rng = random.Random(seed)
    todo = [rng.choice(shoppers) for _ in range(total)]
    latencies: list[float] = []
    errors, sent = 0, 0

    async def connection(session, started):
        nonlocal errors, sent
        while sent < total:
            i, sent = sent, sent + 1
            due = started + i / rate if rate else time.perf_counter()
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            async with session.get(base + route.format(todo[i])) as response:
                await response.read()
            latencies.append(time.perf_counter() - due)
            errors += response.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}, connector=connector) as session:
        async with session.get(base + route.format(shoppers[0])) as response:  # warm up
            await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(connection(session, started) for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"concurrency": concurrency, "offered_per_second": rate, "requests": total, "errors": errors,
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "requests_per_second": round(total / wall, 1)}


@contextlib.contextmanager
def serving(command: list[str], env: dict, base: str):
    """A server process running `command`, once it answers `/health`; stopped afterwards."""
    server = subprocess.Popen(command, env=env)
    try:
        wait_until_answering(base)
        yield server
    finally:
        server.terminate()
        server.wait()


def loads(base: str, shoppers: list[str], requests: int, rounds: int, rate: float) -> dict:
    """Closed loop at concurrency 1 (a fifth of the requests) and 32, then open loop at `rate`
    over 32 connections; each in `rounds` rounds, the median one reported."""
    results = {}
    for concurrency, total in ((1, requests // 5), (32, requests)):
        measured = [asyncio.run(load(base, shoppers, concurrency, total, seed=10 * concurrency + r)) for r in range(rounds)]
        results[f"concurrency_{concurrency}"] = {**median_round(measured), "rounds": measured}
    measured = [asyncio.run(load(base, shoppers, 32, requests, seed=500 + r, rate=rate)) for r in range(rounds)]
    results[f"paced_{rate:g}_per_second"] = {**median_round(measured, by="p99_ms"), "rounds": measured}
    return results


def without_rounds(results):
    """The results without each phase's rounds, to print."""
    if not isinstance(results, dict):
        return results
    return {k: without_rounds(v) for k, v in results.items() if k not in ("rounds", "event_visible")}


def median_round(rounds: list[dict], by: str = "requests_per_second") -> dict:
    """The round of median throughput (or `by`): this VM's speed drifts by a fifth between minutes."""
    return sorted(rounds, key=lambda r: r[by])[len(rounds) // 2]


def event_visibility(base: str, shopper: str, product: str) -> dict:
    def call(path, body=None):
        request = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode() if body else None,
                                         method="POST" if body else "GET",
                                         headers={"X-API-Key": KEY, "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    started = time.perf_counter()
    call("/events", {"event_id": f"bench-{time.time()}", "session_id": f"bench-{shopper}-{time.time()}",
                     "product_id": product, "type": "view", "shopper_id": shopper})
    answer = call(f"/shoppers/{shopper}/recommendations?k=20")
    seconds = time.perf_counter() - started
    anchored = any(step["id"] == product for item in answer["items"] for path in item["paths"] for step in path["nodes"])
    return {"shopper": shopper, "product": product, "post_then_get_ms": round(seconds * 1000, 2), "reflected": anchored and
            all(item["product_id"] != product for item in answer["items"])}


def engine_ratio(home: Path, shoppers: list[str]) -> dict:
    """Engine time per request vs a bare numpy top-k over the same product embeddings."""
    from lookgraph.recommend.engine import Ask, Engine
    from lookgraph.embeddings.vectors import LookVectors, latest_artifact
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    from threadpoolctl import threadpool_limits

    from lookgraph.recommend.ranker import LearnedRanker

    store = SQLiteGraphStore(home / "graph.db")
    folder = latest_artifact(home)
    vectors = LookVectors.load(folder)
    engine = Engine(store, store.traversal(vectors), vectors, ranker=LearnedRanker.load(folder))  # as served
    threadpool_limits(1)  # as `lookgraph serve` runs
    rows = {sid: i for i, sid in enumerate(vectors.ids["shopper"])}
    items = vectors.arrays["product"]
    engine_ms, bare_ms = [], []
    for shopper in shoppers[:300]:
        started = time.perf_counter()
        engine.for_shopper(shopper, Ask(k=20)).items
        engine_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = items @ vectors.arrays["shopper"][rows[shopper]]
        top = np.argpartition(-scores, 20)[:20]
        top[np.argsort(-scores[top])]
        bare_ms.append((time.perf_counter() - started) * 1000)
    engine_p50, bare_p50 = float(np.median(engine_ms)), float(np.median(bare_ms))
    return {"engine_p50_ms": round(engine_p50, 3), "engine_p99_ms": round(float(np.percentile(engine_ms, 99)), 3),
            "bare_topk_p50_ms": round(bare_p50, 3),
            "ratio": round(engine_p50 / bare_p50, 2), "products": len(items)}


def vector_index_quality(home: Path, queries: int = 300) -> dict:
    """The embedded store's vector index against an exact scan, on queries made as the engine
    makes them (the sum of three products' embeddings): share of the exact top 50 found, and time."""
    from lookgraph.embeddings.vectors import LookVectors, latest_artifact
    from lookgraph.graph.vector_index import VectorIndex

    vectors = LookVectors.load(latest_artifact(home))
    items, ids = vectors.arrays["product"], vectors.ids["product"]
    started = time.perf_counter()
    index = VectorIndex(ids, items)
    built = time.perf_counter() - started
    units = items / (np.linalg.norm(items, axis=1, keepdims=True) + 1e-9)
    rng = np.random.default_rng(0)
    found, index_ms, scan_ms = [], [], []
    for _ in range(queries):
        query = items[rng.integers(0, len(items), 3)].sum(0)
        started = time.perf_counter()
        answer = index.nearest(query, 50)
        index_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        scores = units @ query
        exact = np.argpartition(-scores, 49)[:50]
        scan_ms.append((time.perf_counter() - started) * 1000)
        found.append(len({ids[i] for i in exact} & set(answer)) / 50)
    return {"products": len(ids), "recall_at_50": round(float(np.mean(found)), 4), "build_s": round(built, 2),
            "index_p50_ms": round(float(np.median(index_ms)), 3), "exact_scan_p50_ms": round(float(np.median(scan_ms)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path("/tmp/lookgraph-bench/train-demo-1000000"))
    parser.add_argument("--port", type=int, default=8799)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="load rounds per concurrency; the median one is reported")
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second offered in the open-loop phase")
    parser.add_argument("--engine-only", action="store_true",
                        help="only the in-process phase (engine time per request), written to api_latency_engine.json")
    args = parser.parse_args()
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(args.home / "graph.db")
    shoppers = [s for s, in store._conn().execute("SELECT DISTINCT shopper_id FROM session WHERE shopper_id IS NOT NULL LIMIT 5000")]
    # A product the shopper has not seen, different on every run: repeated views of one item
    # without a cart would (rightly) count less as taste.
    fashion = [p for p, in store._conn().execute("SELECT id FROM product WHERE category_id LIKE 'fashion/%'")]
    products = random.Random(time.time_ns()).sample(fashion, 20)
    store.close()

    results: dict = {"command": "python benchmarks/api_latency.py " + " ".join(sys.argv[1:]),
                     "engine": engine_ratio(args.home, shoppers)}
    if args.engine_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "api_latency_engine.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
        return
    results["vector_index"] = vector_index_quality(args.home)
    env = dict(os.environ, LOOKGRAPH_HOME=str(args.home), LOOKGRAPH_API_KEYS=f"{KEY}:read,events")
    base = f"http://127.0.0.1:{args.port}"
    with serving([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(args.port)], env, base):
        results.update(loads(base, shoppers, args.requests, args.rounds, args.rate))
        results["event_visible"] = [event_visibility(base, shoppers[i], products[i]) for i in range(20)]
        ms = [r["post_then_get_ms"] for r in results["event_visible"]]
        results["event_visible_summary"] = {"p50_ms": float(np.median(ms)), "max_ms": max(ms),
                                            "all_reflected": all(r["reflected"] for r in results["event_visible"])}
        with urllib.request.urlopen(urllib.request.Request(f"{base}/shoppers/{shoppers[0]}/recommendations?k=20",
                                                           headers={"X-API-Key": KEY})) as response:
            answer = response.read()
    # The same load against the same app whose engine answers at once: the ceiling of one process here.
    with tempfile.NamedTemporaryFile(suffix=".json") as canned:
        canned.write(answer)
        canned.flush()
        with serving([sys.executable, str(Path(__file__).with_name("canned_server.py")), canned.name, str(args.port)],
                     env, base):
            results["engine_free"] = loads(base, shoppers, args.requests, args.rounds, args.rate)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "api_latency.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(without_rounds(results), indent=2))


if __name__ == "__main__":
    main()
