"""The merchandiser console as a person uses it: signed in with an API key, finding a shopper
and a product, reading their paths, creating rules and looks that the next API answer obeys.
The pages are checked through the app on both stores, and clicked through in headless Chromium
(Debian's chromium and chromedriver, driven by Selenium) where those are installed; each
page's screenshot is written to benchmarks/results/console/."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lookgraph.api.app import create_app
from lookgraph.graph.model import Event
from lookgraph.settings import Settings

from .scenario import Clock, build
from .test_api import ADMIN, EVENTS, KEYS, PERSONAL, READ, TestClient, as_

SHOTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "console"


@pytest.fixture
def console(tmp_path, store):
    build(tmp_path, store)
    client = TestClient(create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None, clock=Clock()))
    return client, store


def signed_in(client, key: str) -> str | None:
    """Sign in as a person does; later requests carry the session's CSRF token as htmx does
    (the `hx-headers` of every page). Returns the token (None where no page is allowed)."""
    client.headers.pop("X-CSRF-Token", None)
    answer = client.post("/console/login", data={"key": key}, follow_redirects=False)
    assert answer.status_code == 303 and "HttpOnly" in answer.headers["set-cookie"]
    assert key not in answer.headers["set-cookie"]  # a session token, never the key
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/console").text)
    if found:
        client.headers["X-CSRF-Token"] = found.group(1)
    return found.group(1) if found else None


def test_the_console_asks_for_a_key_and_keeps_its_scopes(console):
    client, _ = console
    assert client.get("/console/rules", follow_redirects=False).headers["location"] == "/console/login"
    assert client.post("/console/login", data={"key": "wrong-key-0123456789"}).status_code == 401
    signed_in(client, EVENTS)
    assert client.get("/console", follow_redirects=False).status_code == 403  # no read scope
    signed_in(client, READ)
    assert client.get("/console/products/jeans-1").status_code == 200
    assert client.get("/console/shoppers/ann").status_code == 403  # a journey is personal data
    assert client.get("/console/rules").status_code == 403  # as GET /rules: admin
    refused = client.post("/console/rules", data={"id": "r", "action": "boost", "category": "women"})
    assert refused.status_code == 403  # read may look, not change
    signed_in(client, PERSONAL)
    assert client.get("/console/shoppers/ann").status_code == 200
    assert client.get("/shoppers/ann/recommendations").status_code == 401  # the cookie is the console's only


def test_a_shoppers_journey_recommendations_and_paths(console):
    client, store = console
    signed_in(client, PERSONAL)
    store.append_events([Event("gift-1", "ann-gift", "shirt-1", "view", 1_790_000_100.0, "ann", "Leeds", True)])
    page = client.get("/console/shoppers/ann").text
    assert "Journey" in page and 'class="flag gift"' in page and 'class="flag travel"' in page
    assert "this session shops for someone else" in page and "of a feed&#39;s slots explore" in page
    assert page.count('class="recommendation"') >= 3 and "path-graph" in page and "data-graph=" in page
    product = client.get("/console/products/jeans-1").text
    assert "weekend denim" in product and "Complete the look" in product and "Chelsea boots" in product
    assert client.get("/console/products/nope").status_code == 404
    complement_map = client.get("/console/map").text
    assert "map-graph" in complement_map and "<td>Jeans</td><td>Boots</td><td>2</td>" in complement_map


def test_a_rule_and_a_look_made_in_the_console_are_obeyed_by_the_next_api_answer(console):
    client, store = console
    signed_in(client, ADMIN)
    made = client.post("/console/rules", data={"id": "no-boots", "action": "exclude", "category": "women/shoes"})
    assert made.status_code == 200 and 'data-rule="no-boots"' in made.text
    feed = client.get("/shoppers/ann/recommendations?k=10", headers=as_(READ)).json()["items"]
    assert not any(i["category"].startswith("women/shoes") for i in feed)
    bad = client.post("/console/rules", data={"id": "bad", "action": "pin", "category": "women"})
    assert bad.status_code == 422 and "a pin needs look_id and category" in bad.text
    # A rule for one variant of an experiment: kept with it, shown with it, and refused when
    # the variant is not "<experiment>/<variant>" (as POST /rules refuses it).
    tested = client.post("/console/rules", data={"id": "tested", "action": "bury", "category": "women/bags",
                                                  "variant": "variety/less"})
    assert tested.status_code == 200 and "variety/less" in tested.text
    assert next(r for r in store.rules() if r.id == "tested").variant == "variety/less"
    assert 'name="variant" placeholder="experiment/variant" value="variety/less"' in client.get("/console/rules?edit=tested").text
    refused = client.post("/console/rules", data={"id": "odd", "action": "bury", "category": "women", "variant": "no-slash"})
    assert refused.status_code == 422 and "variant" in refused.text
    assert client.delete("/console/rules/tested").status_code == 200
    assert client.delete("/console/rules/no-boots").status_code == 200 and store.rules() == []
    saved = client.post("/console/looks/edit", data={"id": "new-look", "name": "office women",
                                                     "product_ids": "jeans-1 belt-1"}, follow_redirects=False)
    assert saved.status_code == 303
    assert store.get("looks", "new-look").product_ids == ("jeans-1", "belt-1")
    assert client.get("/looks?product_id=belt-1", headers=as_(READ)).json()["items"][-1]["id"] == "new-look"


# -- in a browser ------------------------------------------------------------------------------
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver; "
                    "scripts/test.sh installs them where it can)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to read CSP reports off the console
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'chromium'}", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    """`lookgraph serve` on the scenario shop, in a child process."""
    build(tmp_path).close()
    port = free_port()
    env = dict(os.environ, LOOKGRAPH_HOME=str(tmp_path), LOOKGRAPH_API_KEYS=KEYS, LOOKGRAPH_STORE="embedded")
    server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(port), "--no-access-log"],
                              env=env, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    yield base
    server.terminate()
    server.wait()


def test_clicking_through_the_console_in_chromium(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, 10)
    browser.get(f"{served}/console")
    assert browser.current_url.endswith("/console/login")
    browser.find_element(By.ID, "key").send_keys(ADMIN)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(shown.presence_of_element_located((By.ID, "shopper"))).send_keys("ann")
    browser.find_element(By.ID, "find").click()
    wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, ".path-graph canvas")))  # a path drawn
    assert "Shopper ann" in browser.title and browser.find_elements(By.CSS_SELECTOR, ".session")
    browser.save_screenshot(str(SHOTS / "shopper.png"))

    browser.find_element(By.CSS_SELECTOR, ".recommendation a").click()  # open a recommended product
    wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, ".path-graph canvas")))
    assert "Complete the look" in browser.page_source
    browser.save_screenshot(str(SHOTS / "product.png"))

    browser.get(f"{served}/console/rules")
    form = wait.until(shown.presence_of_element_located((By.ID, "rule-form")))
    form.find_element(By.NAME, "id").send_keys("no-totes")
    form.find_element(By.NAME, "action").send_keys("exclude")
    form.find_element(By.NAME, "category").send_keys("women/bags")
    browser.find_element(By.ID, "create-rule").click()
    wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, "tr[data-rule='no-totes']")))  # htmx swapped it in
    browser.save_screenshot(str(SHOTS / "rules.png"))
    request = urllib.request.Request(f"{served}/shoppers/ann/recommendations?k=10", headers=as_(READ))
    import json

    with urllib.request.urlopen(request) as answer:
        items = json.load(answer)["items"]
    assert items and not any(i["category"].startswith("women/bags") for i in items)

    browser.get(f"{served}/console/map")
    wait.until(shown.presence_of_element_located((By.CSS_SELECTOR, ".map-graph canvas")))
    browser.save_screenshot(str(SHOTS / "map.png"))

    arms = [{"name": "control", "share": 0.5}, {"name": "less-variety", "share": 0.5, "policy": {"explore_share": 0.1}}]
    made = urllib.request.Request(f"{served}/experiments", method="POST", headers={**as_(ADMIN), "Content-Type": "application/json"},
                                  data=json.dumps({"id": "variety", "name": "Less variety", "variants": arms}).encode())
    urllib.request.urlopen(made).close()
    for shopper in ("ann", "bob", "cat"):
        urllib.request.urlopen(urllib.request.Request(f"{served}/shoppers/{shopper}/recommendations?k=5",
                                                      headers=as_(READ))).close()
    time.sleep(1.5)  # the impression writer's interval
    browser.get(f"{served}/console/experiments")
    wait.until(shown.presence_of_element_located((By.LINK_TEXT, "Less variety"))).click()
    wait.until(shown.presence_of_element_located((By.ID, "experiment-plot")))
    assert "too few units yet" in browser.page_source
    browser.save_screenshot(str(SHOTS / "experiment.png"))
    refused = [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]
    assert refused == []  # the console's own pages need nothing its policy forbids

    browser.find_element(By.ID, "sign-out").click()
    wait.until(shown.url_contains("/console/login"))
    browser.get(f"{served}/console/rules")
    assert browser.current_url.endswith("/console/login")


ATTACKER = """<!doctype html><html><body>
<iframe id="framed" src="{target}/console/rules" width="600" height="300"></iframe>
<form id="forged" method="post" action="{target}/console/rules" target="sink">
  <input name="id" value="forged"><input name="action" value="exclude"><input name="category" value="women">
</form>
<iframe name="sink"></iframe>
<script>setTimeout(function () {{ document.getElementById("forged").submit(); }}, 300);</script>
</body></html>"""


def test_a_page_on_another_port_can_neither_frame_nor_forge_the_console(browser, served, tmp_path):
    """The cross-port attack of the second hardening round, in a real browser: signed in as
    admin, the browser opens a page served from another port of the same host, which frames
    the rules page and auto-submits a rule. Nothing is framed and nothing is stored."""
    import functools
    import http.server
    import json
    import threading

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as shown
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 10)
    browser.get(f"{served}/console/login")
    browser.find_element(By.ID, "key").send_keys(ADMIN)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(shown.presence_of_element_located((By.ID, "shopper")))
    site = tmp_path / "attacker"
    site.mkdir()
    (site / "index.html").write_text(ATTACKER.format(target=served))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{attacker.server_address[1]}/index.html")
        time.sleep(2)  # the form is submitted after 300 ms
        browser.save_screenshot(str(SHOTS.parent / "console-cross-port.png"))
        messages = " ".join(entry["message"] for entry in browser.get_log("browser"))
    finally:
        attacker.shutdown()
    assert "frame-ancestors" in messages or "X-Frame-Options" in messages  # the frame was refused
    request = urllib.request.Request(f"{served}/rules", headers=as_(ADMIN))
    with urllib.request.urlopen(request) as answer:
        assert json.load(answer) == []  # the forged rule was not stored


def test_a_rule_is_edited_in_the_console(console):
    client, store = console
    signed_in(client, ADMIN)
    client.post("/console/rules", data={"id": "r1", "action": "boost", "category": "women/bags", "weight": "1"})
    form = client.get("/console/rules?edit=r1").text
    assert 'name="replace"' in form and 'value="women/bags"' in form and "Edit rule r1" in form
    saved = client.post("/console/rules", data={"id": "r1", "action": "bury", "category": "women/bags", "weight": "3",
                                                "replace": "1"})
    assert saved.status_code == 200 and [(r.action, r.weight) for r in store.rules()] == [("bury", 3.0)]


def test_the_console_shows_what_the_recommendations_sold(tmp_path):
    store, clock = build(tmp_path), Clock()
    client = TestClient(create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None, clock=clock))
    feed = client.get("/shoppers/ann/recommendations?k=4&explore=false", headers=as_(READ)).json()
    client.app.state.impressions.flush()
    bought = {"event_id": "bought-1", "session_id": "ann-now", "product_id": feed["items"][0]["product_id"],
              "type": "purchase", "shopper_id": "ann", "recommendation_id": feed["recommendation_id"]}
    assert client.post("/events", json=bought, headers=as_(EVENTS)).status_code == 200
    clock.now += 60
    signed_in(client, ADMIN)
    page = client.get("/console/sold").text
    assert "What the recommendations sold" in page and "<td>feed</td><td>1</td><td>4</td>" in page
    assert "25.00%" in page  # one purchase of four items shown
    signed_in(client, PERSONAL)
    assert client.get("/console/shoppers/ann").status_code == 200  # a preview: not shown to ann, not kept
    client.app.state.impressions.flush()
    assert len(store.impressions(shopper_id="ann")) == 1
    signed_in(client, READ)
    assert client.get("/console/sold").status_code == 403


def test_the_console_shows_each_experiment_with_its_test_and_a_plot_of_every_daily_look(tmp_path):
    from .scenario import DAY

    store, clock = build(tmp_path), Clock()
    client = TestClient(create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None, clock=clock))
    arms = [{"name": "control", "share": 0.5}, {"name": "less-variety", "share": 0.5, "policy": {"explore_share": 0.1}}]
    assert client.post("/experiments", json={"id": "variety", "name": "Less variety", "variants": arms},
                       headers=as_(ADMIN)).status_code == 201
    assert client.post("/rules", json={"id": "no-boots-tested", "name": "no boots", "action": "exclude",
                                       "category": "women/shoes/boots", "variant": "variety/less-variety"},
                       headers=as_(ADMIN)).status_code == 201
    for day in range(3):
        for n in range(6):
            shopper = f"d{day}-{n}"
            client.post("/events", json={"event_id": f"{shopper}-v", "session_id": shopper, "product_id": "jeans-1",
                                         "type": "view", "shopper_id": shopper}, headers=as_(EVENTS))
            feed = client.get(f"/shoppers/{shopper}/recommendations?k=4", headers=as_(READ)).json()
            if n % 2:
                client.post("/events", json={"event_id": f"{shopper}-p", "session_id": shopper, "type": "purchase",
                                             "product_id": feed["items"][0]["product_id"], "shopper_id": shopper},
                            headers=as_(EVENTS))
        client.app.state.impressions.flush()
        clock.now += DAY
    signed_in(client, ADMIN)
    listed = client.get("/console/experiments").text
    assert "Less variety" in listed and "running" in listed and "control (50%), less-variety (50%)" in listed
    page = client.get("/console/experiments/variety").text
    assert 'id="experiment-plot"' in page and page.count("<polyline") == 2  # one line per variant, every look
    assert "too few units yet" in page and "Against control, on conversion" in page
    changes = page[page.index('id="variant-changes"'):]
    assert "explore_share = 0.1" in changes and "no boots" in changes and "as served" in changes
    shot = re.search(r'<polyline points="([^"]+)"', page).group(1).split()
    assert len(shot) == 3  # the end of each of the three days (the last one now)
    assert client.post("/console/experiments/variety/end", follow_redirects=False).status_code == 303
    assert "ended" in client.get("/console/experiments").text and "End the experiment now" not in \
        client.get("/console/experiments/variety").text
    assert client.get("/shoppers/d0-1/recommendations", headers=as_(READ)).json()["variant"] is None
    signed_in(client, READ)
    assert client.get("/console/experiments").status_code == 403
