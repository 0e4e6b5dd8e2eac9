"""Experiments: assignment, variants served and named, results, and a test that stays valid when
looked at every day."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lookgraph.api.app import create_app
from lookgraph.graph.model import Experiment, Variant
from lookgraph.recommend import sequential
from lookgraph.recommend.experiments import HOLDOUT, assign, draw
from lookgraph.settings import Settings

from .scenario import DAY, NOW, Clock, build
from .test_api import ADMIN, EVENTS, KEYS, READ, as_

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def two_arms(experiment_id: str, holdout: float = 0.0) -> Experiment:
    return Experiment(experiment_id, "t", (Variant("a", 0.5), Variant("b", 0.5)), holdout=holdout)


def test_assignment_is_a_stable_hash_split_by_share_and_independent_across_experiments():
    units = [f"u{i}" for i in range(20_000)]
    experiment = Experiment("e1", "t", (Variant("a", 0.2), Variant("b", 0.8)), holdout=0.1)
    got = [assign(experiment, u) for u in units]
    share = {name: got.count(name) / len(units) for name in ("a", "b", HOLDOUT)}
    assert abs(share[HOLDOUT] - 0.1) < 0.01 and abs(share["a"] - 0.18) < 0.01 and abs(share["b"] - 0.72) < 0.01
    assert got == [assign(experiment, u) for u in units]  # every worker, every restart: the same
    first, second = np.array([draw("e1", u) for u in units]), np.array([draw("e2", u) for u in units])
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.03  # a unit's arm in one says nothing of the next


@pytest.fixture
def shop(tmp_path, store):
    build(tmp_path, store)
    clock = Clock()
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None, clock=clock)
    return TestClient(app), store, clock, tmp_path


def experiment_where(unit: str, variant: str, **fields) -> dict:
    """An experiment body whose id puts `unit` in `variant` (the split is a hash: pick the id)."""
    for n in range(200):
        body = {"id": f"exp-{n}", "name": "rules and variety", **fields}
        arms = tuple(Variant(v["name"], v["share"]) for v in body["variants"])
        if assign(Experiment(body["id"], "", arms, holdout=body.get("holdout", 0.0)), unit) == variant:
            return body
    raise AssertionError("no id found")


def test_each_unit_is_served_its_variant_every_answer_names_it_and_every_list_kept_records_it(shop):
    client, store, clock, _ = shop
    assert client.post("/rules", json={"id": "no-boots", "action": "exclude", "category": "women/shoes/boots"},
                       headers=as_(ADMIN)).status_code == 201
    before = client.get("/shoppers/ann/recommendations?k=6", headers=as_(READ)).json()
    assert before["variant"] is None and not any(i["product_id"].startswith("boots") for i in before["items"])
    body = experiment_where("ann", "without-rules", lists=["feed", "session"], variants=[
        {"name": "control", "share": 0.5},
        {"name": "without-rules", "share": 0.5, "rules": False, "policy": {"explore_share": 0.0}}])
    made = client.post("/experiments", json=body, headers=as_(ADMIN))
    assert made.status_code == 201 and made.json()["status"] == "running"
    answer = client.get("/shoppers/ann/recommendations?k=6", headers=as_(READ)).json()
    assert answer["variant"] == f"{body['id']}/without-rules"
    assert any(i["product_id"].startswith("boots") for i in answer["items"])  # the rule is off in this arm
    assert not any(i["exploration"] for i in answer["items"])  # and so is exploration
    # A session is assigned by its own id; complete-the-look joins only when it names a visitor.
    visitor = next(f"visit-{n}" for n in range(100) if assign(Experiment(body["id"], "", (Variant("control", 0.5),
                                                              Variant("without-rules", 0.5))), f"visit-{n}") == "control")
    seen = client.post(f"/sessions/{visitor}/recommendations", json={"items": ["jeans-1"], "k": 3}, headers=as_(READ)).json()
    assert seen["variant"] == f"{body['id']}/control"
    page = client.get("/products/jeans-1/complete-the-look?k=3", headers=as_(READ)).json()
    assert page["variant"] is None  # complete_the_look is not one of its lists
    client.app.state.impressions.flush()
    kept = {i.id: i.variant for i in store.impressions()}
    assert kept[answer["recommendation_id"]] == f"{body['id']}/without-rules"
    assert kept[seen["recommendation_id"]] == f"{body['id']}/control" and kept[page["recommendation_id"]] is None
    assert store.impressions(experiment=body["id"], limit=None) and \
        {i.id for i in store.impressions(experiment=body["id"])} == {answer["recommendation_id"], seen["recommendation_id"]}
    # Ended: served as without it from the next request on; its definition and results stay.
    clock.now += 60
    ended = client.post(f"/experiments/{body['id']}/end", headers=as_(ADMIN)).json()
    assert ended["status"] == "ended"
    assert client.get("/shoppers/ann/recommendations?k=6", headers=as_(READ)).json()["variant"] is None
    assert client.get(f"/experiments/{body['id']}/report", headers=as_(ADMIN)).json()["variants"]["without-rules"]["units"] == 1


def test_experiments_are_refused_with_the_field_and_reason(shop):
    client, *_ = shop
    arms = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]

    def refused(body: dict, code: int = 422) -> str:
        answer = client.post("/experiments", json={"id": "x", "name": "x", "variants": arms, **body}, headers=as_(ADMIN))
        assert answer.status_code == code, answer.text
        return str(answer.json()["detail"])

    assert "add up to 0.9" in refused({"variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.4}]})
    assert "unknown policy setting 'explore'" in refused({"variants": [arms[0], {**arms[1], "policy": {"explore": 0}}]})
    assert "explore_share" in refused({"variants": [arms[0], {**arms[1], "policy": {"explore_share": "lots"}}]})
    assert "'explore_share': Input should be less than or equal to 1" in refused(
        {"variants": [arms[0], {**arms[1], "policy": {"explore_share": 5}}]})
    assert "holdout" in refused({"variants": [arms[0], {"name": "holdout", "share": 0.5}]})
    assert "ends_at" in refused({"ends_at": "2020-01-01T00:00:00Z"})
    assert "pattern" in refused({"id": "a/b"})
    assert "no trained version 'v0' under models/; the versions are none yet" in refused(
        {"variants": [arms[0], {**arms[1], "model": "v0"}]})
    assert "pattern" in refused({"variants": [arms[0], {**arms[1], "model": "../x"}]})
    assert client.post("/experiments", json={"id": "x", "name": "x", "variants": arms}, headers=as_(READ)).status_code == 403
    assert client.post("/experiments", json={"id": "one", "name": "x", "variants": arms}, headers=as_(ADMIN)).status_code == 201
    assert "already exists" in refused({"id": "one"}, 409)
    assert "serves feed lists" in refused({"id": "two"}, 409)  # two experiments never share a list
    assert client.post("/experiments", json={"id": "two", "name": "x", "variants": arms, "lists": ["complete_the_look"]},
                       headers=as_(ADMIN)).status_code == 201
    assert client.get("/experiments/nope/report", headers=as_(ADMIN)).status_code == 404
    assert [e["id"] for e in client.get("/experiments", headers=as_(ADMIN)).json()] == ["one", "two"]


def test_another_worker_serves_the_same_variant_once_it_reads_the_change(tmp_path):
    store = build(tmp_path)
    clock = Clock()
    settings = Settings(home=tmp_path / "home", api_keys=KEYS)
    first = TestClient(create_app(settings, store, vectors=None, clock=clock))
    second_app = create_app(settings, store, vectors=None, clock=clock)
    second = TestClient(second_app)
    body = experiment_where("ann", "b", variants=[{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}])
    assert first.post("/experiments", json=body, headers=as_(ADMIN)).status_code == 201
    second_app.state.freshness.catch_up()  # what its background poll does every LOOKGRAPH_FRESHNESS_SECONDS
    assert second.get("/shoppers/ann/recommendations", headers=as_(READ)).json()["variant"] == f"{body['id']}/b"
    assert first.post(f"/experiments/{body['id']}/end", headers=as_(ADMIN)).status_code == 200
    second_app.state.freshness.catch_up()
    assert second.get("/shoppers/ann/recommendations", headers=as_(READ)).json()["variant"] is None


def test_the_report_counts_units_and_what_they_bought_from_their_lists(shop):
    """Units are shoppers; a purchase of an item shown is a conversion of its unit's variant; a
    purchase of something else counts only as any_purchase."""
    client, store, clock, _ = shop
    arms = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]
    assert client.post("/experiments", json={"id": "sold", "name": "x", "variants": arms}, headers=as_(ADMIN)).status_code == 201
    experiment = store.experiments()[0]
    bought = {}
    for n in range(12):
        shopper = f"s{n}"
        client.post("/events", json={"event_id": f"{shopper}-v", "session_id": f"{shopper}-1", "product_id": "jeans-1",
                                     "type": "view", "shopper_id": shopper}, headers=as_(EVENTS))
        feed = client.get(f"/shoppers/{shopper}/recommendations?k=4", headers=as_(READ)).json()
        assert feed["variant"] == f"sold/{assign(experiment, shopper)}"
        client.app.state.impressions.flush()
        if n % 3 == 0:  # a third buy the first item shown; one more buys something never shown
            product = feed["items"][0]["product_id"]
            bought[shopper] = product
            client.post("/events", json={"event_id": f"{shopper}-p", "session_id": f"{shopper}-1", "product_id": product,
                                         "type": "purchase", "shopper_id": shopper}, headers=as_(EVENTS))
    shown_to_s1 = {i.product_id for imp in store.impressions(shopper_id="s1") for i in imp.items}
    other = next(p for p in ("seat-1", "seat-2", "coffee-1", "shirt-2") if p not in shown_to_s1)
    client.post("/events", json={"event_id": "s1-p", "session_id": "s1-1", "product_id": other, "type": "purchase",
                                 "shopper_id": "s1"}, headers=as_(EVENTS))
    clock.now += DAY / 2
    report = client.get("/experiments/sold/report", headers=as_(ADMIN)).json()
    arm_of = {f"s{n}": assign(experiment, f"s{n}") for n in range(12)}
    for name in ("a", "b"):
        units = [s for s, arm in arm_of.items() if arm == name]
        figures = report["variants"][name]
        assert figures["units"] == len(units)
        assert figures["conversion"] == pytest.approx(sum(s in bought for s in units) / max(len(units), 1), abs=1e-6)
        assert figures["any_purchase"] == pytest.approx(sum(s in bought or s == "s1" for s in units) / max(len(units), 1),
                                                        abs=1e-6)
    assert report["comparisons"][0]["decision"] == "too few units yet"  # 12 units decide nothing
    assert {look["variant"] for look in report["looks"]} == {"a", "b"} and report["status"] == "running"
    assert NOW < report["until"] <= clock.now


def daily_peeks(p_a: float, p_b: float, experiments: int, days: int, per_day: int, seed: int) -> dict:
    """`experiments` simulated A/B tests of 0/1 outcomes, each looked at after every day."""
    rng = np.random.default_rng(seed)
    n = np.arange(1, days + 1) * per_day
    x_a = rng.binomial(per_day, p_a, (experiments, days)).cumsum(axis=1)
    x_b = rng.binomial(per_day, p_b, (experiments, days)).cumsum(axis=1)
    found, covered, t_found = np.zeros(experiments, bool), np.ones(experiments, bool), np.zeros(experiments, bool)
    for e in range(experiments):
        for d in range(days):
            arms = [sequential.Arm(n[d], x / n[d], x / n[d] * (1 - x / n[d]) * n[d] / (n[d] - 1), x)
                    for x in (x_a[e, d], x_b[e, d])]
            c = sequential.decide(*arms, sequential.scale(arms, 0.1), 0.05)
            found[e] |= c is not None and c.p_value < 0.05
            covered[e] &= c is None or c.low <= p_b - p_a <= c.high
            z = (arms[1].mean - arms[0].mean) / np.sqrt((arms[0].var + arms[1].var) / n[d])
            t_found[e] |= abs(z) > 1.96  # the fixed-horizon test, read every day
    return {"positive": found.mean(), "covered": covered.mean(), "peeking_t_test": t_found.mean()}


def test_looking_every_day_keeps_the_false_positive_rate_where_peeking_at_a_t_test_does_not():
    got = daily_peeks(0.05, 0.05, experiments=200, days=14, per_day=500, seed=7)
    assert got["positive"] <= 0.05  # identical arms: at most 5% declared different, at any of 14 looks
    assert got["peeking_t_test"] > 0.10  # the same data through a t-test read daily: the classic trap
    effect = daily_peeks(0.05, 0.075, experiments=100, days=14, per_day=500, seed=8)
    assert effect["positive"] >= 0.8 and effect["covered"] >= 0.9


def test_a_variant_serves_an_earlier_trained_version_and_every_worker_reads_it_before_serving(tmp_path):
    from lookgraph.embeddings.publish import train_and_publish
    from lookgraph.embeddings.train import TrainConfig
    from lookgraph.loaders.demo import DemoSpec

    from .conftest import demo_in_store

    home = tmp_path / "home"
    store = demo_in_store(home, DemoSpec(products=300, shoppers=30, events=2_000, seed=6))
    config = TrainConfig(dim=16, epochs=1, seed=1, threads=1)
    earlier = train_and_publish(store, home, config, mine=False)[0].name
    later = train_and_publish(store, home, TrainConfig(dim=16, epochs=1, seed=2, threads=1), mine=False)[0].name
    assert earlier != later  # even when trained within the same second
    settings = Settings(home=home, api_keys=KEYS)
    first, second = create_app(settings, store), create_app(settings, store)
    shopper = sorted(store.known_ids("shoppers"))[0]
    body = experiment_where(shopper, "earlier", variants=[{"name": "later", "share": 0.5},
                                                          {"name": "earlier", "share": 0.5, "model": earlier}])
    made = TestClient(first).post("/experiments", json=body, headers=as_(ADMIN))
    assert made.status_code == 201 and made.json()["variants"][1]["model"] == earlier
    second.state.freshness.catch_up()
    assert earlier in second.state.engine._versions  # read when seen, not by the first request
    for app in (first, second):
        answer = TestClient(app).get(f"/shoppers/{shopper}/recommendations", headers=as_(READ)).json()
        assert (answer["variant"], answer["model"]) == (f"{body['id']}/earlier", earlier)
    other = next(s for s in sorted(store.known_ids("shoppers"))
                 if assign(Experiment(body["id"], "", (Variant("later", 0.5), Variant("earlier", 0.5))), s) == "later")
    assert TestClient(first).get(f"/shoppers/{other}/recommendations", headers=as_(READ)).json()["model"] == later
    first.state.impressions.flush()
    assert {i.model for i in store.impressions(experiment=body["id"], limit=None) if i.variant.endswith("/earlier")} == {earlier}
    # An erased shopper is forgotten by the earlier version in memory too.
    engine = second.state.engine
    assert shopper in engine.version(earlier)[1].shopper_row
    assert TestClient(second).delete(f"/shoppers/{shopper}", headers=as_(ADMIN)).status_code == 200
    assert shopper not in engine.version(earlier)[1].shopper_row
    store.close()


def test_a_rule_set_under_test_applies_only_to_its_variant_even_with_the_other_rules_off(shop):
    client, store, clock, _ = shop
    body = experiment_where("ann", "new-rules", lists=["feed"], variants=[
        {"name": "control", "share": 0.5}, {"name": "new-rules", "share": 0.5, "rules": False}])
    assert client.post("/experiments", json=body, headers=as_(ADMIN)).status_code == 201
    everyone = client.post("/rules", json={"id": "no-belts", "action": "exclude", "category": "women/accessories/belts"},
                           headers=as_(ADMIN))
    assert everyone.status_code == 201
    made = client.post("/rules", json={"id": "no-boots-in-test", "action": "exclude", "category": "women/shoes/boots",
                                       "variant": f"{body['id']}/new-rules"}, headers=as_(ADMIN))
    assert made.status_code == 201 and made.json()["variant"] == f"{body['id']}/new-rules"
    assert [r.variant for r in store.rules(["no-boots-in-test"])] == [f"{body['id']}/new-rules"]
    tested = client.get("/shoppers/ann/recommendations?k=12&explore=false", headers=as_(READ)).json()
    assert tested["variant"] == f"{body['id']}/new-rules"
    assert not any(i["product_id"].startswith("boots") for i in tested["items"])  # its own rule applies
    assert any(i["product_id"].startswith("belt") for i in tested["items"])  # everyone's does not
    control = next(s for s in ("bob", "cat", *(f"crowd-{i}" for i in range(4))) if assign(Experiment(body["id"], "", (
        Variant("control", 0.5), Variant("new-rules", 0.5))), s) == "control")
    seen = client.get(f"/shoppers/{control}/recommendations?k=12&explore=false", headers=as_(READ)).json()
    assert seen["variant"] == f"{body['id']}/control"
    assert not any(i["product_id"].startswith("belt") for i in seen["items"])  # everyone's applies
    assert any(i["product_id"].startswith("boots") for i in seen["items"])  # the variant's does not
    # Removed: the variant's next answer no longer applies it.
    assert client.delete("/rules/no-boots-in-test", headers=as_(ADMIN)).status_code == 204
    again = client.get("/shoppers/ann/recommendations?k=12&explore=false", headers=as_(READ)).json()
    assert any(i["product_id"].startswith("boots") for i in again["items"])
    assert "pattern" in client.post("/rules", json={"id": "bad", "action": "exclude", "category": "women/shoes/boots",
                                                    "variant": "no-slash"}, headers=as_(ADMIN)).text
