"""The Neo4j Browser as a newcomer opens it: `scripts/neo4j.sh browser`, connect, run a journey.

    eval "$(bash scripts/neo4j.sh start)"                     # or: bash scripts/neo4j.sh browser
    LOOKGRAPH_STORE=neo4j lookgraph demo-data /tmp/demo && LOOKGRAPH_STORE=neo4j lookgraph load /tmp/demo
    python benchmarks/neo4j_browser.py [--shopper u000003]

Headless Chromium (Debian's chromium and chromedriver, through Selenium) opens the address the
script prints, connects without a password, sets `shopperId` and runs the `shopper_journey`
favourite of `cypher/explore/shopper.cypher` as a reader would, then reads the captions the
graph view draws: lookgraph's style names a
shopper and a session by their ids and a product by its name (never a gift flag or a
timestamp). Writes benchmarks/results/neo4j-browser.png and neo4j-browser.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from urllib.parse import quote

from measure import RESULTS, ROOT

FAVOURITES = ROOT / "cypher" / "explore" / "shopper.cypher"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shopper", default="u000003")
    args = parser.parse_args()
    from lookgraph.graph.cypher import parse_file
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    journey = next(st.text for st in parse_file(FAVOURITES) if st.name == "shopper_journey")

    address = subprocess.run(["bash", str(ROOT / "scripts" / "neo4j.sh"), "browser"], check=True, capture_output=True,
                             text=True, env=os.environ).stdout.strip()
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000",
                f"--user-data-dir={tempfile.mkdtemp(prefix='lookgraph-browser-')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"{address}&cmd=param&arg={quote('shopperId=>' + json.dumps(args.shopper))}")
        time.sleep(8)
        for button in driver.find_elements(By.CSS_SELECTOR, "button"):
            if button.text.strip().lower() == "connect":  # the connection frame, when it shows
                button.click()
                break
        time.sleep(6)
        editor = driver.find_element(By.CSS_SELECTOR, ".monaco-editor textarea")
        editor.send_keys(Keys.CONTROL, Keys.ENTER)  # the :param the address put in the editor
        time.sleep(2)
        editor.send_keys(journey.replace("\n", " "))
        editor.send_keys(Keys.CONTROL, Keys.ENTER)
        time.sleep(8)
        RESULTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(RESULTS / "neo4j-browser.png"))
        captions = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "svg g.node text") if e.text.strip()]
    finally:
        driver.quit()
    found = {"command": "python benchmarks/neo4j_browser.py --shopper " + args.shopper, "address": address,
             "shopper_captioned_by_id": args.shopper in captions,
             "session_captions": sorted({c for c in captions if c.startswith("s0")})[:5],
             "no_gift_flag_captions": "false" not in captions and "true" not in captions, "captions": captions}
    (RESULTS / "neo4j-browser.json").write_text(json.dumps(found, indent=2) + "\n")
    print(json.dumps({k: v for k, v in found.items() if k != "captions"}, indent=2))


if __name__ == "__main__":
    main()
