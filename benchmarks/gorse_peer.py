"""Against a compiled peer: lookgraph's personal feed on a MovieLens-100k store, beside Gorse.

    python benchmarks/gorse_peer.py [--requests 2000] [--gorse http://127.0.0.1:18088]

Issue 23 quotes Gorse v0.5.11 (Go, SQLite stores) serving its personal route on a MovieLens-100k
store on these 2 cores, one load generator beside it: p50 2.4 ms and 336 req/s at concurrency 1;
p50 16.9 ms, p99 88.7 ms and 360 req/s at concurrency 8.

This script builds the same store for lookgraph: MovieLens-100k through the native loader
(`benchmarks/movielens.py`: ratings as purchases, a session per user and day, genres as
categories), `lookgraph load`, `lookgraph train` (defaults: the feed is served with its trained
model, as Gorse's is), then `lookgraph serve --workers 1` and `--workers 2` in turn, each measured
with `GET /shoppers/{id}/recommendations?k=20` (explanations included) at concurrency 1 and 8
from one client process (aiohttp) on the same cores: three rounds each, the median one
reported. Impressions are kept, as served by default; each of the four measurements starts from
the store as training left it (a feed reads back the lists its shopper was shown). Before serving, where a feed's CPU goes:
every shopper's feed computed in one process (no HTTP, no impressions kept), twice over, with the
mean time of each pipeline stage (`recommend/engine.py`). Results: benchmarks/results/gorse_peer.json.

With `--gorse URL`, a Gorse server already running at URL is measured in the same sitting by the
same client: `GET /api/recommend/{id}?n=20` for the same shoppers, rounds and concurrencies,
with the CPU of the process listening there. lookgraph does not build or start Gorse. To give it
the same data: `--load-gorse URL` inserts the same items (genres as labels), users and every
rating (feedback type `purchase`, at its time) through Gorse's REST API; Gorse then needs its
fit and its ranking of every user (at its next start) before it is measured.

Last, what one new purchase changes in the next answer, on lookgraph (the trained store again)
and on the Gorse if given: for 50 seeded shoppers, two answers, a purchase of the most rated film
the shopper had not rated, a third answer (`reaction`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import datetime
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
from api_latency import KEY, load as load_requests, median_round, serving
from measure import RESULTS, lookgraph
from neo4j_vs_embedded import free_port
from workers import cpu_seconds, measure

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


def call(url: str, body=None, headers: dict | None = None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def load_gorse(base: str, native: Path) -> None:
    """The native MovieLens folder inserted into the Gorse at `base` through its REST API."""
    def post(path: str, body: list) -> None:
        print(path, call(base + path, body), flush=True)

    def when(ts) -> str:
        return datetime.datetime.fromtimestamp(int(ts), datetime.timezone.utc).isoformat()

    with open(native / "events.csv", newline="") as f:
        events = list(csv.DictReader(f))
    first: dict[str, int] = {}
    for event in events:  # an item's time: its first rating (Gorse's "latest" reads it)
        first[event["product_id"]] = min(first.get(event["product_id"], int(event["ts"])), int(event["ts"]))
    with open(native / "products.csv", newline="") as f:
        post("/api/items", [{"ItemId": p["id"], "IsHidden": False, "Categories": [], "Comment": p["name"],
                             "Timestamp": when(first.get(p["id"], min(first.values()))),
                             "Labels": {"genres": [a.split(":", 1)[1] for a in p["attributes"].split("|")
                                                   if a.startswith("genre:")]}} for p in csv.DictReader(f)])
    with open(native / "shoppers.csv", newline="") as f:
        post("/api/users", [{"UserId": row["id"], "Labels": {}, "Comment": ""} for row in csv.DictReader(f)])
    feedback = [{"FeedbackType": "purchase", "UserId": e["shopper_id"], "ItemId": e["product_id"],
                 "Timestamp": when(e["ts"]), "Comment": ""} for e in events]
    for start in range(0, len(feedback), 10_000):
        post("/api/feedback", feedback[start:start + 10_000])


def listening(base: str) -> psutil.Process | None:
    """The process listening on `base`'s port (for its CPU), if this user may see it."""
    port = urllib.parse.urlsplit(base).port
    try:
        for connection in psutil.net_connections("tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port and connection.pid:
                return psutil.Process(connection.pid)
    except psutil.AccessDenied:
        pass
    return None


def measure_gorse(base: str, shoppers: list[str], requests: int) -> dict:
    """Gorse's personal route at concurrency 1 and 8, as `workers.measure` measures lookgraph's."""
    route, server = "/api/recommend/{}?n=20", listening(base)
    asyncio.run(load_requests(base, shoppers, 16, 200, seed=1, route=route))  # warm
    results = {}
    for concurrency in (1, 8):
        total = requests // 4 if concurrency == 1 else requests
        before = cpu_seconds(server) if server else None
        rounds = [asyncio.run(load_requests(base, shoppers, concurrency, total, seed=20 + r, route=route))
                  for r in range(3)]
        results[f"concurrency_{concurrency}"] = {
            **median_round(rounds), "rounds": rounds,
            "server_cpu_ms_per_request": round(1000 * (cpu_seconds(server) - before) / (3 * total), 2) if server else None}
    return results


def purchases_to_make(native: Path, gorse: str | None, shoppers: int = 50, seed: int = 3) -> list[tuple[str, str]]:
    """(shopper, film) for a seeded sample of shoppers: the most rated film each has not rated,
    nor bought in the Gorse at `gorse` (a rerun's purchases are new there too)."""
    with open(native / "events.csv", newline="") as f:
        events = list(csv.DictReader(f))
    counts = collections.Counter(e["product_id"] for e in events)
    rated = collections.defaultdict(set)
    for e in events:
        rated[e["shopper_id"]].add(e["product_id"])
    chosen = random.Random(seed).sample(sorted(rated, key=lambda s: int(s[1:])), shoppers)
    if gorse:
        for shopper in chosen:
            rated[shopper] |= {f["ItemId"] for f in call(f"{gorse}/api/user/{shopper}/feedback")}
    return [(s, next(film for film, _ in counts.most_common() if film not in rated[s])) for s in chosen]


def reaction(purchases: list[tuple[str, str]], feed, buy) -> dict:
    """What a new purchase changes in the next answer. Per shopper: two answers (the second
    shows what asking again alone changes, e.g. fading what was just shown), the purchase, a
    third answer. `feed(shopper, film)` gives the answer as [(product id, whether its paths name
    the film)]; `buy(shopper, film)` posts the purchase."""
    again, after, naming, seconds = [], [], [], []
    for shopper, film in purchases:
        first = [pid for pid, _ in feed(shopper, film)]
        second = [pid for pid, _ in feed(shopper, film)]
        started = time.perf_counter()
        buy(shopper, film)
        third = feed(shopper, film)
        seconds.append(time.perf_counter() - started)
        # An item new after the purchase only because the film's own slot fell free is no reaction.
        filled = 1 if film in second and film not in [pid for pid, _ in third] else 0
        again.append(len(set(second) - set(first)))
        after.append(max(0, len({pid for pid, _ in third} - set(second)) - filled))
        naming.append(sum(named for _, named in third))
    n = len(purchases)
    return {"shoppers": n, "new_items_asking_again": round(sum(again) / n, 2),
            "new_items_after_the_purchase": round(sum(after) / n, 2),
            "answers_changed_by_the_purchase": sum(a > 0 for a in after),
            "items_whose_path_names_the_purchase": round(sum(naming) / n, 2),
            "purchase_then_answer_p50_ms": round(1000 * sorted(seconds)[n // 2], 1)}


def gorse_reaction(base: str, purchases: list[tuple[str, str]]) -> dict:
    def feed(shopper, film):
        return [(pid, False) for pid in call(f"{base}/api/recommend/{shopper}?n=20")]

    def buy(shopper, film):
        call(f"{base}/api/feedback", [{"FeedbackType": "purchase", "UserId": shopper, "ItemId": film, "Comment": "",
                                       "Timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat()}])
    return reaction(purchases, feed, buy)


def lookgraph_reaction(home: Path, purchases: list[tuple[str, str]]) -> dict:
    port = free_port()
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": KEY}
    env = {**os.environ, "LOOKGRAPH_HOME": str(home), "LOOKGRAPH_API_KEYS": f"{KEY}:read,events"}
    command = [sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(port), "--no-access-log"]

    def feed(shopper, film):
        answer = call(f"{base}/shoppers/{shopper}/recommendations?k=20", headers=headers)
        return [(item["product_id"], any(node["id"] == film for path in item["paths"] for node in path["nodes"]))
                for item in answer["items"]]

    def buy(shopper, film):
        call(f"{base}/events", {"event_id": f"bench-{shopper}-{film}", "session_id": f"bench-{shopper}",
                                "product_id": film, "type": "purchase", "shopper_id": shopper}, headers)
    with serving(command, env, base):
        return reaction(purchases, feed, buy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2_000, help="Requests per round.")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-bench")
    parser.add_argument("--gorse", help="measure the Gorse serving at this URL too, in the same sitting")
    parser.add_argument("--load-gorse", metavar="URL", help="insert the MovieLens store into the Gorse at URL, then exit")
    parser.add_argument("--in-process", type=Path, help=argparse.SUPPRESS)  # the child's part: a home
    args = parser.parse_args()
    shoppers = [f"u{i}" for i in range(1, 944)]
    if args.in_process:
        print(json.dumps(in_process(args.in_process, shoppers)))
        return
    native, home = args.work / "ml-100k-native", args.work / "home-gorse-peer"
    subprocess.run([sys.executable, str(Path(__file__).with_name("movielens.py")), "--out", str(native)], check=True)
    if args.load_gorse:
        load_gorse(args.load_gorse.rstrip("/"), native)
        print("loaded: Gorse ranks its users at its next fit (at its start, then every `fit_period`); restart it, "
              "wait for its log's 'complete ranking recommendation', then measure with --gorse")
        return
    shutil.rmtree(home, ignore_errors=True)
    lookgraph("load", str(native), home=home)
    seconds, _ = lookgraph("train", home=home)
    trained = args.work / "home-gorse-peer-trained"  # each served measurement starts from it (below)
    shutil.rmtree(trained, ignore_errors=True)
    shutil.copytree(home, trained)
    results: dict = {"command": "python benchmarks/gorse_peer.py " + " ".join(sys.argv[1:]), "gorse_quoted": GORSE,
                     "train_seconds": round(seconds, 1)}
    # In a child: the served measurements below start from the same store, and this process
    # stays free of the app's threads.
    child = subprocess.run([sys.executable, __file__, "--in-process", str(home)], check=True, capture_output=True, text=True)
    results["in_process"] = json.loads(child.stdout.strip().splitlines()[-1])
    if args.gorse:
        print(f"Gorse at {args.gorse} ...", flush=True)
        results["gorse"] = measure_gorse(args.gorse.rstrip("/"), shoppers, args.requests)
    for workers in (1, 2):
        for concurrency in (1, 8):
            total = args.requests // 4 if concurrency == 1 else args.requests
            print(f"--workers {workers}, concurrency {concurrency} ...", flush=True)
            # The trained store as it was: the lists shown in one measurement (which each feed
            # reads back, up to 50 a shopper) do not slow the next one down.
            shutil.rmtree(home)
            shutil.copytree(trained, home)
            results[f"workers_{workers}_concurrency_{concurrency}"] = measure(
                "embedded", home, dict(os.environ), workers, shoppers, total, concurrency=concurrency)
    # Last, as it writes: what one new purchase changes in the next answer, on both.
    purchases = purchases_to_make(native, args.gorse.rstrip("/") if args.gorse else None)
    shutil.rmtree(home)
    shutil.copytree(trained, home)
    results["reaction"] = {"lookgraph": lookgraph_reaction(home, purchases)}
    if args.gorse:
        results["reaction"]["gorse"] = gorse_reaction(args.gorse.rstrip("/"), purchases)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gorse_peer.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: ({m: v.get(m) for m in ("p50_ms", "p99_ms", "requests_per_second", "server_cpu_ms_per_request")}
                          if isinstance(v, dict) and "p50_ms" in v else v) for k, v in results.items() if k != "gorse"},
                     indent=2))
    print("reaction", json.dumps(results["reaction"]))
    for concurrency, measured in results.get("gorse", {}).items():
        print("gorse", concurrency, {m: measured[m] for m in ("p50_ms", "p99_ms", "requests_per_second",
                                                              "server_cpu_ms_per_request")})


if __name__ == "__main__":
    main()
