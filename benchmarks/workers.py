"""Cores: `lookgraph serve --workers 1` against `--workers 2`, and the server's CPU per feed
request, on both stores.

    python benchmarks/workers.py [--products 2000] [--shoppers 400] [--events 20000] [--requests 2000]

The seeded demo store, loaded into the embedded store and into a Neo4j of the benchmark's own
(scripts/neo4j.sh; needs Java 17+ and Maven), served from graph paths alone (no trained model,
so the two stores differ only in where the walks run). For each store and worker count:
`GET /shoppers/{id}/recommendations?k=20` at concurrency 16 from one client process (aiohttp)
beside the server on the same 2 cores, three rounds, the median one reported; and the CPU the
server spent per request over those rounds (user + system time of the `lookgraph serve` process
and its workers; on Neo4j also the database's JVM, reported apart). Results:
benchmarks/results/workers.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys

import psutil
from api_latency import KEY, load as load_requests, median_round, serving
from measure import RESULTS, demo_parser, demo_store
from neo4j_vs_embedded import Neo4jServer, free_port, timed


def cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of a process and its children now."""
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def measure(store: str, home, env: dict, workers: int, shoppers: list[str], requests: int, database=None,
            concurrency: int = 16) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "LOOKGRAPH_HOME": str(home), "LOOKGRAPH_API_KEYS": f"{KEY}:read", "LOOKGRAPH_IMPRESSIONS": "true"}
    command = [sys.executable, "-m", "lookgraph.cli", "serve", "--store", store, "--port", str(port),
               "--workers", str(workers), "--no-access-log"]
    with serving(command, env, base) as server:
        server_process = psutil.Process(server.pid)
        asyncio.run(load_requests(base, shoppers, 16, 200, seed=1))  # warm every worker
        cpu_before, db_before = cpu_seconds(server_process), cpu_seconds(database) if database else 0.0
        rounds = [asyncio.run(load_requests(base, shoppers, concurrency, requests, seed=20 + r)) for r in range(3)]
        cpu, db = cpu_seconds(server_process) - cpu_before, (cpu_seconds(database) - db_before) if database else None
    served = 3 * requests
    return {**{k: v for k, v in median_round(rounds).items()}, "rounds": rounds,
            "server_cpu_ms_per_request": round(1000 * cpu / served, 2),
            "database_cpu_ms_per_request": round(1000 * db / served, 2) if db is not None else None}


def main() -> None:
    parser = demo_parser(__doc__)
    parser.set_defaults(products=2_000, shoppers=400, events=20_000)
    parser.add_argument("--requests", type=int, default=2_000, help="Requests per round at concurrency 16.")
    args = parser.parse_args()
    demo = demo_store(args)
    home = args.work / "home-workers"
    shutil.rmtree(home, ignore_errors=True)
    timed("load", str(demo), home=home)
    shoppers = [f"u{i:06d}" for i in range(0, args.shoppers, max(1, args.shoppers // 300))]
    results: dict = {"command": "python benchmarks/workers.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
                     "products": args.products, "events": args.events, "concurrency": 16}
    for workers in (1, 2):
        print(f"embedded, --workers {workers} ...", flush=True)
        results[f"embedded_workers_{workers}"] = measure("embedded", home, dict(os.environ), workers, shoppers,
                                                         args.requests)
    server = Neo4jServer(args.work / "neo4j-workers", heap="2g", pagecache_mb=512)
    shutil.rmtree(server.home, ignore_errors=True)
    server.start()
    try:
        env = {**os.environ, "NEO4J_URI": server.uri}
        timed("load", str(demo), "--store", "neo4j", home=home, env={"NEO4J_URI": server.uri})
        for workers in (1, 2):
            print(f"neo4j, --workers {workers} ...", flush=True)
            results[f"neo4j_workers_{workers}"] = measure("neo4j", home, env, workers, shoppers, args.requests,
                                                          server.process)
    finally:
        server.stop()
    for store in ("embedded", "neo4j"):
        one, two = results[f"{store}_workers_1"], results[f"{store}_workers_2"]
        results[f"{store}_two_over_one"] = round(two["requests_per_second"] / one["requests_per_second"], 2)
    out = RESULTS / "workers.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: ({m: v[m] for m in ("p50_ms", "p99_ms", "requests_per_second", "server_cpu_ms_per_request",
                                             "database_cpu_ms_per_request")} if isinstance(v, dict) else v)
                      for k, v in results.items()}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
