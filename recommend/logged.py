"""Learning from what the feeds showed: the ranker's training data from logged impressions, and
an offline estimate of a ranker against the one that served them.

A logged feed (`LoggedList`) is a list the API served to a known shopper, kept in the store
(`impressions.py`), with the slots the shopper engaged with (a view, cart or purchase credited to
it within `REWARD_WINDOW`, `attribution.py`). A click says more than a skip, but where it
happened matters: a slot low in the list is looked at less often. The **position bias** is
estimated from the logs themselves:

    exam(k) = click-through at slot k / click-through at slot 0      (made non-increasing)

It over-states the bias (items are ranked, so the first slot also holds the better item), which
makes the correction below err on the side of trusting low clicks more.

- *Training* (`lookgraph train --impressions-days D`): each logged feed is one more query for
  LambdaRank. Its rows are the shown items, with their features as the engine computes them at
  the moment it was served (`Engine.candidate_features`, the clock set back); a clicked item is
  relevant and weighs 1 / exam(its slot) (inverse propensity: a click where few look counts
  more), a skipped one is not. The last fifth of the logged feeds, by time, are held out.
- *The offline estimate* (item-position inverse propensity scoring, Li et al. 2018): a ranker
  re-orders each held-out feed's shown items among the slots they held; every click moves with
  its item, weighed by how
  much more or less looked at its new slot is:

      estimated clicks = sum over clicks of exam(new slot) / exam(logged slot)

  The logged order scores its own clicks exactly. A ranker that puts clicked items higher
  scores more. Items the logged feed did not show cannot be judged (they count nothing), so the
  estimate compares orderings of what was shown, not new candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attribution import attribute
from .engine import Ask, Engine
from .exploration import REWARD_WINDOW
from .policies import DAY

DEPTH = 20
"""Slots whose examination is estimated; deeper ones take the last slot's."""
HELD_OUT_SHARE = 0.2


@dataclass(frozen=True)
class LoggedList:
    shopper_id: str
    at: float
    shown: tuple[str, ...]
    clicked: frozenset[int]
    """The slots engaged with."""


def logged_feeds(store, days: float, now: float) -> list[LoggedList]:
    """The feeds served to known shoppers in the last `days` days whose reward window has
    passed, oldest first."""
    since, until = now - days * DAY, now - REWARD_WINDOW
    feeds = [i for i in store.impressions(since=since, until=until, limit=None)
             if i.list == "feed" and i.shopper_id and i.product_id is None and i.items]
    clicked: dict[str, set[int]] = {}
    for credit in attribute(feeds, store.outcomes_between(since, until + REWARD_WINDOW), REWARD_WINDOW):
        clicked.setdefault(credit.impression.id, set()).add(credit.position)
    return [LoggedList(f.shopper_id, f.at, tuple(item.product_id for item in f.items), frozenset(clicked.get(f.id, ())))
            for f in feeds]


def examination(lists: list[LoggedList]) -> np.ndarray:
    """exam(k) for k < `DEPTH` (see the module's docstring), at least 0.05."""
    shown, clicks = np.zeros(DEPTH), np.zeros(DEPTH)
    for logged in lists:
        n = min(len(logged.shown), DEPTH)
        shown[:n] += 1
        for slot in logged.clicked:
            clicks[min(slot, DEPTH - 1)] += 1
    rate = np.divide(clicks, shown, out=np.zeros(DEPTH), where=shown > 0)
    if rate[0] <= 0:
        return np.ones(DEPTH)
    return np.clip(np.minimum.accumulate(rate / rate[0]), 0.05, 1.0)


@dataclass
class LoggedQuery:
    """One logged feed as the ranker sees it: the shown items the engine still finds among its
    candidates, their features, whether each was clicked and the slot it was shown in."""

    x: np.ndarray
    clicked: np.ndarray
    slots: np.ndarray


def logged_queries(engine: Engine, lists: list[LoggedList], known_shoppers: set[str]) -> list[LoggedQuery]:
    """Each logged feed's shown items with their features at the moment it was served."""
    queries = []
    for logged in lists:
        if logged.shopper_id not in known_shoppers:
            continue
        engine.clock.now = logged.at
        ids, x = engine.candidate_features(logged.shopper_id, Ask(k=DEPTH, explore=False))
        row = {pid: i for i, pid in enumerate(ids)}
        kept = [(slot, row[pid]) for slot, pid in enumerate(logged.shown) if pid in row]
        if len(kept) < 2:
            continue
        slots = np.array([slot for slot, _ in kept])
        queries.append(LoggedQuery(x[[r for _, r in kept]], np.array([slot in logged.clicked for slot in slots]), slots))
    return queries


def training_groups(queries: list[LoggedQuery], exam: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(features, relevance, weight) per logged feed: a click weighs 1 / exam(its slot)."""
    return [(q.x, q.clicked.astype(np.float64),
             np.where(q.clicked, 1.0 / exam[np.minimum(q.slots, DEPTH - 1)], 1.0)) for q in queries]


def estimate(score, queries: list[LoggedQuery], exam: np.ndarray) -> float:
    """The clicks a ranker (`score(features)`) would have had on the held-out feeds, by
    item-position inverse propensity scoring."""
    total = 0.0
    for q in queries:
        if not q.clicked.any():
            continue
        order = np.argsort(-score(q.x), kind="stable")
        new_slot = np.empty(len(order), dtype=np.int64)
        new_slot[order] = np.sort(q.slots)  # the same slots, filled in the ranker's order
        logged = exam[np.minimum(q.slots, DEPTH - 1)]
        moved = exam[np.minimum(new_slot, DEPTH - 1)]
        total += float((moved / logged)[q.clicked].sum())
    return total
