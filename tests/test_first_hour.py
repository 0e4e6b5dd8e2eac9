"""A new user's first hour: every mistake answered with one sentence that names the thing and
what to do (exit code 2, no traceback), files from a spreadsheet read as they are, and what
loads but deserves a look said."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from lookgraph.cli import app
from lookgraph.settings import Settings

from .test_loaders import GOOD, HEADERS

runner = CliRunner()


def refused(result, *fragments: str) -> None:
    """Exit code 2, every fragment in the message, and no traceback anywhere."""
    output = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, output
    assert "Traceback" not in output and not isinstance(result.exception, (ValueError, RuntimeError, AssertionError))
    for fragment in fragments:
        assert fragment in output, output


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def folder(tmp_path, name="in", **files: str):
    out = tmp_path / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "lookgraph.json").write_text('{"format": "lookgraph-native", "version": 1}')
    for kind, body in files.items():
        (out / f"{kind}.csv").write_text(HEADERS[kind] + "\n" + body, encoding="utf-8")
    return out


def test_an_unreachable_neo4j_is_one_sentence(home, monkeypatch):
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:9")
    refused(runner.invoke(app, ["stats", "--store", "neo4j"]), "cannot reach Neo4j at bolt://127.0.0.1:9",
            "scripts/neo4j.sh start")


def test_a_kind_in_two_files_is_named(home, tmp_path):
    source = folder(tmp_path, **GOOD)
    (source / "events.jsonl").write_text("{}\n")
    refused(runner.invoke(app, ["load", str(source)]), "both events.csv and events.jsonl hold events; keep one")


def test_training_devices_are_checked_before_anything_runs(home):
    import torch

    refused(runner.invoke(app, ["train", "--device", "gpu"]), "'gpu' is not one of")
    if not torch.cuda.is_available():
        refused(runner.invoke(app, ["train", "--device", "cuda"]), "--device cuda: no CUDA device", "--device cpu")


def test_a_bad_setting_and_a_mistyped_config_key_are_named(home, tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_STORE", "postgres")
    refused(runner.invoke(app, ["stats"]), "LOOKGRAPH_STORE", "'embedded' or 'neo4j'", "'postgres'")
    monkeypatch.delenv("LOOKGRAPH_STORE")
    (tmp_path / "lookgraph.toml").write_text('stroe = "neo4j"\n')
    refused(runner.invoke(app, ["stats"]), "lookgraph.toml: unknown setting 'stroe'; did you mean 'store'?")


def test_the_default_home_is_absolute_and_stats_says_where_the_store_is(home, monkeypatch):
    monkeypatch.delenv("LOOKGRAPH_HOME")
    assert Settings().home.is_absolute()
    monkeypatch.setenv("LOOKGRAPH_HOME", str(home))
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 0 and f"embedded store at {home / 'graph.db'}" in result.output


def test_a_spreadsheet_csv_with_bom_crlf_and_semicolons_loads(home, tmp_path):
    source = folder(tmp_path, **GOOD)
    products = (HEADERS["products"] + "\n" + GOOD["products"]).replace(",", ";").replace("\n", "\r\n")
    (source / "products.csv").write_bytes(b"\xef\xbb\xbf" + products.encode("utf-8"))
    result = runner.invoke(app, ["load", str(source)])
    assert result.exit_code == 0, result.output
    assert "2 products" in result.output and "1 new events" in result.output
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(home / "graph.db")
    assert store.get("products", "p1").name == "Tee" and store.get("products", "p1").price == 10
    store.close()


def test_a_header_that_no_delimiter_explains_shows_what_was_read(home, tmp_path):
    source = folder(tmp_path, **GOOD)
    (source / "products.csv").write_text("ident|name\np1|Tee\n", encoding="utf-8")
    refused(runner.invoke(app, ["load", str(source)]), "header lacks required column(s) id",
            "it reads ['ident|name'], split at ','")


def test_reused_event_ids_with_other_content_warn_or_are_refused_with_strict(home, tmp_path):
    assert runner.invoke(app, ["load", str(folder(tmp_path, **GOOD))]).exit_code == 0
    again = folder(tmp_path, "again", events="e1,2026-05-01T10:00:00Z,s1,p2,purchase,u1,London,false\n")
    result = runner.invoke(app, ["load", str(again)])
    assert result.exit_code == 0 and "(0 new events)" in result.output
    assert "warning: " in result.output and "event 'e1' is stored with other content" in result.output
    assert "product_id 'p1' -> 'p2'" in result.output and "type 'view' -> 'purchase'" in result.output
    refused(runner.invoke(app, ["load", str(again), "--strict"]), "event 'e1' is stored with other content",
            "nothing was loaded")


def test_an_empty_events_file_is_said(home, tmp_path):
    source = folder(tmp_path, categories=GOOD["categories"], products=GOOD["products"])
    (source / "events.csv").write_bytes(b"")
    result = runner.invoke(app, ["load", str(source)])
    assert result.exit_code == 0 and "warning: " in result.output and "events.csv: empty (no rows)" in result.output


# -- the API a storefront developer tries first ---------------------------------------------
from lookgraph.api.app import create_app  # noqa: E402

from .scenario import Clock, build  # noqa: E402
from .test_api import ADMIN, EVENTS, KEYS, READ, TestClient, as_  # noqa: E402


@pytest.fixture
def api(tmp_path, store):
    build(tmp_path, store)
    settings = Settings(home=tmp_path / "home", api_keys=KEYS)
    return TestClient(create_app(settings, store, vectors=None, clock=Clock())), store


def test_the_openapi_document_declares_the_key_scheme_errors_and_summaries_of_every_route(api):
    client, _ = api
    document = client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["API key"] == {
        "type": "apiKey", "in": "header", "name": "X-API-Key",
        "description": "A key from LOOKGRAPH_API_KEYS (`Authorization: Bearer <key>` works too)."}
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert len(operations) >= 16
    for path, method, op in operations:
        assert op.get("summary") and op["summary"] != op["operationId"], (path, method)
        if "x-scope" in op:
            assert {"401", "403"} <= set(op["responses"]), (path, method)
            assert op["security"] == [{"API key": []}], (path, method)
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert "409" in document["paths"]["/products"]["post"]["responses"]
    shopper = document["paths"]["/shoppers/{shopper_id}/recommendations"]["get"]
    assert all(p.get("description") for p in shopper["parameters"] if p["in"] == "query")


def test_the_docs_page_needs_nothing_from_the_internet(api):
    client, _ = api
    page = client.get("/docs").text
    assert "/docs/static/swagger-ui-bundle.js" in page and "cdn" not in page.lower()
    bundle = client.get("/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 500_000


def test_products_and_looks_can_be_read_and_paged(api):
    client, _ = api
    product = client.get("/products/jeans-1", headers=as_(READ)).json()
    assert product == {"id": "jeans-1", "name": "Slim jeans", "category_id": "women/bottoms/jeans", "price": 60.0,
                       "attributes": {"style": ["casual"]}, "availability": "in_stock", "unavailable_in": []}
    assert client.get("/products/nope", headers=as_(READ)).status_code == 404
    first = client.get("/looks?limit=2", headers=as_(READ)).json()
    assert [lk["id"] for lk in first["items"]] == ["city-walk", "office-men"] and first["next_offset"] == 2
    last = client.get("/looks?limit=2&offset=2", headers=as_(READ)).json()
    assert [lk["id"] for lk in last["items"]] == ["weekend-denim"] and last["next_offset"] is None
    with_boots = client.get("/looks?product_id=boots-1", headers=as_(READ)).json()["items"]
    assert [lk["id"] for lk in with_boots] == ["weekend-denim"] and with_boots[0]["mined"] is False


def test_a_single_event_refusal_speaks_of_the_single_form_only(api):
    client, _ = api
    answer = client.post("/events", json={"event_id": "a", "session_id": "s", "product_id": "jeans-1", "type": "look"},
                         headers=as_(EVENTS)).json()["detail"]
    assert [e["loc"] for e in answer] == [["body", "type"]]


def test_every_request_is_one_structured_access_record_without_the_key(api, caplog):
    client, _ = api
    with caplog.at_level("INFO", logger="lookgraph.access"):
        client.get("/shoppers/ann/recommendations?k=2", headers=as_(READ))
    record = next(r for r in caplog.records if r.name == "lookgraph.access")
    assert (record.method, record.path, record.route, record.status) == (
        "GET", "/shoppers/ann/recommendations?k=2", "/shoppers/{shopper_id}/recommendations", 200)
    assert record.ms > 0 and READ not in caplog.text


def test_a_newly_trained_model_is_served_by_the_next_request_without_a_restart(tmp_path):
    from lookgraph.embeddings.publish import train_and_publish
    from lookgraph.embeddings.train import TrainConfig
    from lookgraph.loaders.demo import DemoSpec

    from .conftest import demo_in_store

    home = tmp_path / "home"
    store = demo_in_store(home, DemoSpec(products=300, shoppers=30, events=2_000, seed=6))
    config = TrainConfig(dim=16, epochs=1, seed=1, threads=1)
    first, _ = train_and_publish(store, home, config, mine=False)
    app = create_app(Settings(home=home, api_keys=KEYS, reload_check_seconds=0.2), store)
    with TestClient(app) as client:  # the lifespan runs the watcher
        health = client.get("/health").json()
        assert health["model"] == first.name and health["model_age_seconds"] >= 0
        shopper = next(iter(store.known_ids("shoppers")))
        assert client.get(f"/shoppers/{shopper}/recommendations", headers=as_(READ)).json()["model"] == first.name
        import time as clock

        clock.sleep(1.1)
        second, _ = train_and_publish(store, home, config, mine=False)
        assert second.name != first.name
        deadline = clock.monotonic() + 20
        while client.get("/health").json()["model"] != second.name and clock.monotonic() < deadline:
            clock.sleep(0.1)
        assert client.get(f"/shoppers/{shopper}/recommendations", headers=as_(READ)).json()["model"] == second.name
        assert client.post("/admin/reload", headers=as_(READ)).status_code == 403
        assert client.post("/admin/reload", headers=as_(ADMIN)).json()["model"] == second.name
    store.close()
