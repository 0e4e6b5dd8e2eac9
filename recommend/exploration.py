"""What exploration earned: the bandit's counts, kept in the store and read by every worker.

A feed's last `explore_slots` slots (`arrange`) are exploration's. Each such slot is one pull
of an arm: the category group of the item it showed when it explored, or `EXPLOIT` when it
showed the ranking's own item instead. The reward is engagement: a view, cart or purchase of
that item credited to the list (`attribution.py`) within `REWARD_WINDOW`. `refresh` counts the
feeds served since the last count whose reward window has passed, adds them to the counts
(older counts halved every `HALF_LIFE_DAYS`, so that the arms follow the shop's season) and
saves them in the store by compare-and-set: when two workers count at once, one saves and the
other's count is dropped, so no list is counted twice. Every worker reads the saved counts
(`freshness.py`) and draws from them (`policies.exploration_draws`).
"""

from __future__ import annotations

from collections.abc import Callable

from ..graph.store import GraphStore
from .attribution import attribute
from .policies import DAY, EXPLOIT

REWARD_WINDOW = 3_600.0
"""An engagement this long after the list at most rewards its slot."""
HALF_LIFE_DAYS = 7.0
FIRST_DAYS = 14.0
"""The first count reads the feeds of this many days back."""


def refresh(store: GraphStore, group_of: Callable[[str], str | None], now: float) -> dict | None:
    """Count the feeds whose reward window has passed since the last count; the saved state,
    or None when there was nothing new or another process saved first."""
    state = store.exploration_state()
    since = state["through"] if state else now - FIRST_DAYS * DAY
    until = now - REWARD_WINDOW
    if until <= since:
        return None
    feeds = [i for i in store.impressions(since=since, until=until, limit=None)
             if i.list == "feed" and i.product_id is None and i.context.get("explore_slots")]
    rewarded = {(c.impression.id, c.position)
                for c in attribute(feeds, store.outcomes_between(since, until + REWARD_WINDOW), REWARD_WINDOW)}
    decay = 0.5 ** ((until - since) / (HALF_LIFE_DAYS * DAY))
    arms = {arm: [shown * decay, won * decay] for arm, (shown, won) in (state or {}).get("arms", {}).items()}
    for feed in feeds:
        for position in range(max(0, len(feed.items) - feed.context["explore_slots"]), len(feed.items)):
            item = feed.items[position]
            arm = (group_of(item.product_id) or EXPLOIT) if item.exploration else EXPLOIT
            counts = arms.setdefault(arm, [0.0, 0.0])
            counts[0] += 1
            counts[1] += (feed.id, position) in rewarded
    saved = {"through": until, "updated_at": now, "lists": len(feeds),
             "arms": {arm: [round(shown, 4), round(won, 4)] for arm, (shown, won) in sorted(arms.items())}}
    return saved if store.save_exploration_state(saved, state["through"] if state else None) else None


def arms_of(state: dict | None) -> dict[str, tuple[float, float]] | None:
    """The saved counts as `policies.exploration_draws` takes them: {arm: (shown, clicked)}."""
    return None if state is None else {arm: (shown, won) for arm, (shown, won) in state["arms"].items()}
