"""The mission's manners, measured on the served feed through the API.

    python benchmarks/manners.py [--shoppers 120] [--products 2000] [--events 20000]

On a seeded demo store, trained with `lookgraph train` (defaults) and served by `lookgraph
serve` in a child process, for each of `--shoppers` shoppers with 5 or more profile events:

(a) nothing only viewed (never carted or bought) is in their feed (top 20), and an item carted
    and not bought appears only as "still in your bag"; then each viewed item of the feed of a
    second request after a fresh view is checked again;
(b) one view of a product of a department the shopper never touched, in a new session: the
    share of the top 20 that changed (goal: at most a third for 95% of shoppers), beside the
    change between two requests with no event between (the control: exploration and fading);
(c) every exploration pick is in a department the shopper touched;
(d) no item carries the same path twice.

Results go to benchmarks/results/manners.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from api_latency import serving
from measure import RESULTS, lookgraph

KEY = "manners-admin-key-0123456789abcdef"
PORT = 18961
BASE = f"http://127.0.0.1:{PORT}"


def call(method: str, path: str, body=None):
    request = urllib.request.Request(BASE + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"X-API-Key": KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)


def feed(shopper: str, explore: bool) -> list[dict]:
    return call("GET", f"/shoppers/{quote(shopper, safe='')}/recommendations?k=20&explore={str(explore).lower()}")["items"]


def department(category: str | None) -> str | None:
    """The demo's `fashion/<department>/...` or `home/...`: who an item is for."""
    if not category:
        return None
    parts = category.split("/")
    return "/".join(parts[:2]) if parts[0] == "fashion" and len(parts) > 1 else parts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=120)
    parser.add_argument("--products", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lookgraph-manners-"))
    home = work / "home"
    lookgraph("demo-data", str(work / "demo"), "--products", str(args.products), "--shoppers", "400",
              "--events", str(args.events), home=home)
    lookgraph("load", str(work / "demo"), home=home)
    seconds, _ = lookgraph("train", home=home)
    print(f"trained in {seconds:.0f} s", flush=True)

    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(home / "graph.db")
    categories = {p.id: p.category_id for p in store.iter_records("products")}
    shoppers = sorted(store.known_ids("shoppers"))
    store.close()
    env = dict(os.environ, LOOKGRAPH_HOME=str(home), LOOKGRAPH_API_KEYS=f"{KEY}:admin")
    command = [sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(PORT), "--no-access-log"]
    out = {"a_viewed_shown": 0, "a_bag_not_said": 0, "a_viewed_shown_after_view": 0, "c_exploration_elsewhere": 0,
           "d_duplicate_paths": 0, "b_changed": [], "b_changed_without_explore": [], "control_changed": [],
           "shoppers": 0, "explored_items": 0, "examples": []}
    with serving(command, env, BASE):
        for shopper in shoppers:
            if out["shoppers"] >= args.shoppers:
                break
            journey = call("GET", f"/shoppers/{quote(shopper, safe='')}/journey?limit=5000")
            events = [e for s in journey["sessions"] for e in s["events"]]
            if len(events) < 5:
                continue
            out["shoppers"] += 1
            strong = {e["product_id"] for e in events if e["type"] in ("cart", "purchase", "dismiss")}
            viewed_only = {e["product_id"] for e in events if e["type"] == "view"} - strong
            touched = {department(categories.get(e["product_id"])) for e in events}
            first, again = feed(shopper, True), feed(shopper, True)
            quiet = feed(shopper, False)
            out["control_changed"].append(1 - len({i["product_id"] for i in first} & {i["product_id"] for i in again}) / 20)
            for item in first:
                if item["product_id"] in viewed_only:
                    out["a_viewed_shown"] += 1
                    out["examples"].append(f"(a) {shopper}: {item['product_id']} ({item['reason']})")
                if "still in your bag" in item["reason"] and item["product_id"] not in strong:
                    out["a_bag_not_said"] += 1
                if item["exploration"]:
                    out["explored_items"] += 1
                    if department(item["category"]) not in touched:
                        out["c_exploration_elsewhere"] += 1
                        out["examples"].append(f"(c) {shopper}: {item['product_id']} in {item['category']}")
                drawn = [(tuple((n["label"], n["id"]) for n in p["nodes"]), tuple(p["relationships"])) for p in item["paths"]]
                if len(drawn) != len(set(drawn)):
                    out["d_duplicate_paths"] += 1
            # (b) one view of a product of a department the shopper never touched.
            elsewhere = next((pid for pid, c in sorted(categories.items()) if department(c) not in touched), None)
            if elsewhere is None:
                continue
            call("POST", "/events", {"event_id": f"manners-{shopper}", "session_id": f"manners-{shopper}",
                                     "product_id": elsewhere, "type": "view", "shopper_id": shopper})
            after, after_quiet = feed(shopper, True), feed(shopper, False)
            out["b_changed"].append(1 - len({i["product_id"] for i in again} & {i["product_id"] for i in after}) / 20)
            if out["b_changed"][-1] > 1 / 3:
                out["examples"].append(f"(b) {shopper}: {out['b_changed'][-1]:.0%} of the feed changed after viewing "
                                       f"{elsewhere} ({categories.get(elsewhere)})")
            out["b_changed_without_explore"].append(
                1 - len({i["product_id"] for i in quiet} & {i["product_id"] for i in after_quiet}) / 20)
            if any(i["product_id"] == elsewhere for i in after):
                out["a_viewed_shown_after_view"] += 1
    for key in ("b_changed", "b_changed_without_explore", "control_changed"):
        values = out[key]
        out[key] = {"shoppers": len(values), "mean": round(sum(values) / max(len(values), 1), 3),
                    "at_most_a_third": round(sum(v <= 1 / 3 + 1e-9 for v in values) / max(len(values), 1), 3),
                    "max": round(max(values, default=0), 3)}
    out["examples"] = out["examples"][:10]
    out["command"] = "python benchmarks/manners.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "manners.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
