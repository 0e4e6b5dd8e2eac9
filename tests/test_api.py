"""The REST API as a storefront uses it."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

from pydantic import BaseModel

from lookgraph.api import schemas
from lookgraph.api.app import create_app
from lookgraph.settings import Settings

from .scenario import NOW, Clock, build

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

READ, EVENTS, ADMIN = "read-key-0123456789abcdef", "events-key-0123456789abcdef", "admin-key-0123456789abcdef"
PERSONAL = "personal-key-0123456789abcdef"
KEYS = f"{READ}:read;{EVENTS}:events;{PERSONAL}:read,personal;{ADMIN}:admin"


@pytest.fixture
def api(tmp_path, store):
    """The API over the scenario shop in each store (Neo4j when NEO4J_URI is set)."""
    build(tmp_path, store)
    settings = Settings(home=tmp_path / "home", api_keys=KEYS, max_body_bytes=200_000)
    client = TestClient(create_app(settings, store, vectors=None, clock=Clock()))
    yield client, store


def as_(key):
    return {"X-API-Key": key}


def test_keys_and_scopes(api):
    client, _ = api
    assert client.get("/shoppers/ann/recommendations").status_code == 401
    assert client.get("/shoppers/ann/recommendations", headers=as_("nope-0123456789abcdef")).status_code == 401
    assert client.get("/shoppers/ann/recommendations", headers={"Authorization": f"Bearer {READ}"}).status_code == 200
    assert client.post("/events", json={}, headers=as_(READ)).status_code == 403
    assert client.delete("/shoppers/ann", headers=as_(EVENTS)).status_code == 403
    assert client.get("/shoppers/ann/recommendations", headers=as_(ADMIN)).status_code == 200  # admin implies read


def test_the_app_refuses_to_start_without_keys(tmp_path):
    with pytest.raises(ValueError, match="LOOKGRAPH_API_KEYS"):
        create_app(Settings(home=tmp_path, api_keys=None), build(tmp_path), vectors=None)


def test_an_event_is_in_the_next_recommendation_with_its_reason(api):
    client, store = api
    event = {"event_id": "w1", "session_id": "ann-web", "product_id": "jeans-1", "type": "view",
             "shopper_id": "ann", "location": "London"}
    assert client.post("/events", json=event, headers=as_(EVENTS)).json() == {"accepted": 1, "new": 1}
    assert client.post("/events", json=event, headers=as_(EVENTS)).json() == {"accepted": 1, "new": 0}
    naive = {**event, "event_id": "w0", "ts": "2026-05-01T10:00:00"}
    client.post("/events", json=naive, headers=as_(EVENTS))
    assert store.events(session_id="ann-web")[0].ts == 1777629600.0  # no offset: UTC
    body = client.get("/shoppers/ann/recommendations?k=3", headers=as_(READ)).json()
    first = body["items"][0]
    assert first["product_id"] in {"boots-1", "tote-1"}
    assert first["reason"] == "goes with the Slim jeans you viewed in the look 'weekend denim'"
    assert first["paths"][0]["relationships"] == ["INCLUDES", "INCLUDES"]
    assert [n["label"] for n in first["paths"][0]["nodes"]] == ["Product", "Look", "Product"]


def documented_fields(model) -> dict:
    """Field names of a response model and of the models nested in it."""
    nested = {}
    for name, field in model.model_fields.items():
        inner = getattr(field.annotation, "__args__", (field.annotation,))[0]
        nested[name] = documented_fields(inner) if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return nested


def served_fields(value):
    if isinstance(value, list):
        return served_fields(value[0]) if value and isinstance(value[0], dict) else None
    return {k: served_fields(v) for k, v in value.items()} if isinstance(value, dict) else None


@pytest.mark.parametrize("call", ["GET /shoppers/ann/recommendations", "GET /products/jeans-1/complete-the-look",
                                  "POST /sessions/anon-1/recommendations", "POST /shoppers/ann/outbound"])
def test_answers_are_exactly_the_documented_schema(api, call):
    """Recommendations are written straight from the engine's dataclasses: the JSON must still be
    the documented model, field for field."""
    client, _ = api
    method, path = call.split()
    key = EVENTS if "outbound" in path else READ
    response = client.request(method, path, headers=as_(key), json={"items": ["jeans-1"]} if "sessions" in path else None)
    body = response.json()
    model = schemas.OutboundOut if "outbound" in path else schemas.Recommendations
    model.model_validate(body)
    assert body["items"] and served_fields(body) == documented_fields(model)


def test_query_parameters_reach_the_engine(api):
    client, _ = api
    get = lambda path: [i["product_id"] for i in client.get(path, headers=as_(READ)).json()["items"]]  # noqa: E731
    # Repeated `category` parameters: items of either category only; the paths' picks first, then
    # best sellers of those categories fill the list, each saying so.
    body = client.get("/products/jeans-1/complete-the-look?category=women/shoes&category=women/bags&k=5",
                      headers=as_(READ)).json()
    assert [i["product_id"] for i in body["items"]][:2] == ["boots-1", "tote-1"]
    assert all(i["category"].startswith(("women/shoes", "women/bags")) for i in body["items"])
    assert all("best seller" in i["reason"] for i in body["items"][2:])
    assert body["short_because"] is None or len(body["items"]) < 5
    unknown = client.get("/products/jeans-1/complete-the-look?category=women/hats", headers=as_(READ))
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "category", 0]
    # Items already in the look (repeatable `item`) are anchors too, and never offered again.
    around = get("/products/jeans-1/complete-the-look?item=boots-1&k=5")
    assert "boots-1" not in around and "jeans-1" not in around and "tote-1" in around
    ghost = client.get("/products/jeans-1/complete-the-look?item=ghost", headers=as_(READ))
    assert ghost.status_code == 422 and ghost.json()["detail"][0]["loc"] == ["query", "item", 0]
    # `explore=false`: no exploration slots.
    plain = client.get("/shoppers/ann/recommendations?k=10&explore=false", headers=as_(READ)).json()["items"]
    assert plain and not any(i["exploration"] for i in plain)
    assert "jeans-2" not in get("/products/jeans-1/complete-the-look")
    assert "jeans-2" in get("/products/jeans-1/complete-the-look?same_category=true")
    in_view = client.get("/shoppers/ann/recommendations?product_id=shirt-1&k=3", headers=as_(READ)).json()["items"]
    assert in_view[0]["product_id"] == "loafers-1" and "shirt" in in_view[0]["reason"].lower()


def test_bad_events_are_422_with_the_field_at_fault_and_nothing_is_written(api):
    client, store = api
    batch = {"events": [
        {"event_id": "b1", "session_id": "s-b", "product_id": "jeans-1", "type": "view", "shopper_id": "bob"},
        {"event_id": "b2", "session_id": "s-b", "product_id": "ghost", "type": "view", "shopper_id": "bob"},
    ]}
    response = client.post("/events", json=batch, headers=as_(EVENTS))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events", 1, "product_id"]
    assert store.events(shopper_id="bob") == []
    wrong_type = client.post("/events", json={**batch["events"][0], "type": "stare"}, headers=as_(EVENTS))
    assert wrong_type.status_code == 422 and "type" in str(wrong_type.json()["detail"])
    other_owner = client.post("/events", json={**batch["events"][0], "session_id": "ann-0"}, headers=as_(EVENTS))
    assert other_owner.status_code == 422 and other_owner.json()["detail"][0]["loc"] == ["body", "shopper_id"]
    too_many = {"events": [batch["events"][0]] * 1001}
    assert client.post("/events", json=too_many, headers=as_(EVENTS)).status_code == 422
    for path, field in (("/shoppers/ann/recommendations?k=0", "k"), ("/shoppers/ann/recommendations?gift=maybe", "gift"),
                        ("/products/jeans-1/complete-the-look?k=101", "k")):
        bad_query = client.get(path, headers=as_(READ))
        assert bad_query.status_code == 422 and bad_query.json()["detail"][0]["loc"] == ["query", field]


def test_huge_bodies_are_refused(api):
    client, _ = api
    huge = {"events": [{"event_id": "x" * 190, "session_id": "s", "product_id": "jeans-1", "type": "view"}] * 990}
    assert client.post("/events", json=huge, headers=as_(EVENTS)).status_code == 413


def test_a_new_product_and_a_new_look_are_recommendable_at_once(api):
    client, _ = api
    product = {"id": "scarf-1", "name": "Wool scarf", "category_id": "women/accessories/belts",
               "attributes": {"style": "casual"}}
    assert client.post("/products", json=product, headers=as_(ADMIN)).status_code == 201
    recs = client.get("/products/jeans-1/complete-the-look?k=10", headers=as_(READ)).json()["items"]
    scarf = next(r for r in recs if r["product_id"] == "scarf-1")
    assert scarf["reason"] == "matches the casual style of the Slim jeans you are looking at"
    look = {"id": "autumn", "name": "autumn layers", "product_ids": ["jeans-2", "scarf-1"]}
    assert client.post("/looks", json=look, headers=as_(ADMIN)).status_code == 201
    assert client.get("/looks/autumn", headers=as_(READ)).json()["product_ids"] == ["jeans-2", "scarf-1"]
    recs = client.get("/products/jeans-2/complete-the-look?k=10", headers=as_(READ)).json()["items"]
    assert any(p["sentence"].endswith("in the look 'autumn layers'") for r in recs for p in r["paths"])
    bad = client.post("/looks", json={**look, "product_ids": ["jeans-2", "nope"]}, headers=as_(ADMIN))
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "product_ids", 1]


def test_anonymous_sessions_and_unknown_things(api):
    client, _ = api
    body = client.post("/sessions/visitor-1/recommendations", json={"items": ["jeans-1"], "k": 3},
                       headers=as_(READ)).json()
    assert body["items"][0]["product_id"] in {"boots-1", "tote-1"}
    # A shopper the store does not know yet (no events) gets the crowd's full list, not a 404.
    newcomer = client.get("/shoppers/nobody/recommendations?k=4", headers=as_(READ))
    assert newcomer.status_code == 200
    assert len(newcomer.json()["items"]) == 4 or newcomer.json()["short_because"]
    assert client.get("/products/nothing/complete-the-look", headers=as_(READ)).status_code == 404
    assert client.post("/sessions/v/recommendations", json={"items": ["nope"]}, headers=as_(READ)).status_code == 422


def test_erasing_a_shopper_leaves_no_trace(api):
    client, store = api
    client.post("/events", json={"event_id": "e-ann", "session_id": "ann-x", "product_id": "tote-1",
                                 "type": "purchase", "shopper_id": "ann"}, headers=as_(EVENTS))
    client.post("/shoppers/ann/outbound", headers=as_(EVENTS))
    removed = client.delete("/shoppers/ann", headers=as_(ADMIN)).json()["removed"]
    assert removed["events"] == 5 and removed["contacts"] == 1 and removed["shoppers"] == 1
    assert store.events(shopper_id="ann") == [] and store.contacts("ann", 0) == []
    # Now a stranger: the crowd's answer, nothing drawn from what ann did.
    after = client.get("/shoppers/ann/recommendations", headers=as_(READ)).json()["items"]
    assert not any(step["label"] == "Shopper" or "you" in p["sentence"] for i in after for p in i["paths"] for step in p["nodes"])
    assert client.delete("/shoppers/ann", headers=as_(ADMIN)).status_code == 404


def test_posted_events_reach_the_crowds_statistics_and_erased_shoppers_leave_them(api):
    client, store = api
    walk = client.app.state.engine.graph
    event = {"event_id": "oslo-1", "session_id": "bob-oslo", "product_id": "seat-2", "type": "purchase",
             "shopper_id": "bob", "location": "Oslo"}
    client.post("/events", json=event, headers=as_(EVENTS))
    walk.refresh_statistics()
    assert walk.trending().by_location["Oslo"][0].id == "seat-2"
    assert walk.repurchase()["home/durables/toilet-seats"].buyers == 5  # the crowd's four and bob
    assert client.delete("/shoppers/bob", headers=as_(ADMIN)).status_code == 200
    walk.refresh_statistics()
    assert walk.repurchase()["home/durables/toilet-seats"].buyers == 4


def test_outbound_says_do_not_contact_when_capped(api):
    client, _ = api
    assert client.post("/shoppers/ann/outbound?channel=email", headers=as_(EVENTS)).json()["contact"] is True
    second = client.post("/shoppers/ann/outbound?channel=push", headers=as_(EVENTS)).json()
    assert second["contact"] is False and second["reason"] == "quiet period" and second["retry_after"]


def test_concurrent_writers_lose_no_event(api):
    client, store = api

    def post(worker):
        for i in range(25):
            client.post("/events", json={"event_id": f"c{worker}/{i}", "session_id": f"cc-{worker}",
                                         "product_id": "boots-1", "type": "view", "shopper_id": "bob",
                                         "ts": NOW + i}, headers=as_(EVENTS))

    threads = [threading.Thread(target=post, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.events(shopper_id="bob")) == 200


@pytest.mark.parametrize("threads", [1, 3])
def test_a_worker_computes_at_most_compute_threads_answers_at_once(tmp_path, embedded, monkeypatch, threads):
    """More threads than the store's waits need only fight over Python's interpreter lock: the
    rest of the requests wait their turn, and every one is answered."""
    from lookgraph.recommend.engine import Engine

    build(tmp_path, embedded)
    running, most, lock = 0, 0, threading.Lock()
    answer = Engine.for_shopper

    def counted(self, *args, **kwargs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            threading.Event().wait(0.05)  # long enough for the others to arrive
            return answer(self, *args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(Engine, "for_shopper", counted)
    settings = Settings(home=tmp_path / "home", api_keys=KEYS, compute_threads=threads)
    statuses = []
    with TestClient(create_app(settings, embedded, vectors=None, clock=Clock())) as client:
        def ask():
            statuses.append(client.get("/shoppers/ann/recommendations", headers=as_(READ)).status_code)
        askers = [threading.Thread(target=ask) for _ in range(6)]
        for t in askers:
            t.start()
        for t in askers:
            t.join()
    assert statuses == [200] * 6
    assert most == threads


def test_shutting_down_waits_for_the_background_job_in_flight(tmp_path, embedded, monkeypatch):
    """A thread cannot be stopped midway: leaving the app's lifespan waits for the store job it
    is running (dropping old impressions starts at once), so whoever closes the store after the
    app closes it after that job's last query, not under it."""
    build(tmp_path, embedded)
    started, finished = threading.Event(), []
    drop = embedded.delete_impressions_before

    def slow_drop(before: float) -> int:
        started.set()
        threading.Event().wait(0.5)
        finished.append(drop(before))
        return finished[-1]

    monkeypatch.setattr(embedded, "delete_impressions_before", slow_drop)
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS), embedded, vectors=None, clock=Clock())

    async def serve_then_shut_down() -> list[int]:  # in one event loop that lives on, as a test client's may
        async with app.router.lifespan_context(app):
            assert await asyncio.to_thread(started.wait, 5)
        return list(finished)

    assert asyncio.run(serve_then_shut_down()) == [0]


def test_beats_stop_while_every_compute_thread_is_stuck_and_come_back_after(tmp_path, embedded, monkeypatch):
    """`serve --workers`' parent replaces a worker whose beats stop (`api/workers.py`): a beat
    passes through the compute threads, so one stuck feed on the embedded store (one compute
    thread) silences it, though the event loop still runs."""
    import httpx

    from lookgraph.recommend.engine import Engine

    build(tmp_path, embedded)
    release, answer = threading.Event(), Engine.for_shopper
    monkeypatch.setattr(Engine, "for_shopper", lambda self, *a, **kw: (release.wait(10), answer(self, *a, **kw))[1])
    beats: list[float] = []
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS), embedded, vectors=None, clock=Clock(),
                     heartbeat=lambda: beats.append(1.0))

    async def scenario() -> tuple[int, int, int, int]:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lookgraph") as client:
                await asyncio.sleep(1.5)
                before = len(beats)
                stuck = asyncio.create_task(client.get("/shoppers/ann/recommendations", headers=as_(READ)))
                await asyncio.sleep(0.2)
                stuck_at = len(beats)
                await asyncio.sleep(3)
                silent = len(beats)
                release.set()
                assert (await stuck).status_code == 200
                await asyncio.sleep(1.5)
                return before, stuck_at, silent, len(beats)

    before, stuck_at, silent, after = asyncio.run(scenario())
    assert before >= 1 and silent - stuck_at <= 1 and after > silent


def test_a_worker_with_a_long_queue_of_answers_keeps_beating(tmp_path, embedded, monkeypatch):
    """An overloaded worker is slow, not stuck: while answers keep finishing, it beats (its
    parent must not kill a worker for the queue in front of it)."""
    import httpx

    from lookgraph.recommend.engine import Engine

    build(tmp_path, embedded)
    answer = Engine.for_shopper
    monkeypatch.setattr(Engine, "for_shopper", lambda self, *a, **kw: (threading.Event().wait(0.25), answer(self, *a, **kw))[1])
    beats: list[float] = []
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS), embedded, vectors=None, clock=Clock(),
                     heartbeat=lambda: beats.append(1.0))

    async def scenario() -> tuple[int, int, list[int]]:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://lookgraph") as client:
                queued = [asyncio.create_task(client.get("/shoppers/ann/recommendations", headers=as_(READ)))
                          for _ in range(16)]  # 4 s of answers on the one compute thread
                await asyncio.sleep(0.5)
                before = len(beats)
                await asyncio.sleep(3)
                during = len(beats) - before
                return before, during, [(await task).status_code for task in queued]

    _, during, statuses = asyncio.run(scenario())
    assert during >= 2 and statuses == [200] * 16


def test_health_metrics_and_openapi(api):
    client, _ = api
    assert client.get("/health").json()["status"] == "ok"
    client.get("/shoppers/ann/recommendations", headers=as_(READ))
    metrics = client.get("/metrics").text
    assert 'lookgraph_requests_total{route="/shoppers/{shopper_id}/recommendations",status="200"}' in metrics
    spec = client.get("/openapi.json").json()
    assert {"/events", "/shoppers/{shopper_id}/recommendations", "/products/{product_id}/complete-the-look",
            "/sessions/{session_id}/recommendations", "/looks", "/looks/{look_id}", "/products",
            "/shoppers/{shopper_id}", "/shoppers/{shopper_id}/outbound", "/health", "/metrics"} <= set(spec["paths"])


def test_a_store_loaded_before_bought_with_existed_gets_it_when_served(tmp_path):
    """A store an earlier lookgraph loaded has events but no BOUGHT_WITH: serving computes it
    before the first request, so the crowd's walk is not empty."""
    store = build(tmp_path)
    with store._transaction() as conn:  # as an earlier lookgraph left it
        conn.execute("DELETE FROM bought_with")
        conn.execute("DELETE FROM meta WHERE key = 'bought_with'")
    assert store.bought_with_state() is None and not list(store.iter_bought_with())
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None)
    assert store.bought_with_state()["events"] == store.events_watermark()
    assert "belt-1" in {hit.product_id for hit in app.state.engine.graph.co_sessions(["jeans-1"])}


def test_every_served_list_is_kept_under_its_recommendation_id_and_erased_with_the_shopper(api):
    """Feed, complete the look, an anonymous session and outbound picks each answer with a
    recommendation id; what was shown (items in position, their sources and paths, the list,
    who, the model, the context) is kept in the store under it, on each store; erasing the
    shopper erases their impressions, and one still queued for them is kept anonymous."""
    client, store = api
    impressions = client.app.state.impressions
    answers = {
        "feed": client.get("/shoppers/ann/recommendations?k=5", headers=as_(READ)).json(),
        "complete_the_look": client.get("/products/jeans-1/complete-the-look?k=4", headers=as_(READ)).json(),
        "session": client.post("/sessions/visit-1/recommendations", json={"items": ["jeans-1"], "k": 3},
                               headers=as_(READ)).json(),
        "outbound": client.post("/shoppers/bob/outbound?channel=email&k=2", headers=as_(EVENTS)).json(),
    }
    ids = {kind: answer["recommendation_id"] for kind, answer in answers.items()}
    assert all(len(rid) == 32 for rid in ids.values()) and len(set(ids.values())) == 4
    assert store.impressions() == []  # queued, not yet written: off the request's path
    assert impressions.flush() == 4
    kept = {i.id: i for i in store.impressions()}
    assert set(kept) == set(ids.values())
    for kind, answer in answers.items():
        impression = kept[ids[kind]]
        assert impression.list == kind and impression.ranker == "hand-set" and impression.at == NOW
        assert [(s.product_id, s.source) for s in impression.items] == [(i["product_id"], i["source"]) for i in answer["items"]]
        assert all(s.source for s in impression.items)
        assert [s.path for s in impression.items] == [">".join(i["paths"][0]["relationships"]) for i in answer["items"]]
    feed, page, visit = kept[ids["feed"]], kept[ids["complete_the_look"]], kept[ids["session"]]
    assert feed.shopper_id == "ann" and feed.context["k"] == 5 and feed.context["explore"] is True
    assert page.product_id == "jeans-1" and page.shopper_id is None
    assert visit.session_id == "visit-1" and visit.context["items"] == ["jeans-1"]
    assert kept[ids["outbound"]].shopper_id == "bob"

    client.get("/shoppers/ann/recommendations?k=5", headers=as_(READ))  # queued when she is erased
    erased = client.delete("/shoppers/ann", headers=as_(ADMIN)).json()
    assert erased["removed"]["impressions"] == 1
    impressions.flush()
    assert store.impressions(shopper_id="ann") == []
    late = [i for i in store.impressions() if i.list == "feed"]
    assert len(late) == 1 and late[0].shopper_id is None  # written after the erasure: anonymous
    assert store.delete_impressions_before(NOW + 1) == 4  # the retention
    assert store.impressions() == []


def test_impressions_never_slow_an_answer_they_are_dropped_and_counted_and_written_on_shutdown(tmp_path):
    store = build(tmp_path)
    settings = Settings(home=tmp_path / "home", api_keys=KEYS, impression_queue=2, impression_flush_seconds=3_600)
    with TestClient(create_app(settings, store, vectors=None, clock=Clock())) as client:
        for _ in range(5):
            assert client.get("/shoppers/ann/recommendations?k=3", headers=as_(READ)).status_code == 200
        metrics = client.get("/metrics", headers=as_(ADMIN)).text
        assert 'lookgraph_impressions_total{outcome="dropped"} 3.0' in metrics
        assert store.impressions() == []
    assert len(store.impressions(shopper_id="ann")) == 2  # the queue written when the server stopped
    off = Settings(home=tmp_path / "home", api_keys=KEYS, impressions=False)
    answer = TestClient(create_app(off, store, vectors=None, clock=Clock())).get(
        "/shoppers/ann/recommendations?k=3", headers=as_(READ)).json()
    assert len(answer["recommendation_id"]) == 32


def test_what_the_recommendations_sold_is_credited_to_the_lists_that_showed_it(api):
    """An event sent back with a list's recommendation id is credited to that list and slot; a
    cart or purchase of an item shown to the same shopper (or an anonymous session) within the
    window counts without one; nothing else does; on each store."""
    from datetime import datetime, timezone

    client, store = api
    prices = {p.id: p.price for p in store.iter_records("products")}
    feed = client.get("/shoppers/ann/recommendations?k=5&explore=false", headers=as_(READ)).json()
    visit = client.post("/sessions/visit-9/recommendations", json={"items": ["jeans-1"], "k": 3},
                        headers=as_(READ)).json()
    client.app.state.impressions.flush()
    first, second = feed["items"][0]["product_id"], feed["items"][1]["product_id"]
    shown = {i["product_id"] for i in feed["items"]}
    unshown = next(p for p in sorted(prices) if p not in shown and p != "jeans-1")
    events = [
        {"event_id": "sold-1", "session_id": "ann-now", "product_id": second, "type": "cart", "shopper_id": "ann",
         "recommendation_id": feed["recommendation_id"]},
        {"event_id": "sold-2", "session_id": "ann-now", "product_id": first, "type": "purchase", "shopper_id": "ann"},
        {"event_id": "sold-3", "session_id": "ann-now", "product_id": first, "type": "purchase", "shopper_id": "ann"},
        {"event_id": "sold-4", "session_id": "ann-now", "product_id": unshown, "type": "purchase", "shopper_id": "ann"},
        {"event_id": "sold-5", "session_id": "visit-9", "product_id": visit["items"][0]["product_id"], "type": "view"},
    ]
    assert client.post("/events", json={"events": events}, headers=as_(EVENTS)).status_code == 200
    stamp = lambda t: datetime.fromtimestamp(t, timezone.utc).isoformat()  # noqa: E731
    asked = {"since": stamp(NOW - 3600), "until": stamp(NOW + 1)}
    metrics = client.get("/metrics/recommendations", params=asked, headers=as_(ADMIN)).json()
    by_list = metrics["by_list"]
    assert by_list["feed"] | {"revenue": 0} == {
        "lists": 1, "shown": 5, "views": 0, "carts": 1, "purchases": 1, "revenue": 0, "click_through": 0.0,
        "add_to_cart": 0.2, "conversion": 0.2, "revenue_per_thousand": round(prices[first] / 5 * 1000, 2)}
    assert by_list["feed"]["revenue"] == prices[first]  # once, though bought twice; the unshown one not at all
    assert by_list["session"]["views"] == 1 and by_list["session"]["shown"] == 3
    assert metrics["by_position"]["0"]["purchases"] == 1 and metrics["by_position"]["1"]["carts"] == 1
    assert sum(r["shown"] for r in metrics["by_source"].values()) == 8 and metrics["by_variant"]["none"]["lists"] == 2
    assert {b["list"] for b in metrics["buckets"]} == {"feed", "session"}
    later = client.get("/metrics/recommendations", params={**asked, "window_hours": 0.0001}, headers=as_(ADMIN)).json()
    assert later["by_list"]["feed"]["carts"] == 1  # sent back with the id: credited whatever the window
    bad = client.get("/metrics/recommendations", params={"since": asked["until"], "until": asked["since"]},
                     headers=as_(ADMIN))
    assert bad.status_code == 422 and client.get("/metrics/recommendations", headers=as_(READ)).status_code == 403
    assert client.delete("/shoppers/ann", headers=as_(ADMIN)).status_code == 200  # erased: her lists and credits too
    after = client.get("/metrics/recommendations", params=asked, headers=as_(ADMIN)).json()
    assert "feed" not in after["by_list"] and after["by_list"]["session"]["views"] == 1
