"""Console benchmark: each merchandiser page's load time in headless Chromium, on the 1M-event
demo store.

    python benchmarks/console.py [--home /tmp/lookgraph-bench/train-demo-1000000] [--rounds 5]

Needs a loaded (and ideally trained) home: `python benchmarks/train.py` makes one. Starts one
`lookgraph serve`, signs in to `/console` in Debian's Chromium (Selenium), then opens each
page `--rounds` times (different shoppers and products) and reads the browser's own navigation
timing: from the request to the load event, scripts and drawings included. Goal: under 1 s per
page. Results go to benchmarks/results/console.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from measure import RESULTS, wait_until_answering

KEY = "console-bench-key-0123456789abcdef"
PORT = 18944


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-bench" / "train-demo-1000000")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from lookgraph.graph.sqlite_store import SQLiteGraphStore
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    store = SQLiteGraphStore(args.home / "graph.db")
    shoppers = sorted(store.known_ids("shoppers"))[:: 997][: args.rounds]
    products = sorted(store.known_ids("products"))[:: 9973][: args.rounds]
    store.close()

    env = dict(os.environ, LOOKGRAPH_HOME=str(args.home), LOOKGRAPH_API_KEYS=f"{KEY}:admin")
    base = f"http://127.0.0.1:{PORT}"
    server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(PORT), "--no-access-log"],
                              env=env)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    profile = tempfile.mkdtemp()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")),
                              options=options)
    try:
        wait_until_answering(base, 300)
        driver.get(f"{base}/console/login")
        driver.find_element(By.ID, "key").send_keys(KEY)
        driver.find_element(By.ID, "sign-in").click()
        pages = {"shopper": [f"/console/shoppers/{s}" for s in shoppers],
                 "product": [f"/console/products/{p}" for p in products],
                 "rules": ["/console/rules"] * args.rounds, "complement map": ["/console/map"] * args.rounds,
                 "look editor": ["/console/looks/edit"] * args.rounds}
        results = {}
        for name, paths in pages.items():
            seconds = []
            for path in paths:
                driver.get(base + path)
                timing = driver.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0]; return [t.startTime, t.loadEventEnd];")
                seconds.append((timing[1] - timing[0]) / 1000)
            results[name] = {"p50_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3),
                             "loads": len(seconds)}
            print(name, results[name], flush=True)
    finally:
        driver.quit()
        server.terminate()
        server.wait()
    report = {"command": "python benchmarks/console.py " + " ".join(sys.argv[1:]), "home": str(args.home),
              "pages": results, "goal": "under 1 s per page"}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
