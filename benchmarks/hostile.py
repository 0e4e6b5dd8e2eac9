"""Hostile-client benchmark: what a fuzzer, racing shoppers, a flood of events and `kill -9` do
to a served lookgraph (embedded store).

    python benchmarks/hostile.py [--events 1000000] [--pairs 1000] [--kills 5] [--examples 50]

On a seeded demo store (2,000 products) in a fresh home, against `lookgraph serve` in a child
process:

1. Schemathesis over every operation of the OpenAPI document (valid and invalid inputs,
   `--examples` of each per operation, with an admin key): requests sent, 5xx answers, answers
   whose status code the document does not declare.
2. Session race: `--pairs` pairs of first events, two shoppers naming one new session at the
   same moment: events stored under a session another shopper owns (goal 0).
3. Contact-cap race: 100 shoppers x 8 parallel `POST /shoppers/{id}/outbound`: shoppers
   contacted more than once inside the 24-hour quiet period (goal 0).
4. Memory: the server's resident memory before and after `--events` events posted through
   `POST /events` in batches of 1,000 (goal: under 2x).
5. Durability: `--kills` times, 4 writers post events one by one while the server is killed
   with SIGKILL; every acknowledged event must be in the store afterwards (goal: 0 lost).

Results go to benchmarks/results/hostile.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
from api_latency import serving
from measure import RESULTS, fuzz_served, lookgraph, wait_until_answering

KEY = "hostile-admin-key-0123456789abcdef"
PORT = 18931
BASE = f"http://127.0.0.1:{PORT}"


def fuzz(base: str, examples: int) -> dict:
    server_errors, undocumented = [], []

    def seen(operation, case, response):
        where = f"{case.method} {case.formatted_path} -> {response.status_code}"
        if response.status_code >= 500:
            server_errors.append(where)
        if str(response.status_code) not in operation.definition.raw.get("responses", {}):
            undocumented.append(where)
        sent.append(where)

    sent: list[str] = []
    fuzz_served(base, KEY, examples, seen)
    return {"requests": len(sent), "server_errors": len(server_errors), "undocumented_status": len(undocumented),
            "examples": (server_errors + undocumented)[:10]}


async def session_race(base: str, pairs: int) -> dict:
    headers = {"X-API-Key": KEY}
    async with aiohttp.ClientSession(headers=headers) as http:
        async def first_event(pair: int, shopper: str) -> int:
            body = {"event_id": f"race-{pair}-{shopper}", "session_id": f"race-{pair}", "product_id": "p000001",
                    "type": "view", "shopper_id": f"{shopper}-{pair}"}
            async with http.post(f"{base}/events", json=body) as answer:
                return answer.status

        codes = []
        for start in range(0, pairs, 50):  # 50 pairs in flight at once, each pair sent together
            codes += await asyncio.gather(*(asyncio.gather(first_event(p, "alice"), first_event(p, "bob"))
                                            for p in range(start, min(pairs, start + 50))))
    return {"pairs": pairs, "both_accepted": sum(c == [200, 200] for c in map(list, codes)),
            "one_accepted": sum(sorted(c) == [200, 422] for c in codes)}


def misattributed(home: Path, pairs: int) -> int:
    """Events stored in a race session whose shopper is not the session's owner."""
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(home / "graph.db")
    try:
        owners = store.session_owners([f"race-{p}" for p in range(pairs)])
        return sum(e.shopper_id != owner for session, owner in owners.items() for e in store.events(session_id=session))
    finally:
        store.close()


async def cap_race(base: str, shoppers: list[str]) -> dict:
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        async def outbound(shopper: str) -> bool:
            async with http.post(f"{base}/shoppers/{shopper}/outbound?channel=email&k=1") as answer:
                return (await answer.json())["contact"]

        contacted = await asyncio.gather(*(outbound(s) for s in shoppers for _ in range(8)))
    per_shopper = {s: sum(contacted[i * 8 : (i + 1) * 8]) for i, s in enumerate(shoppers)}
    return {"shoppers": len(shoppers), "calls": len(contacted), "over_the_cap": sum(n > 1 for n in per_shopper.values())}


async def flood(base: str, events: int, products: int) -> float:
    rng = random.Random(3)
    started = time.perf_counter()
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        async def batch(b: int) -> None:
            body = {"events": [{"event_id": f"flood-{b}-{i}", "session_id": f"flood-s{(b * 1000 + i) // 12}",
                                "product_id": f"p{rng.randrange(products):06d}",
                                "type": rng.choice(("view", "view", "view", "cart", "purchase")),
                                "shopper_id": f"flood-u{((b * 1000 + i) // 12) % 50_000}"} for i in range(1000)]}
            async with http.post(f"{base}/events", json=body) as answer:
                assert answer.status == 200, await answer.text()

        for start in range(0, events // 1000, 4):
            await asyncio.gather(*(batch(b) for b in range(start, min(events // 1000, start + 4))))
    return time.perf_counter() - started


async def writers_until_killed(base: str, server: subprocess.Popen, round_: int, seconds: float) -> list[str]:
    acked: list[str] = []
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as http:
        async def writer(w: int) -> None:
            i = 0
            while True:
                event_id = f"kill-{round_}-{w}-{i}"
                body = {"event_id": event_id, "session_id": f"kill-{round_}-{w}", "product_id": "p000002",
                        "type": "view", "shopper_id": f"killer-{w}"}
                try:
                    async with http.post(f"{base}/events", json=body) as answer:
                        if answer.status == 200:
                            acked.append(event_id)
                except aiohttp.ClientError:
                    return
                i += 1

        async def killer() -> None:
            await asyncio.sleep(seconds)
            os.kill(server.pid, signal.SIGKILL)

        await asyncio.gather(killer(), *(writer(w) for w in range(4)))
    return acked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=1_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--examples", type=int, default=50)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="lookgraph-hostile-"))
    home, products = work / "home", 2_000
    lookgraph("demo-data", str(work / "demo"), "--products", str(products), "--shoppers", "500", "--events", "20000",
              home=home)
    lookgraph("load", str(work / "demo"), home=home)
    env = dict(os.environ, LOOKGRAPH_HOME=str(home), LOOKGRAPH_API_KEYS=f"{KEY}:admin")
    command = [sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(PORT)]
    results: dict = {"command": "python benchmarks/hostile.py " + " ".join(sys.argv[1:]),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}

    with serving(command, env, BASE) as server:
        results["fuzz"] = fuzz(BASE, args.examples)
        print("fuzz", results["fuzz"], flush=True)
        results["session_race"] = asyncio.run(session_race(BASE, args.pairs))
        shoppers = [f"u{i:06d}" for i in range(1, 101)]
        results["cap_race"] = asyncio.run(cap_race(BASE, shoppers))
        print("races", results["session_race"], results["cap_race"], flush=True)
        process = psutil.Process(server.pid)
        before = process.memory_info().rss / 2**20
        seconds = asyncio.run(flood(BASE, args.events, products))
        after = process.memory_info().rss / 2**20
        results["memory"] = {"events": args.events, "seconds": round(seconds, 1), "events_per_second": round(args.events / seconds),
                             "rss_before_mib": round(before), "rss_after_mib": round(after), "ratio": round(after / before, 2)}
        print("memory", results["memory"], flush=True)
    results["session_race"]["misattributed_events"] = misattributed(home, args.pairs)

    acked, lost = [], 0
    for round_ in range(args.kills):
        server = subprocess.Popen(command, env=env)
        wait_until_answering(BASE)
        acked += asyncio.run(writers_until_killed(BASE, server, round_, seconds=2.0))
        server.wait()
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(home / "graph.db")
    stored = {e.id for w in range(4) for e in store.events(shopper_id=f"killer-{w}")}
    store.close()
    lost = len(set(acked) - stored)
    results["kill_9"] = {"kills": args.kills, "writers": 4, "acknowledged": len(acked), "lost": lost}
    print("kill -9", results["kill_9"], flush=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
