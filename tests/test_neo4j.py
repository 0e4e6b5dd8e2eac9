"""Neo4j for real: the same seeded shop loaded into both stores gives the same answers, every
command runs with `--store neo4j`, the Browser favourites return what they promise, and the bulk
importer of the same Neo4j release takes `lookgraph export --format neo4j-admin`.

Runs against NEO4J_URI (scripts/test.sh starts a local server); skips without one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from lookgraph.api.app import create_app
from lookgraph.cli import app as cli
from lookgraph.embeddings.export import export_graph
from lookgraph.embeddings.vectors import LookVectors, latest_artifact
from lookgraph.graph.cypher import parse_file
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.settings import Settings

from .conftest import neo4j_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
KEY = "parity-key-0123456789abcdef"
runner = CliRunner()


def _cli(*args: str, ok: bool = True):
    result = runner.invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, f"lookgraph {' '.join(args)}:\n{result.output}"
    return result


@pytest.fixture(scope="module")
def shop(tmp_path_factory, demo_folder):
    """The small demo shop loaded by `lookgraph load` into the embedded store and into Neo4j,
    LookGNN trained once (on the embedded store), its vectors written to both."""
    neo4j = neo4j_store()
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKGRAPH_HOME", str(home))
        mp.delenv("LOOKGRAPH_STORE", raising=False)
        _cli("load", str(demo_folder))
        _cli("load", str(demo_folder), "--store", "neo4j")
        _cli("train", "--epochs", "2")
    vectors = LookVectors.load(latest_artifact(home))
    embedded = SQLiteGraphStore(home / "graph.db")
    neo4j.replace_mined_looks([look for look in embedded.iter_records("looks") if look.mined])  # as train wrote them
    for node_type, label in (("product", "Product"), ("shopper", "Shopper"), ("look", "Look")):
        neo4j.write_embeddings(label, vectors.ids[node_type], vectors.arrays[node_type], vectors.meta["version"])
    yield {"home": home, "vectors": vectors, "embedded": embedded, "neo4j": neo4j}
    embedded.close()
    neo4j.close()


def _stats(home: Path, *store: str) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKGRAPH_HOME", str(home))
        return json.loads(_cli("stats", "--json", "--top", "20", *store).output)


def test_stats_agree(shop):
    embedded, neo4j = _stats(shop["home"]), _stats(shop["home"], "--store", "neo4j")
    assert embedded == neo4j
    # The looks' category complements, rewritten by each store as its looks changed (the load's
    # curated ones, then train's mined ones): the same rows on both.
    assert list(shop["neo4j"].iter_goes_with()) == list(shop["embedded"].iter_goes_with())
    assert embedded["relationships"]["GOES_WITH"] > 0
    assert embedded["nodes"]["Product"] == 300 and embedded["relationships"]["INTERACTED"] == 2_000


def test_both_stores_export_the_same_graph_for_training(shop):
    # The same arrays in the same order: `lookgraph train` learns the same model from either store.
    assert export_graph(shop["neo4j"]).fingerprint == export_graph(shop["embedded"]).fingerprint


def _client(shop, kind: str) -> TestClient:
    settings = Settings(home=shop["home"], api_keys=f"{KEY}:read")
    now = max(e.ts for e in shop["embedded"].iter_records("events")) + 3_600
    return TestClient(create_app(settings, shop[kind], vectors=shop["vectors"], clock=lambda: now))


def _requests(shop) -> list[tuple[str, str, dict | None]]:
    """Shoppers' feeds (with and without an item in view), complete-the-look on products in and
    out of looks, and anonymous sessions' recommendations."""
    store = shop["embedded"]
    shoppers = sorted(s.id for s in store.iter_records("shoppers"))[:12]
    looks = list(store.iter_records("looks"))
    in_looks = sorted({p for look in looks for p in look.product_ids})[:8]
    others = sorted(p.id for p in store.iter_records("products"))[:200:40]
    anonymous: dict[str, list[str]] = {}
    for event in store.iter_records("events"):
        if event.shopper_id is None:
            anonymous.setdefault(event.session_id, []).append(event.product_id)
    asks = [("GET", f"/shoppers/{s}/recommendations?k=8", None) for s in shoppers]
    asks += [("GET", f"/shoppers/{shoppers[0]}/recommendations?k=8&product_id={p}", None) for p in in_looks[:3]]
    asks += [("GET", f"/products/{p}/complete-the-look?k=8", None) for p in in_looks + others]
    asks += [("POST", f"/sessions/{sid}/recommendations", {"items": items[:5], "k": 8})
             for sid, items in sorted(anonymous.items())[:6]]
    return asks


def test_both_stores_recommend_the_same_items_in_the_same_order_with_the_same_paths(shop):
    asks = _requests(shop)
    answers = {}
    for kind in ("embedded", "neo4j"):
        client = _client(shop, kind)
        answers[kind] = [client.request(method, url, json=body, headers={"X-API-Key": KEY}) for method, url, body in asks]
    ways = set()
    for (method, url, _), mine, theirs in zip(asks, answers["embedded"], answers["neo4j"]):
        assert mine.status_code == theirs.status_code == 200, (url, mine.text, theirs.text)
        ours, others = mine.json(), theirs.json()
        assert ours.pop("recommendation_id") != others.pop("recommendation_id")  # each list its own id
        assert ours == others, f"{method} {url}"
        ways |= {"/".join(path["relationships"]) for item in mine.json()["items"] for path in item["paths"]}
    items = sum(len(r.json()["items"]) for r in answers["embedded"])
    assert items > 5 * len(asks)
    # Looks, shared attributes and the crowd all took part, so each walk was compared.
    assert {"INCLUDES/INCLUDES", "HAS_ATTRIBUTE/HAS_ATTRIBUTE"} <= ways and any("INTERACTED" in w for w in ways)


def _explore(shop, name: str, **params) -> list:
    statements = {s.name: s for path in sorted((ROOT / "cypher" / "explore").glob("*.cypher")) for s in parse_file(path)}
    neo4j = shop["neo4j"]
    with neo4j.driver.session(database=neo4j.database) as session:
        # The Browser runs these as they are written; so do we, with the parameters it would set.
        return session.execute_read(lambda tx: list(tx.run(statements[name].text, params)))


def _path(record) -> list[str]:
    """A path record as the ids of its nodes (a Look's or a Product's id, an Attribute's key)."""
    return [node.get("id", node.get("key")) for node in record["path"].nodes]


def test_the_browser_favourites_answer_with_their_documented_parameters(shop):
    client = _client(shop, "neo4j")
    found = None
    for shopper in sorted(s.id for s in shop["embedded"].iter_records("shoppers")):
        body = client.get(f"/shoppers/{shopper}/recommendations?k=10", headers={"X-API-Key": KEY}).json()
        for item in body["items"]:
            for path in item["paths"]:
                if path["relationships"] == ["INCLUDES", "INCLUDES"]:
                    found = found or (shopper, item["product_id"], [n["id"] for n in path["nodes"]])
    assert found, "no recommendation with a look path to explain"
    shopper, product, nodes = found

    why = [_path(r) for r in _explore(shop, "why_recommended", shopperId=shopper, productId=product)]
    assert nodes in why  # the same anchor -> look -> item path the API gave

    journey = _explore(shop, "shopper_journey", shopperId=shopper)
    ours = {e.id for e in shop["embedded"].events(shopper_id=shopper)}
    assert journey and {r["path"].relationships[1]["event_id"] for r in journey} <= ours

    look_item = shop["embedded"].get("looks", nodes[1]).product_ids[0]
    around = [_path(r) for r in _explore(shop, "looks_around_product", productId=look_item)]
    assert around and all(p[0] == look_item and len(p) == 4 for p in around)

    together = _explore(shop, "bought_with_product", productId=look_item)
    companions = [(r["path"].relationships[0]["sessions"], r["path"].nodes[1]["id"]) for r in together]
    stored = [(n, other) for p, other, n, _ in shop["embedded"].iter_bought_with() if p == look_item][:25]
    assert companions and sorted(companions, reverse=True) == sorted(stored, reverse=True)  # what the embedded store holds

    pairs = [(r["path"].start_node["id"], r["path"].end_node["id"], r["path"].relationships[0]["looks"])
             for r in _explore(shop, "complement_map")]
    stored = [(a, b, n) for a, b, n, _ in shop["embedded"].iter_goes_with() if a < b]  # what the embedded store holds
    assert len(pairs) == min(50, len(stored)) > 0 and set(pairs) <= set(stored)
    assert [n for _, _, n in pairs] == sorted((n for _, _, n in pairs), reverse=True)

    gifts = _explore(shop, "gift_sessions")
    assert gifts and all(r["path"].nodes[1]["gift"] is True for r in gifts)
    trips = _explore(shop, "travel_sessions")
    assert trips and all(r["path"].nodes[1]["location"] != r["path"].start_node["home_location"] for r in trips)

    neighbours = _explore(shop, "embedding_neighbours", productId=product)
    assert len(neighbours) == 10 and product not in {r["id"] for r in neighbours}
    assert [r["score"] for r in neighbours] == sorted((r["score"] for r in neighbours), reverse=True)


def test_train_and_evaluate_run_on_neo4j(shop, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path))
    result = _cli("train", "--store", "neo4j", "--epochs", "1")
    assert "embeddings written to the neo4j store" in result.output
    version = latest_artifact(tmp_path).name
    written = shop["neo4j"].read_embeddings("Product", ["p000001", "p000002"])
    assert {model for _, model in written.values()} == {version}
    nearest = shop["neo4j"].traversal().nearest(LookVectors.load(latest_artifact(tmp_path)).arrays["product"][0], 5)
    assert len(nearest) == 5
    result = _cli("evaluate", "--store", "neo4j", "--seeds", "0", "--methods", "popularity,lookgnn,fastrp-knn",
                  "--epochs", "1")
    table = [[cell.strip() for cell in line.split("|")[1:-1]] for line in result.output.splitlines() if line.startswith("| ")]
    rows = {row[0]: dict(zip(table[0], row)) for row in table[1:]}
    assert {"popularity", "lookgnn", "fastrp-knn (gds)"} <= set(rows)
    # FastRP's embeddings carry the graph's structure: held-out look items rank above chance.
    assert float(rows["fastrp-knn (gds)"]["look_hr@20"].split("±")[0]) > 20 / 300
    assert not shop["neo4j"]._read("gds.projected_graphs")  # every projection was dropped


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_answers_from_neo4j(shop):
    port = _free_port()
    env = {**os.environ, "LOOKGRAPH_HOME": str(shop["home"]), "LOOKGRAPH_API_KEYS": f"{KEY}:read"}
    server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--store", "neo4j", "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.25)
        body = httpx.get(f"{url}/shoppers/u000003/recommendations?k=5", headers={"X-API-Key": KEY}).json()
        assert len(body["items"]) == 5 and body["model"] == shop["vectors"].meta["version"]
        assert all(item["paths"] for item in body["items"])
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)


@pytest.mark.skipif(shutil.which("java") is None or shutil.which("mvn") is None,
                    reason="the bulk importer needs Java 17+ and Maven (scripts/neo4j.sh)")
def test_the_bulk_importer_takes_the_export(shop, tmp_path):
    """export --format neo4j-admin (from Neo4j) -> the real `neo4j-admin database import full` of
    the same release into a new server's database -> the same `lookgraph stats` as the embedded store."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LOOKGRAPH_HOME", str(shop["home"]))
        _cli("export", str(tmp_path / "bulk"), "--format", "neo4j-admin", "--store", "neo4j")
    neo4j_home, port = tmp_path / "neo4j", _free_port()
    env = {**os.environ, "LOOKGRAPH_NEO4J_HOME": str(neo4j_home), "LOOKGRAPH_NEO4J_PORT": str(port),
           "NEO4J_ADMIN": f"{ROOT / 'scripts' / 'neo4j.sh'} admin"}
    imported = subprocess.run(["bash", str(tmp_path / "bulk" / "import.sh")], env=env, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "IMPORT DONE" in imported.stdout + imported.stderr
    started = subprocess.run(["bash", str(ROOT / "scripts" / "neo4j.sh"), "start"], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("NEO4J_URI", f"bolt://127.0.0.1:{port}")
            assert _stats(shop["home"], "--store", "neo4j") == _stats(shop["home"])
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "neo4j.sh"), "stop"], env=env, check=True, capture_output=True)


def test_connecting_brings_an_earlier_quantized_vector_index_up_to_the_schema():
    store = neo4j_store()
    store._write("migrations.drop_product_embedding_index")
    store._write("admin.create_quantized_product_embedding_index")
    store._write("load.upsert_products", rows=[{"id": f"p{i}", "name": f"p{i}", "category_id": None, "price": None,
                                                "attributes": []} for i in range(3)])
    vectors = np.eye(64, dtype=np.float32)[:3]
    store.write_embeddings("Product", ["p0", "p1", "p2"], vectors, "m1")
    assert store._read("migrations.product_embedding_config")[0]["config"]["vector.quantization.enabled"] is True
    store.close()

    store = neo4j_store(empty=False)  # connecting again, to the data as it is
    config = store._read("migrations.product_embedding_config")[0]["config"]
    assert config["vector.quantization.enabled"] is False and config["vector.dimensions"] == 64
    assert store.traversal().nearest(vectors[1], 2)[0] == "p1"  # refilled from the stored vectors
    store.close()



def test_the_neo4j_browser_is_served_styled_and_offers_this_servers_bolt():
    """`scripts/neo4j.sh` serves the Neo4j Browser on HTTP beside Bolt: its page, lookgraph's
    style (a shopper captioned by its id, a session by its id, not by its gift flag), and the
    Bolt address it offers is this server's, not 7687."""
    browser = os.environ.get("LOOKGRAPH_NEO4J_BROWSER")
    if not browser:
        pytest.skip("LOOKGRAPH_NEO4J_BROWSER is not set: the Neo4j server was not started by scripts/neo4j.sh")
    page = httpx.get(browser, timeout=10)
    assert page.status_code == 200 and "Neo4j Browser" in page.text
    style = httpx.get(browser + "lookgraph.grass", timeout=10).text
    for label, caption in (("Shopper", "{id}"), ("Session", "{id}"), ("Product", "{name}"), ("Attribute", "{key}")):
        block = style.split(f"node.{label} {{", 1)[1].split("\n}", 1)[0]
        assert f"caption: '{caption}';" in block, label
    discovery = httpx.get(browser.split("/browser/")[0] + "/", timeout=10).json()
    assert discovery["bolt_direct"] == os.environ["NEO4J_URI"]
