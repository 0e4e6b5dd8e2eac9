"""The second hardening round, replayed from outside against `lookgraph serve` on both stores.

    python benchmarks/hardening.py [--examples 20] [--stores embedded,neo4j] [--data ../shared/data]

For each store: a fresh home (and, for Neo4j, a fresh local server from scripts/neo4j.sh), a
seeded demo shop plus the real datasets' id shapes (BundleRec clothing and electronic,
Diginetica, where --data has them; otherwise small files of the same layout) and native ids
holding `/`, `%`, spaces, `?`, `#`, `..` and unicode; then, against the served API:

1. every finding of the issue, each by its one-line reproduction, and what it must answer now;
2. Schemathesis over every operation (`--examples` valid and invalid inputs each), seeded with
   deep JSON bodies and edge-of-range dates: 5xx answers (goal 0);
3. a page on another port of the same host, in headless Chromium signed in as admin, that
   frames the rules page and auto-submits a rule: what it changed (goal nothing);
4. every loader's id shape erased through `DELETE /shoppers/{id}`, then a byte search of the
   home folder for each erased id (goal: found nowhere; on Neo4j the server's folder is searched
   too, and its transaction logs keep deleted records until they rotate, as the README says);
5. key checks: the time to refuse a key that shares 15 characters with a real one against a key
   that shares none (constant time: equal within noise).

The server's standard error is kept and searched for tracebacks (goal none). Results go to
benchmarks/results/hardening.json.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from measure import RESULTS, ROOT, fuzz_served, lookgraph, wait_until_answering

KEYS = {"admin": "hardening-admin-key-0123456789", "read": "hardening-read-key-0123456789",
        "events": "hardening-events-key-0123456789", "personal": "hardening-personal-key-0123456789"}
PORT = 18951
BASE = f"http://127.0.0.1:{PORT}"
ODD = ["Zoë 100%/ü", "a b?c#d&e=f", "闪电/⚡", "..", "50%25 off", "a%2Fb"]


def path_id(value: str) -> str:
    return quote(value, safe="").replace(".", "%2E") if value in (".", "..") else quote(value, safe="")


def call(method: str, path: str, key: str | None = None, body=None, raw: bytes | None = None,
         headers: dict | None = None) -> tuple[int, str]:
    sent = {**({"X-API-Key": KEYS[key]} if key else {}), **(headers or {})}
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    if body is not None:
        sent.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(BASE + path, method=method, headers=sent, data=data)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Console:
    """A person at the console: a session cookie and its CSRF token."""

    def __init__(self, key: str):
        """Signed in with the key named `key` in KEYS, or with `key` itself."""
        opener = urllib.request.build_opener(NoRedirect)
        request = urllib.request.Request(f"{BASE}/console/login", data=f"key={KEYS.get(key, key)}".encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            opener.open(request)
        except urllib.error.HTTPError as answer:  # the 303
            self.cookie = answer.headers["set-cookie"].split(";")[0]
        status, page = self.get("/console")
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
        self.csrf = found.group(1) if found else ""

    def get(self, path: str) -> tuple[int, str]:
        return self.send("GET", path)

    def send(self, method: str, path: str, form: dict | None = None, headers: dict | None = None) -> tuple[int, str]:
        data = "&".join(f"{k}={quote(v)}" for k, v in (form or {}).items()).encode() if form is not None else None
        sent = {"Cookie": self.cookie, **({"Content-Type": "application/x-www-form-urlencoded"} if form else {}),
                **(headers or {})}
        request = urllib.request.Request(BASE + path, method=method, headers=sent, data=data)
        try:
            with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()


def datasets(data: Path, work: Path) -> list[tuple[str, Path, str]]:
    """(format, folder, one shopper id) per loader: the real datasets where present, else
    small files laid out as they are (the test suite's)."""
    sys.path.insert(0, str(ROOT))
    from tests.test_hardening import tiny_bundlerec, tiny_diginetica

    found = []
    for domain in ("clothing", "electronic"):
        folder = data / "bundlerec" / domain
        if not folder.is_dir():
            folder = tiny_bundlerec(work / "bundlerec" / domain)
        first = (folder / "user_session.csv").read_text("utf-8").splitlines()[1]
        found.append(("bundlerec", folder, f"{domain}/user/{first.split(',')[0].strip()}"))
    folder = data / "diginetica"
    if not folder.is_dir():
        folder = tiny_diginetica(work / "diginetica")
    purchases = [line.split(";") for line in (folder / "train-purchases.csv").read_text("utf-8").splitlines()[1:]]
    user = next(row[1] for row in purchases if row[1] != "NA")
    found.append(("diginetica", folder, f"diginetica/user/{user}"))
    return found


def native_odd_ids(folder: Path, now: float) -> Path:
    from lookgraph.graph.model import Category, Event, Product, Shopper
    from lookgraph.loaders.native import NativeWriter

    writer = NativeWriter(folder, "jsonl")
    writer.write("categories", [Category("odd/c", "Odd")])
    writer.write("products", [Product(f"odd/p{i}", f"odd item {i}", "odd/c", 10.0) for i in range(len(ODD))])
    writer.write("shoppers", [Shopper(name, "Oslo") for name in ODD])
    writer.write("events", [Event(f"odd/e{i}", f"odd/s{i}", f"odd/p{i}", "purchase", now - 3600 * (i + 1), name, "Oslo")
                            for i, name in enumerate(ODD)])
    return folder


@contextmanager
def local_neo4j(work: Path):
    env = dict(os.environ, LOOKGRAPH_NEO4J_HOME=str(work / "neo4j"), LOOKGRAPH_NEO4J_PORT="17699")
    started = subprocess.run(["bash", str(ROOT / "scripts" / "neo4j.sh"), "start"], env=env, capture_output=True, text=True)
    if started.returncode:
        raise SystemExit(f"scripts/neo4j.sh start failed:\n{started.stderr}")
    try:
        yield re.search(r"NEO4J_URI=(\S+)", started.stdout).group(1)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=env, capture_output=True)


def findings(keys_file: Path, shoppers: dict[str, str]) -> dict:
    """Each finding's reproduction, what it answered, and whether that is what it must answer."""
    out = {}
    clothing = shoppers["bundlerec/clothing"]

    # 1. an id with `/` reached and erased (all loaders' shapes: step 4)
    status, _ = call("GET", f"/shoppers/{path_id(clothing)}/recommendations", "read")
    out["1_id_with_slash"] = {"request": f"GET /shoppers/{path_id(clothing)}/recommendations", "status": status,
                              "ok": status == 200}
    # 2. an edge-of-range event time, then the shopper's console page
    edge = {"event_id": "edge-1", "session_id": "edge-s", "product_id": "p000001", "type": "view",
            "shopper_id": "u000001", "ts": "9999-12-31T23:59:59-05:00"}
    status, _ = call("POST", "/events", "events", edge)
    page, _ = Console("personal").get("/console/shoppers/u000001")
    year_one, _ = call("POST", "/events", "events", {**edge, "ts": "0001-01-01T00:00:00+05:00"})
    out["2_event_time"] = {"post": status, "year_1": year_one, "console_page": page,
                           "ok": status == 422 and year_one == 422 and page == 200}
    # 3. a rule with an edge-of-range date
    status, _ = call("PUT", "/rules/x", "admin", {"action": "boost", "price_min": 1, "ends_at": "9999-12-31T23:59:59-05:00"})
    listed, body = call("GET", "/rules", "admin")
    out["3_rule_date"] = {"put": status, "get_rules": listed, "stored": "\"x\"" in body,
                          "ok": status == 422 and listed == 200 and '"x"' not in body}
    # 4. deep JSON, no key needed
    deep = b"[" * 1500 + b"]" * 1500
    answers = {path: call("POST", path, raw=deep, headers={"Content-Type": "application/json"})[0]
               for path in ("/console/login", "/events", "/nowhere")}
    answers["/events (key)"] = call("POST", "/events", "events", raw=deep, headers={"Content-Type": "application/json"})[0]
    out["4_deep_json"] = {"answers": answers, "ok": all(400 <= s < 500 for s in answers.values())}
    # 5. a read key and personal data
    reader = Console("read")
    answers = {"GET /rules": call("GET", "/rules", "read")[0], "/console/rules": reader.get("/console/rules")[0],
               "/console/shoppers/u000001": reader.get("/console/shoppers/u000001")[0],
               "GET /shoppers/u000001/journey": call("GET", "/shoppers/u000001/journey", "read")[0]}
    out["5_console_scopes"] = {"answers": answers, "ok": set(answers.values()) == {403}}
    # 6. CSRF, framing, cookie, logout, revocation
    admin = Console("admin")
    rule = {"id": "no-fashion", "action": "exclude", "category": "fashion"}
    answers = {
        "foreign Origin": admin.send("POST", "/console/rules", {**rule, "csrf_token": admin.csrf},
                                     {"Origin": "http://127.0.0.1:9999"})[0],
        "no token": admin.send("POST", "/console/rules", rule)[0],
        "with token": admin.send("POST", "/console/rules", {**rule, "id": "allowed", "csrf_token": admin.csrf},
                                 {"Origin": BASE})[0],
    }
    framing = urllib.request.urlopen(urllib.request.Request(f"{BASE}/console/login")).headers
    stored = json.loads(call("GET", "/rules", "admin")[1])
    logout = admin.send("POST", "/console/logout", {"csrf_token": admin.csrf})[0]
    after_logout = admin.get("/console/rules")[0]
    temporary = "hardening-temporary-key-0123456789"
    keys_file.write_text(f"{temporary}:admin\n")
    session = Console(temporary)
    before = session.get("/console/rules")[0]
    keys_file.write_text("# revoked\n")
    after = session.get("/console/rules")[0]
    out["6_console_sessions"] = {
        "answers": answers, "rules_stored": [r["id"] for r in stored], "x_frame_options": framing.get("x-frame-options"),
        "csp": framing.get("content-security-policy"), "cookie_holds_key": KEYS["admin"] in admin.cookie,
        "logout": logout, "after_logout": after_logout, "revoked_key_before": before, "revoked_key_after": after,
        "ok": answers["foreign Origin"] == 403 and answers["no token"] == 403 and answers["with token"] == 200
        and [r["id"] for r in stored] == ["allowed"] and framing.get("x-frame-options") == "DENY"
        and "frame-ancestors 'none'" in framing.get("content-security-policy", "") and logout == 303
        and after_logout == 303 and before == 200 and after == 303 and KEYS["admin"] not in admin.cookie}
    call("DELETE", "/rules/allowed", "admin")
    # 7. a 9 KB attribute value
    status, body = call("PUT", "/products/wide", "admin", {"name": "W", "attributes": {"brand": "x" * 9_000}})
    widest, _ = call("PUT", "/products/widest", "admin", {"name": "W", "attributes": {"brand": "😀" * 1_000}})
    out["7_attribute_size"] = {"9000_chars": status, "field": json.loads(body)["detail"][0]["loc"] if status == 422 else None,
                               "1000_four_byte_chars": widest, "ok": status == 422 and widest == 200}
    # 8. constant-time key checks: refusing a near key vs a far key (medians of 2,000 each)
    near, far = KEYS["read"][:15] + "Z" * (len(KEYS["read"]) - 15), "Z" * len(KEYS["read"])
    timings = {}
    for name, key in (("near", near), ("far", far)):
        times = []
        for _ in range(2_000):
            started = time.perf_counter()
            call("GET", "/products/p000001", headers={"X-API-Key": key})
            times.append(time.perf_counter() - started)
        timings[name] = round(statistics.median(times) * 1000, 3)
    out["8_key_timing_ms"] = {**timings, "ok": abs(timings["near"] - timings["far"]) < 0.1 * max(timings.values())}
    return out


def fuzz(examples: int) -> dict:
    sent, server_errors, seeded = 0, [], set()

    def seen(operation, case, response):
        nonlocal sent
        sent += 1
        if response.status_code >= 500:
            server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}")
        if operation.label not in seeded:
            seeded.add(operation.label)
            sent += seed(operation, server_errors)

    fuzz_served(BASE, KEYS["admin"], examples, seen)
    return {"requests": sent, "server_errors": len(server_errors), "examples": server_errors[:10]}


def seed(operation, server_errors: list[str]) -> int:
    """What found these findings, sent once to each operation that takes a body: deep bodies
    and edge-of-range dates. Returns how many requests it sent."""
    sent = 0
    method, path = operation.method.upper(), re.sub(r"\{[^}]+\}", "seeded", operation.path)
    if method not in ("POST", "PUT", "PATCH"):
        return 0
    seeds = [b"[" * 3000 + b"]" * 3000, b'{"x":' * 500 + b"0" + b"}" * 500]
    for when in ("9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "2100-01-01T00:00:00Z"):
        seeds += [json.dumps(b).encode() for b in (
            {"event_id": "f", "session_id": "f", "product_id": "p000001", "type": "view", "ts": when},
            {"id": "f", "action": "boost", "price_min": 1, "starts_at": when},
            {"action": "bury", "price_max": 5, "ends_at": when})]
    for body in seeds:
        status, _ = call(method, path, "admin", raw=body, headers={"Content-Type": "application/json"})
        sent += 1
        if status >= 500:
            server_errors.append(f"{method} {path} (seed) -> {status}")
    return sent


ATTACKER = """<!doctype html><html><body>
<iframe src="{target}/console/rules" width="600" height="300"></iframe>
<form id="forged" method="post" action="{target}/console/rules" target="sink">
  <input name="id" value="forged"><input name="action" value="exclude"><input name="category" value="fashion">
</form><iframe name="sink"></iframe>
<script>setTimeout(function () {{ document.getElementById("forged").submit(); }}, 300);</script>
</body></html>"""


def cross_port_csrf(work: Path) -> dict:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        return {"skipped": "chromium and chromedriver are not installed"}
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={work / 'chromium'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    site = work / "attacker"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text(ATTACKER.format(target=BASE))
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 18952), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(site)))
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        browser.get(f"{BASE}/console/login")
        browser.find_element(By.ID, "key").send_keys(KEYS["admin"])
        browser.find_element(By.ID, "sign-in").click()
        time.sleep(1)
        signed_in = browser.current_url.rstrip("/").endswith("/console")
        before = json.loads(call("GET", "/rules", "admin")[1])
        browser.get("http://127.0.0.1:18952/index.html")
        time.sleep(2)
        framed_refused = any("frame-ancestors" in e["message"] or "X-Frame-Options" in e["message"]
                             for e in browser.get_log("browser"))
    finally:
        attacker.shutdown()
        browser.quit()
    after = json.loads(call("GET", "/rules", "admin")[1])
    return {"signed_in": signed_in, "rules_before": len(before), "rules_after": len(after),
            "frame_refused": framed_refused, "ok": signed_in and before == after and framed_refused}


def erase_and_search(home: Path, shoppers: dict[str, str], neo4j_home: Path | None) -> dict:
    """Erase each loader's shopper, then search the home folder for their id; on Neo4j also the
    server's own folder, whose transaction logs keep deleted records until they rotate."""
    out = {}
    for loader, shopper in shoppers.items():
        status, body = call("DELETE", f"/shoppers/{path_id(shopper)}", "admin")
        again, _ = call("DELETE", f"/shoppers/{path_id(shopper)}", "admin")
        removed = json.loads(body)["removed"] if status == 200 else None
        out[loader] = {"shopper": shopper, "status": status, "removed": removed, "again": again}
    time.sleep(0.5)
    files = [p for p in home.rglob("*") if p.is_file()]
    for loader, shopper in shoppers.items():
        searchable = len(shopper.encode()) >= 5  # `..` is in every file: no byte search can tell
        out[loader]["found_in"] = [str(p.relative_to(home)) for p in files if shopper.encode() in p.read_bytes()] \
            if searchable else "not searchable (too short)"
        out[loader]["ok"] = out[loader]["status"] == 200 and out[loader]["again"] == 404 and \
            (not searchable or not out[loader]["found_in"])
        if neo4j_home is not None and searchable:
            out[loader]["neo4j_server_files_holding_it"] = sorted(
                str(p.relative_to(neo4j_home)) for p in neo4j_home.rglob("*") if p.is_file() and shopper.encode() in p.read_bytes())
    return out


def run_store(kind: str, args, work: Path) -> dict:
    home = work / kind / "home"
    keys_file = work / kind / "keys"
    keys_file.parent.mkdir(parents=True, exist_ok=True)
    keys_file.write_text("# keys a test revokes\n")
    env = dict(os.environ, LOOKGRAPH_HOME=str(home), LOOKGRAPH_STORE=kind, LOOKGRAPH_API_KEYS_FILE=str(keys_file),
               LOOKGRAPH_API_KEYS=";".join(f"{key}:{'read,personal' if name == 'personal' else name}"
                                           for name, key in KEYS.items()))
    os.environ.update({k: v for k, v in env.items() if k.startswith(("LOOKGRAPH_", "NEO4J_"))})
    demo = work / "demo"
    if not demo.exists():
        lookgraph("demo-data", str(demo), "--products", "2000", "--shoppers", "300", "--events", "20000", home=home)
    started = time.perf_counter()
    lookgraph("load", str(demo), home=home)
    shoppers = {}
    for fmt, folder, shopper in datasets(args.data, work):
        lookgraph("load", str(folder), "--format", fmt, home=home)
        shoppers[f"{fmt}/{folder.name}" if fmt == "bundlerec" else fmt] = shopper
    lookgraph("load", str(native_odd_ids(work / "odd", time.time())), home=home)
    shoppers.update({f"native {name!r}": name for name in ODD})
    print(f"{kind}: loaded in {time.perf_counter() - started:.0f} s", flush=True)
    log = work / kind / "server.log"
    results: dict = {}
    with open(log, "w") as errors:
        server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(PORT), "--no-access-log"],
                                  env=env, stderr=errors)
        try:
            wait_until_answering(BASE)
            results["findings"] = findings(keys_file, shoppers)
            print(kind, "findings", {k: v["ok"] for k, v in results["findings"].items()}, flush=True)
            results["fuzz"] = fuzz(args.examples)
            print(kind, "fuzz", results["fuzz"], flush=True)
            results["cross_port_csrf"] = cross_port_csrf(work / kind)
            print(kind, "cross-port", results["cross_port_csrf"], flush=True)
            results["erasure"] = erase_and_search(home, shoppers, work / "neo4j" if kind == "neo4j" else None)
            print(kind, "erasure", {k: v["ok"] for k, v in results["erasure"].items()}, flush=True)
        finally:
            server.terminate()
            server.wait()
    text = log.read_text()
    results["server_log"] = {"tracebacks": text.count("Traceback"), "bytes": len(text)}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--stores", default="embedded,neo4j")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lookgraph-hardening-"))
    results: dict = {"command": "python benchmarks/hardening.py " + " ".join(sys.argv[1:]),
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    for kind in args.stores.split(","):
        if kind == "neo4j":
            with local_neo4j(work) as uri:
                os.environ["NEO4J_URI"] = uri
                results[kind] = run_store(kind, args, work)
        else:
            results[kind] = run_store(kind, args, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hardening.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
