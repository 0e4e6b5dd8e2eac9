"""Trustworthy under races, replays and hostile input, on both stores: a session keeps one
owner when two shoppers race for it, a replayed event changes nothing, the contact cap holds
under parallel calls, and what strict JSON cannot carry is refused before it reaches a store."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from lookgraph.api.app import create_app
from lookgraph.embeddings.vectors import LookVectors, latest_artifact
from lookgraph.graph.model import RECORD_KINDS, Event
from lookgraph.settings import Settings

from .scenario import NOW, Clock, build
from .test_api import ADMIN, EVENTS, KEYS, READ, TestClient, as_


@pytest.fixture
def api(tmp_path, store):
    build(tmp_path, store)
    settings = Settings(home=tmp_path / "home", api_keys=KEYS, max_body_bytes=200_000)
    yield TestClient(create_app(settings, store, vectors=None, clock=Clock())), store


def snapshot(store) -> dict:
    """Every record of every kind, plus each shopper's contacts: the whole store, comparable."""
    records = {kind: sorted(map(repr, store.iter_records(kind))) for kind in RECORD_KINDS}
    records["sessions"] = sorted(store.session_owners(store.known_ids("sessions")).items(), key=repr)
    records["contacts"] = {s: store.contacts(s, 0) for s in sorted(store.known_ids("shoppers"))}
    return records


def test_two_shoppers_racing_for_one_new_session_never_share_it(api):
    client, store = api
    rounds = 40

    def first_event(pair: int, shopper: str, barrier: threading.Barrier) -> tuple[str, int]:
        body = {"event_id": f"race-{pair}-{shopper}", "session_id": f"race-{pair}", "product_id": "jeans-1",
                "type": "view", "shopper_id": shopper, "ts": "2026-09-21T10:00:00Z"}
        barrier.wait()
        return shopper, client.post("/events", json=body, headers=as_(EVENTS)).status_code

    with ThreadPoolExecutor(8) as pool:
        for pair in range(rounds):
            barrier = threading.Barrier(2)
            results = list(pool.map(lambda who: first_event(pair, who, barrier), ["alice", "bob"]))
            assert sorted(code for _, code in results) == [200, 422], results
            winner = next(who for who, code in results if code == 200)
            owners = store.session_owners([f"race-{pair}"])
            assert owners == {f"race-{pair}": winner}
            assert {e.shopper_id for e in store.events(session_id=f"race-{pair}")} == {winner}
    owner = store.session_owners(["race-0"])["race-0"]
    other = "bob" if owner == "alice" else "alice"
    late = {"event_id": "late-1", "session_id": "race-0", "product_id": "jeans-1", "type": "view", "shopper_id": other}
    answer = client.post("/events", json={"events": [{**late, "event_id": "fine", "session_id": "own"}, late]},
                         headers=as_(EVENTS))
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "events", 1, "shopper_id"]
    assert store.events(session_id="own") == []  # nothing of the refused batch was written


def test_a_replayed_event_changes_nothing_whatever_else_it_says(api):
    client, store = api
    original = {"event_id": "once", "session_id": "ann-replay", "product_id": "jeans-1", "type": "view",
                "shopper_id": "ann", "location": "London", "ts": "2026-09-21T10:00:00Z"}
    assert client.post("/events", json=original, headers=as_(EVENTS)).json() == {"accepted": 1, "new": 1}
    before = snapshot(store)
    replays = [
        {**original, "ts": "2020-01-01T00:00:00Z", "location": "Paris", "gift": True},  # would move the session
        {**original, "session_id": "phantom-session", "shopper_id": "phantom-shopper"},  # would create rows
        {**original, "product_id": "boots-1", "type": "purchase"},
    ]
    for replay in replays:
        assert client.post("/events", json=replay, headers=as_(EVENTS)).json() == {"accepted": 1, "new": 0}
    batch = {"events": [original, {**original, "session_id": "phantom-2", "shopper_id": "phantom-3"}]}
    assert client.post("/events", json=batch, headers=as_(EVENTS)).json() == {"accepted": 2, "new": 0}
    assert snapshot(store) == before


def test_parallel_outbound_calls_never_beat_the_contact_cap(api):
    client, store = api
    shoppers = ["ann", "bob", "cat", "crowd-0", "crowd-1"]
    barrier = threading.Barrier(8 * len(shoppers))

    def outbound(shopper: str) -> bool:
        barrier.wait()
        return client.post(f"/shoppers/{shopper}/outbound?channel=email", headers=as_(EVENTS)).json()["contact"]

    with ThreadPoolExecutor(8 * len(shoppers)) as pool:
        contacted = list(pool.map(outbound, [s for s in shoppers for _ in range(8)]))
    logged = {s: len(store.contacts(s, 0)) for s in shoppers}
    assert sum(contacted) == len(shoppers), logged  # a 24-hour quiet period: one contact each
    assert logged == dict.fromkeys(shoppers, 1)


def test_creating_an_existing_product_or_look_is_a_conflict_and_put_replaces(api):
    client, store = api
    taken = {"id": "jeans-1", "name": "Impostor", "category_id": "women/bottoms/jeans", "price": 1}
    refused = client.post("/products", json=taken, headers=as_(ADMIN))
    assert refused.status_code == 409 and "jeans-1" in refused.json()["detail"]
    assert store.get("products", "jeans-1").name == "Slim jeans"  # untouched
    look = {"id": "weekend-denim", "name": "Impostor", "product_ids": ["jeans-2"]}
    assert client.post("/looks", json=look, headers=as_(ADMIN)).status_code == 409
    assert store.get("looks", "weekend-denim").product_ids == ("jeans-1", "boots-1", "tote-1")

    replaced = client.put("/products/jeans-1", json={"name": "Slim jeans, raw", "category_id": "women/bottoms/jeans",
                                                     "price": 65}, headers=as_(ADMIN))
    assert replaced.status_code == 200 and store.get("products", "jeans-1").name == "Slim jeans, raw"
    assert client.put("/looks/weekend-denim", json={"name": "weekend", "product_ids": ["jeans-1", "boots-1"]},
                      headers=as_(ADMIN)).status_code == 200
    assert store.get("looks", "weekend-denim").product_ids == ("jeans-1", "boots-1")
    assert client.put("/products/jeans-1", json={"name": "x"}, headers=as_(READ)).status_code == 403


@pytest.mark.parametrize("body, where", [
    ('{"event_id": "x\\ud800", "session_id": "s", "product_id": "jeans-1", "type": "view"}', ["body", "event_id"]),
    ('{"events": [{"event_id": "a", "session_id": "s", "product_id": "jeans-1", "type": "view", "ts": Infinity}]}',
     ["body", "events", 0, "ts"]),
    ('{"event_id": "a", "session_id": "s", "product_id": "jeans-1", "type": "view", "location": -Infinity}',
     ["body", "location"]),
])
def test_what_strict_json_cannot_carry_is_refused_naming_the_field(api, body, where):
    client, store = api
    before = snapshot(store)
    answer = client.post("/events", content=body, headers={**as_(EVENTS), "Content-Type": "application/json"})
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == where
    assert snapshot(store) == before


def test_nan_prices_surrogate_names_and_control_characters_are_refused(api):
    client, _ = api
    post = lambda path, body, key=ADMIN: client.post(  # noqa: E731
        path, content=body, headers={**as_(key), "Content-Type": "application/json"})
    assert post("/products", '{"id": "p-nan", "name": "N", "price": NaN}').json()["detail"][0]["loc"] == ["body", "price"]
    assert post("/looks", '{"id": "l", "name": "\\udc00", "product_ids": ["jeans-1"]}').status_code == 422
    assert post("/sessions/s1/recommendations", '{"k": NaN}', READ).json()["detail"][0]["loc"] == ["body", "k"]
    for field, value in (("shopper_id", "ann\u0000"), ("location", "London\nSet-Cookie: x"), ("event_id", "a\tb")):
        event = {"event_id": "ctl", "session_id": "s-ctl", "product_id": "jeans-1", "type": "view", field: value}
        answer = client.post("/events", json=event, headers=as_(EVENTS))
        assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", field]
    product = {"id": "p-ctl", "name": "Line\nbreak"}
    assert client.post("/products", json=product, headers=as_(ADMIN)).status_code == 422


def test_the_key_is_checked_before_the_body_is_read_and_oversize_chunked_bodies_get_413(api):
    client, _ = api
    assert client.post("/events", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 401
    assert client.post("/events", content=b"[" * 100_000, headers={"Content-Type": "application/json"}).status_code == 401
    assert client.post("/events", content=b"{not json", headers={**as_(READ), "Content-Type": "application/json"}
                       ).status_code == 403

    def chunks():
        for _ in range(50):
            yield b" " * 10_000  # 500 kB, no Content-Length: streamed

    answer = client.post("/events", content=chunks(), headers={**as_(EVENTS), "Content-Type": "application/json"})
    assert answer.status_code == 413


def test_erasure_leaves_no_byte_of_the_shopper_anywhere_under_the_home(tmp_path):
    """Store rows, the write-ahead log, freed pages, every trained artifact (ids, vectors,
    checkpoint) and the running server's memory: none keeps the erased shopper."""
    from lookgraph.embeddings.publish import train_and_publish
    from lookgraph.embeddings.train import TrainConfig
    from lookgraph.loaders.demo import DemoSpec

    from .conftest import demo_in_store

    home = tmp_path / "home"
    store = demo_in_store(home, DemoSpec(products=300, shoppers=40, events=3_000, seed=4))
    victim = "erase-me-7f3c"
    store.append_events([Event(f"{victim}/{i}", f"{victim}-visit", "p000010", "purchase", NOW + i, victim, "Oslo")
                         for i in range(3)])
    config = TrainConfig(dim=16, epochs=2, seed=1, threads=1)
    train_and_publish(store, home, config, mine=False)
    store.append_events([Event(f"{victim}/again", f"{victim}-visit", "p000011", "view", NOW + 9, victim, "Oslo")])
    train_and_publish(store, home, config, mine=False)  # a second artifact (other data) holds the shopper too
    app = create_app(Settings(home=home, api_keys=KEYS), store, clock=Clock())
    engine = app.state.engine
    assert victim in engine.model.shopper_row
    with TestClient(app) as client:
        assert client.get(f"/shoppers/{victim}/recommendations", headers=as_(READ)).status_code == 200
        erased = client.delete(f"/shoppers/{victim}", headers=as_(ADMIN)).json()["removed"]
        assert erased["events"] == 4 and erased["sessions"] == 1 and erased["artifacts"] == 2
        assert client.delete(f"/shoppers/{victim}", headers=as_(ADMIN)).status_code == 404
    assert victim not in engine.model.shopper_row and victim not in engine.model.vectors.ids["shopper"]
    assert store.impressions(shopper_id=victim) == []  # what was shown to them, written or still queued
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "graph.db" for p in files) and any(p.name == "checkpoint.pt" for p in files)
    holding = [str(p.relative_to(home)) for p in files if victim.encode() in p.read_bytes()]
    assert holding == []
    # The rewritten artifacts still load and line up: one vector per remaining shopper.
    vectors = LookVectors.load(latest_artifact(home))
    assert len(vectors.ids["shopper"]) == len(vectors.arrays["shopper"]) == len(store.known_ids("shoppers"))
    store.close()


def fuzz(app, key: str, examples: int, on_response=None) -> None:
    """Schemathesis over every operation of `app`'s OpenAPI document, valid and invalid inputs
    (`examples` of each per operation, derandomized): no 5xx, no status code or content type the
    document does not declare, every documented body as its schema says."""
    import schemathesis
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    from .fuzzing import each_case

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    def run(operation, case):
        response = case.call_and_validate(checks=checks)
        if on_response is not None:
            on_response(operation, response)

    async def requests_only(scope, receive, send):
        if scope["type"] == "lifespan":  # refused, as by an app without one: it runs below instead
            raise RuntimeError("the test runs the lifespan")
        await app(scope, receive, send)

    # The app's lifespan (its background jobs) ends with this call, while the test's store is
    # open; the fuzzer's own would run on in its event loop until the process exits.
    with TestClient(app):
        each_case(schemathesis.openapi.from_asgi("/openapi.json", requests_only), key, examples, run)


def test_fuzzed_requests_get_no_server_error_and_only_documented_answers(api):
    client, _ = api
    seen: list[int] = []
    fuzz(client.app, ADMIN, examples=12, on_response=lambda _, response: seen.append(response.status_code))
    assert len(seen) > 100 and max(seen) < 500


def test_a_neo4j_store_written_before_the_channel_constraint_is_merged_and_then_constrained():
    from neo4j.exceptions import ConstraintError

    from .conftest import neo4j_store

    store = neo4j_store()
    store._write("admin.drop_channel_constraint")
    store._write("admin.legacy_duplicate_channels", first="old", second="old2", channel="email")
    store.ensure_schema()  # merges the two, then constrains
    assert sorted(store.contacts("old", 0) + store.contacts("old2", 0)) == [("email", 1.0), ("email", 2.0)]
    with pytest.raises(ConstraintError):  # a second 'email' channel can no longer be made
        store._write("admin.legacy_duplicate_channels", first="new", second="new2", channel="email")
    store._write("admin.delete_everything")
    store.close()
