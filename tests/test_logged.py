"""The ranker learning from logged feeds: what was shown and taken, the position bias, and the
offline estimate of another ordering."""

from __future__ import annotations

import numpy as np
import pytest

from lookgraph.recommend.logged import (
    DEPTH, LoggedList, LoggedQuery, estimate, examination, logged_feeds, training_groups,
)

from .test_exploration import demo_served  # noqa: F401 (a fixture)
from .test_api import EVENTS, READ, as_


def test_examination_falls_with_the_slot_and_starts_at_one():
    lists = [LoggedList("u", 0.0, tuple(f"p{i}" for i in range(10)),
                        frozenset({0} | ({1} if n % 2 else set()) | ({2} if n % 4 == 0 else set()) | ({6} if n == 0 else set())))
             for n in range(100)]
    exam = examination(lists)
    assert exam[0] == 1.0 and exam[1] == pytest.approx(0.5) and exam[2] == pytest.approx(0.25)
    assert exam[6] == 0.05  # made non-increasing: a lucky click low down does not raise its slot
    assert np.all(np.diff(exam) <= 0) and exam.min() >= 0.05 and len(exam) == DEPTH
    assert np.all(examination([]) == 1.0)  # nothing clicked yet: no bias assumed


def test_the_estimate_scores_the_logged_order_exactly_and_rewards_putting_clicks_higher():
    exam = np.array([1.0, 0.6, 0.4, 0.3] + [0.2] * (DEPTH - 4))
    x = np.array([[3.0], [2.0], [1.0], [0.0]])  # one feature: the logged order's score
    q = LoggedQuery(x, np.array([False, False, True, False]), np.array([0, 1, 2, 3]))
    assert estimate(lambda f: f[:, 0], [q], exam) == pytest.approx(1.0)  # as served: its own click
    assert estimate(lambda f: -np.abs(f[:, 0] - 1.0), [q], exam) == pytest.approx(1.0 / 0.4)  # the click first
    assert estimate(lambda f: -f[:, 0], [q], exam) == pytest.approx(0.6 / 0.4)  # reversed: slot 1
    group = training_groups([q], exam)[0]
    assert group[1].tolist() == [0, 0, 1, 0] and group[2].tolist() == pytest.approx([1, 1, 2.5, 1])


def test_logged_feeds_read_what_was_shown_and_which_slots_were_taken(demo_served):  # noqa: F811
    client, store, clock = demo_served
    feed = client.get("/shoppers/u000003/recommendations?k=10", headers=as_(READ)).json()
    client.app.state.impressions.flush()
    taken = feed["items"][2]["product_id"]
    assert client.post("/events", json={"event_id": "took", "session_id": "later", "product_id": taken, "type": "view",
                                        "shopper_id": "u000003", "recommendation_id": feed["recommendation_id"]},
                       headers=as_(EVENTS)).status_code == 200
    assert logged_feeds(store, 1.0, clock()) == []  # its reward window is still open
    clock.now += 2 * 3600
    [logged] = logged_feeds(store, 1.0, clock())
    assert logged.shopper_id == "u000003" and logged.shown == tuple(i["product_id"] for i in feed["items"])
    assert logged.clicked == frozenset({2})
