"""Neo4j against the embedded store on the demo store (100k products, 1M events), in one run.

    python benchmarks/neo4j_vs_embedded.py [--products 100000] [--events 1000000] [--requests 1000]

Starts its own Neo4j (scripts/neo4j.sh, a fresh database under --work; needs Java 17+ and
Maven), then measures:
- `lookgraph load` into the embedded store and `lookgraph load --store neo4j` (transactional
  batches of UNWIND ... MERGE): wall time, events per second, and the Neo4j server's peak
  resident memory and heap in use; and the write path alone (100k new events appended as the
  API appends them, nothing parsed or checked);
- the bulk path: `lookgraph export --format neo4j-admin`, then the real `neo4j-admin database
  import full` of the same release into a new database (its wall time), then `lookgraph stats`
  on that database against the embedded store's;
- `lookgraph serve` on each store, `GET /shoppers/{id}/recommendations?k=20` at concurrency 1
  and 8 (p50/p99; three rounds, the median one reported). Both serve from graph paths alone
  (no trained model), so the two differ only in where the walks run. Then, in-process, what
  a request spends per Cypher statement, beside the floor of one read transaction. Each
  round also counts the CPU the whole machine spent on it (`with_cpu`), from which `ceiling`
  gives the most concurrency 8 could serve on these cores, over concurrency 1.
Goals: transactional load >= 20k events/s; bulk import of 1M events < 60 s; serving on Neo4j
within 3x of the embedded store's p50. Results go to benchmarks/results/neo4j.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from api_latency import KEY, load as load_requests, median_round, serving
from measure import RESULTS, ROOT, demo_parser, demo_store, lookgraph

NEO4J_SH = ROOT / "scripts" / "neo4j.sh"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Neo4jServer:
    """scripts/neo4j.sh on a home and port of its own; the server's memory sampled while it runs."""

    def __init__(self, home: Path, heap: str = "4g", pagecache_mb: int = 2048):
        self.home, self.port = home, free_port()
        self.env = {**os.environ, "LOOKGRAPH_NEO4J_HOME": str(home), "LOOKGRAPH_NEO4J_PORT": str(self.port),
                    "LOOKGRAPH_NEO4J_HEAP": heap, "LOOKGRAPH_NEO4J_PAGECACHE_MB": str(pagecache_mb)}
        self.uri = f"bolt://127.0.0.1:{self.port}"
        self.peak_rss = 0.0

    def script(self, *args: str) -> str:
        done = subprocess.run(["bash", str(NEO4J_SH), *args], env=self.env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"scripts/neo4j.sh {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout + done.stderr

    def start(self) -> None:
        self.script("start")
        self.process = psutil.Process(int((self.home / "server.pid").read_text()))
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while self._sampling:
            try:
                self.peak_rss = max(self.peak_rss, self.process.memory_info().rss / 2**20)
            except psutil.Error:
                return
            time.sleep(0.25)

    def heap_used_mib(self) -> float | None:
        """Heap in use, from the JVM's own memory bean (dbms.queryJmx), after a collection is not forced."""
        from neo4j import GraphDatabase

        with GraphDatabase.driver(self.uri) as driver:
            records, _, _ = driver.execute_query("CALL dbms.queryJmx('java.lang:type=Memory') YIELD attributes "
                                                 "RETURN attributes.HeapMemoryUsage.value.properties.used AS used")
        return round(records[0]["used"] / 2**20) if records else None

    def stop(self) -> None:
        self._sampling = False
        self.script("stop")


def timed(*args: str, home: Path, env: dict | None = None) -> tuple[float, str]:
    if env:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
    try:
        return lookgraph(*args, home=home)
    finally:
        for k, v in (saved.items() if env else ()):
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def latency(store: str, home: Path, env: dict, shoppers: list[str], requests: int) -> dict:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**env, "LOOKGRAPH_HOME": str(home), "LOOKGRAPH_API_KEYS": f"{KEY}:read"}
    results = {}
    with serving([sys.executable, "-m", "lookgraph.cli", "serve", "--store", store, "--port", str(port)], env, base):
        for concurrency, total in ((1, requests // 2), (8, requests)):
            rounds = [with_cpu(lambda: asyncio.run(load_requests(base, shoppers, concurrency, total,
                                                                 seed=10 * concurrency + r)))
                      for r in range(3)]
            results[f"concurrency_{concurrency}"] = {**median_round(rounds), "rounds": rounds}
    results["ceiling"] = ceiling(results["concurrency_1"], results["concurrency_8"])
    return results


def with_cpu(run) -> dict:
    """A round of load, with the CPU the whole machine spent on it (server, Neo4j, this load
    generator, anything else) and this process's own share: the cores busy on average, and the
    CPU milliseconds a request."""
    machine, own = psutil.cpu_times(), psutil.Process().cpu_times()
    started = time.perf_counter()
    found = run()
    wall = time.perf_counter() - started
    after, own_after = psutil.cpu_times(), psutil.Process().cpu_times()
    busy = sum(after) - sum(machine) - (after.idle - machine.idle) - (getattr(after, "iowait", 0) - getattr(machine, "iowait", 0))
    client = own_after.user + own_after.system - own.user - own.system
    return {**found, "cores_busy": round(busy / wall, 2), "cpu_ms_per_request": round(busy / found["requests"] * 1000, 2),
            "load_generator_cpu_ms_per_request": round(client / found["requests"] * 1000, 2)}


def ceiling(one: dict, eight: dict) -> dict:
    """The most requests a second these cores could serve at concurrency 8, were every core
    busy with nothing lost, from the CPU a request cost at concurrency 8 (with the load
    generator's, and without it as if it ran elsewhere), over concurrency 1's throughput: the
    most the concurrency goal's ratio can be on this machine."""
    cores = psutil.cpu_count()
    most = cores * 1000 / eight["cpu_ms_per_request"]
    without_client = cores * 1000 / (eight["cpu_ms_per_request"] - eight["load_generator_cpu_ms_per_request"])
    return {"cores": cores, "most_requests_per_second": round(most, 1),
            "most_over_concurrency_1": round(most / one["requests_per_second"], 2),
            "most_without_load_generator_over_concurrency_1": round(without_client / one["requests_per_second"], 2),
            "concurrency_1_cores_busy": one["cores_busy"]}


def append_only(uri: str, products: int, events: int = 100_000, batch: int = 5_000) -> dict:
    """The write path alone, as `POST /events` batches use it: `events` new events (new sessions
    of known shoppers) through `Neo4jGraphStore.append_events`, with nothing parsed or checked."""
    from lookgraph.graph.model import Event
    from lookgraph.graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(uri, "neo4j", "", batch_size=batch)
    rows = [Event(f"bench-{i}", f"bench-session-{i // 8}", f"p{(i * 7919) % products:06d}", "view", 1.8e9 + i,
                  f"u{(i // 8) % 20_000:06d}") for i in range(events)]
    started = time.perf_counter()
    new = store.append_events(rows)
    seconds = time.perf_counter() - started
    store.close()
    return {"events": new, "seconds": round(seconds, 1), "events_per_second": round(new / seconds)}


def request_cost(uri: str, shoppers: list[str], requests: int = 100) -> dict:
    """In-process, what one recommendation costs on Neo4j, statement by statement (mean ms per
    request after a warm-up), beside the floor: an empty read transaction through the driver."""
    from lookgraph.recommend.engine import Ask, Engine
    from lookgraph.recommend.policies import PolicyConfig
    from lookgraph.graph.neo4j_store import Neo4jGraphStore

    store = Neo4jGraphStore(uri, "neo4j", "")
    engine = Engine(store, store.traversal(), None, PolicyConfig())
    spent: dict[str, float] = {}
    read, read_many = store._read, store._read_many  # `_read` runs through `_read_many`: timed there alone

    def timed(label, run, *args, **params):
        started = time.perf_counter()
        try:
            return run(*args, **params)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - started

    store._read_many = lambda *queries: timed("+".join(k for k, _ in queries), read_many, *queries)
    for shopper in shoppers[:requests]:  # warm-up: plans cached, each attribute's top products counted once
        engine.for_shopper(shopper, Ask(k=20)).items
    spent.clear()
    started = time.perf_counter()
    for shopper in shoppers[requests : 2 * requests]:
        engine.for_shopper(shopper, Ask(k=20)).items
    total = time.perf_counter() - started
    per_statement = dict(spent)  # before the floor's own reads below
    started = time.perf_counter()
    for _ in range(200):
        read("traversal.product_count")  # one index-backed count: about an empty transaction
    floor = (time.perf_counter() - started) / 200
    store.close()
    return {"request_ms": round(total / requests * 1000, 2), "transaction_floor_ms": round(floor * 1000, 2),
            "statements_ms_per_request": {k: round(v / requests * 1000, 2) for k, v in sorted(per_statement.items())}}


def main() -> None:
    parser = demo_parser(__doc__)
    parser.add_argument("--requests", type=int, default=1_000, help="Requests per round at concurrency 8.")
    args = parser.parse_args()

    demo = demo_store(args)
    version = subprocess.run(["bash", str(NEO4J_SH), "version"], capture_output=True, text=True).stdout.strip()
    results: dict = {"command": "python benchmarks/neo4j_vs_embedded.py " + " ".join(sys.argv[1:]), "neo4j": version,
                     "events": args.events, "products": args.products}

    home = args.work / "home-neo4j-bench"
    shutil.rmtree(home, ignore_errors=True)
    print("loading the embedded store ...", flush=True)
    seconds, _ = timed("load", str(demo), home=home)
    results["load_embedded"] = {"wall_seconds": round(seconds, 1), "events_per_second": round(args.events / seconds)}

    server = Neo4jServer(args.work / "neo4j-bench")
    shutil.rmtree(server.home, ignore_errors=True)
    server.start()
    neo4j_env = {"NEO4J_URI": server.uri}
    try:
        print("loading Neo4j (transactional) ...", flush=True)
        seconds, out = timed("load", str(demo), "--store", "neo4j", home=home, env=neo4j_env)
        results["load_neo4j"] = {
            "wall_seconds": round(seconds, 1), "events_per_second": round(args.events / seconds),
            "server_peak_rss_mib": round(server.peak_rss), "server_heap_used_mib": server.heap_used_mib(),
            "goal": ">= 20,000 events/s", "output": out.strip()}
        print(json.dumps(results["load_neo4j"]), flush=True)
        stats_tx = json.loads(timed("stats", "--json", "--store", "neo4j", home=home, env=neo4j_env)[1])

        shoppers = [f"u{i:06d}" for i in range(0, args.shoppers, max(1, args.shoppers // 500))]
        print("serving latency, embedded then Neo4j ...", flush=True)
        results["serve_embedded"] = latency("embedded", home, {**os.environ}, shoppers, args.requests)
        results["serve_neo4j"] = latency("neo4j", home, {**os.environ, **neo4j_env}, shoppers, args.requests)
        results["neo4j_request_cost"] = request_cost(server.uri, shoppers)
        results["append_only_neo4j"] = append_only(server.uri, args.products)  # last: it adds events
        ratio = results["serve_neo4j"]["concurrency_1"]["p50_ms"] / results["serve_embedded"]["concurrency_1"]["p50_ms"]
        results["serve_p50_ratio_concurrency_1"] = {"neo4j_over_embedded": round(ratio, 2), "goal": "< 3"}
    finally:
        server.stop()

    print("bulk path: export, neo4j-admin database import full ...", flush=True)
    bulk = args.work / "bulk"
    shutil.rmtree(bulk, ignore_errors=True)
    seconds_export, _ = timed("export", str(bulk), "--format", "neo4j-admin", home=home)
    imported = Neo4jServer(args.work / "neo4j-bulk")
    shutil.rmtree(imported.home, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(["bash", str(bulk / "import.sh")], capture_output=True, text=True,
                          env={**imported.env, "NEO4J_ADMIN": f"{NEO4J_SH} admin"})
    seconds_import = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"import failed:\n{done.stdout}{done.stderr}")
    imported.start()
    try:
        stats_bulk = json.loads(timed("stats", "--json", "--store", "neo4j", home=home,
                                      env={"NEO4J_URI": imported.uri})[1])
    finally:
        imported.stop()
    stats_embedded = json.loads(timed("stats", "--json", home=home)[1])
    results["bulk_import"] = {"export_seconds": round(seconds_export, 1), "import_seconds": round(seconds_import, 1),
                              "goal": "import of 1M events < 60 s",
                              "stats_equal_embedded": stats_bulk == stats_embedded,
                              "transactional_stats_equal_embedded": stats_tx == stats_embedded}

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "neo4j.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items()}, indent=2, default=str)[:6000])


if __name__ == "__main__":
    main()
