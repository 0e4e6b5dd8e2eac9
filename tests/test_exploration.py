"""Exploration that learns: the bandit's counts from what the feeds' exploration slots earned,
kept in the store, and the draws that follow them."""

from __future__ import annotations

from collections import Counter

import pytest

from lookgraph.api.app import create_app
from lookgraph.recommend import exploration, policies
from lookgraph.recommend.engine import Ask
from lookgraph.recommend.request import for_shopper as shopper_request
from lookgraph.settings import Settings

from lookgraph.loaders.demo import END_TS
from lookgraph.loaders.native import NativeSource
from lookgraph.loaders.pipeline import load

from .scenario import Clock
from .test_api import EVENTS, KEYS, READ, TestClient, as_
from .test_merchandising import shop  # noqa: F401 (a fixture)


@pytest.fixture
def demo_served(tmp_path, store, demo_folder):
    """The small seeded demo shop (feeds long enough to explore) in each store."""
    load(NativeSource(demo_folder), store)
    clock = Clock(END_TS + 3600)
    client = TestClient(create_app(Settings(home=tmp_path / "home", api_keys=KEYS), store, vectors=None, clock=clock))
    return client, store, clock


def test_the_draw_follows_what_each_group_earned_and_explores_only_when_it_beats_the_ranking(shop):  # noqa: F811
    client, store, clock = shop
    engine = client.app.state.engine
    state = shopper_request(engine, "ann", Ask(k=10)).state
    trending = engine.graph.trending()
    groups, _, exploit = policies.exploration_draws(state, trending, 0, Counter())
    assert exploit == 0.0 and len(groups) >= 2  # nothing counted yet: every slot explores
    good, poor = groups[-1], groups[0]
    learned = {g: (400.0, 4.0) for g in groups} | {good: (400.0, 120.0), policies.EXPLOIT: (400.0, 40.0)}
    firsts = Counter(policies.exploration_draws(state, trending, day, Counter(), arms=learned)[0][0] for day in range(60))
    assert firsts[good] == 60 and firsts[poor] == 0  # the group that earned is drawn first
    unseen = {g: counts for g, counts in learned.items() if g != poor}  # never shown: drawn high until it is
    assert Counter(policies.exploration_draws(state, trending, day, Counter(), arms=unseen)[0][0]
                   for day in range(60))[poor] > 20
    losing = {g: (400.0, 2.0) for g in groups} | {policies.EXPLOIT: (400.0, 200.0)}
    assert not any(policies.explore_groups(state, trending, 2, day, Counter(), arms=losing) for day in range(30))
    assert all(len(policies.explore_groups(state, trending, 2, day, Counter())) == 2 for day in range(5))


def test_what_exploration_earned_is_counted_once_into_the_store_and_read_by_the_engine(demo_served):
    client, store, clock = demo_served
    engine = client.app.state.engine
    shopper = "u000003"
    feed = client.get(f"/shoppers/{shopper}/recommendations?k=10", headers=as_(READ)).json()
    explored = [(i, item) for i, item in enumerate(feed["items"]) if item["exploration"]]
    assert explored, "the scenario's feed explores"
    position, item = explored[0]
    client.app.state.impressions.flush()
    click = {"event_id": "explored-click", "session_id": "later", "product_id": item["product_id"], "type": "view",
             "shopper_id": shopper, "recommendation_id": feed["recommendation_id"]}
    assert client.post("/events", json=click, headers=as_(EVENTS)).status_code == 200
    group_of = lambda pid: engine.graph.categories.group(engine.graph.cards([pid])[pid].category)  # noqa: E731
    assert exploration.refresh(store, group_of, clock())["lists"] == 0  # its reward window is still open
    clock.now += exploration.REWARD_WINDOW + 60
    counted = exploration.refresh(store, group_of, clock())
    arms = counted["arms"]
    assert arms[group_of(item["product_id"])][1] == pytest.approx(1.0, abs=0.01)  # the click, on its group's arm
    assert sum(shown for shown, _ in arms.values()) == pytest.approx(2.0, abs=0.01)  # two slots of 10: 20%
    assert exploration.refresh(store, group_of, clock()) is None  # nothing new: nothing counted twice
    assert store.save_exploration_state({**counted, "through": clock()}, expected=counted["through"] - 1) is False
    assert engine.exploration is None
    client.app.state.freshness.catch_up()  # every worker reads the saved counts
    assert engine.exploration == exploration.arms_of(store.exploration_state())
    assert engine.exploration[group_of(item["product_id"])][1] == pytest.approx(1.0, abs=0.01)
