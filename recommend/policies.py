"""The policies that keep personalization from its classic failures. Each is on by default,
configurable through `PolicyConfig` (environment: `LOOKGRAPH_POLICY_*`), and tested in
`tests/test_policies.py`.

1. One-time purchases: after a purchase in a leaf category whose buyers rarely buy in it again,
   neither the same thing later nor another product of it (learned: `Traversal.repurchase()`),
   that category is not recommended to that shopper (a sofa); a category shoppers come back
   to for new items (books, basics) stays open; the item bought is never offered again;
   consumables come back near their learned cycle, as a restock of what they bought.
2. Seen is not wanted: what a shopper bought, dismissed or merely viewed is not recommended
   again (a view can be research, or advice for a friend); the one thing offered back is an
   item carted and not bought in the last `return_days`, in a visible slot ("still in your
   bag"); items shown many times without engagement fade; a dismissal lowers the looks that
   contain the item; items viewed again and again without a cart count less as taste.
3. Shopping for someone else: a gift session, or one far from the shopper's profile, shapes
   that session's recommendations but never the long-term profile.
4. Travel: a session's location is context for that session only, and suggestions bound to a
   location expire; the home location never moves.
5. Variety: up to a share of a feed's slots explores category groups outside the shopper's
   usual taste, by Thompson sampling over what exploration earned (a bandit fed by the
   attributed views, carts and purchases: `exploration.py`), seeded per shopper and day, so no
   two shoppers get the same list; a slot explores only when a group's draw beats showing the
   ranking's own item; only in the departments the shopper engaged with (or, with no history
   yet, any).
6. Contact: outbound picks respect a per-shopper frequency cap and a quiet period.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..graph.model import Event
from ..graph.traversal import CategoryTree, ProductCard, Repurchase, Trending

DAY = 86_400.0


class PolicyConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOOKGRAPH_POLICY_")

    one_time_purchases: bool = True
    one_time_rate: float = Field(0.1, ge=0, le=1)
    """A leaf category whose buyers buy again less often than this is a one-time purchase."""
    min_buyers: int = Field(3, ge=1)
    consumable_rate: float = Field(0.3, ge=0, le=1)
    """A leaf category whose buyers buy again at least this often is a consumable."""
    restock_after: float = Field(0.75, gt=0)
    restock_until: float = Field(2.0, gt=0)
    """A consumable comes back between these shares of its learned cycle since the last purchase
    (later than that, the shopper has moved on)."""
    seen_is_not_wanted: bool = True
    impressions_to_fade: int = Field(5, ge=1)
    repeated_views: int = Field(3, ge=1)
    return_days: float = Field(7.0, ge=0)
    """An item carted (and not bought) within this many days comes back, once, in a visible slot."""
    gift_and_profile_shift: bool = True
    travel: bool = True
    location_ttl_hours: float = Field(24.0, ge=0)
    explore_share: float = Field(0.2, ge=0, le=1)
    """At most this share of a feed's slots explore."""
    explore_learns: bool = True
    """Each exploration slot explores only when a group's draw beats not exploring, from what
    exploration earned (`exploration_draws`); off: every one of them explores."""
    contact_cap: int = Field(2, ge=0)
    contact_window_days: float = Field(7.0, ge=0)
    contact_quiet_hours: float = Field(24.0, ge=0)
    session_gap_minutes: float = Field(30.0, gt=0)
    session_full_events: int = Field(3, ge=1)
    """Events of the current session after which it weighs as much as the item in view would;
    before, each counts a share (one view outside the profile must not rewrite the feed)."""


def policy_config() -> PolicyConfig:
    """The policies' settings from the environment, or `SettingsError` naming the first bad one."""
    from pydantic import ValidationError

    from ..settings import SettingsError

    try:
        return PolicyConfig()
    except ValidationError as err:
        first = err.errors()[0]
        raise SettingsError(f"LOOKGRAPH_POLICY_{str(first['loc'][0]).upper()}: {first['msg']} "
                            f"(got {first.get('input')!r})") from None


@dataclass
class SessionView:
    id: str
    events: list[Event]
    gift: bool = False
    off_profile: bool = False
    location: str | None = None

    @property
    def started(self) -> float:
        return self.events[0].ts

    @property
    def ended(self) -> float:
        return self.events[-1].ts


@dataclass
class ShopperState:
    """What the engine knows of one shopper at one moment, read from their events."""

    shopper_id: str | None
    home: str | None
    sessions: list[SessionView]
    current: SessionView | None
    profile_events: list[Event]
    """Events of sessions that count for the long-term profile (not gifts, not off-profile)."""
    interacted: set[str] = field(default_factory=set)
    dismissed: set[str] = field(default_factory=set)
    views_without_cart: Counter = field(default_factory=Counter)
    purchases: list[Event] = field(default_factory=list)
    profile_groups: Counter = field(default_factory=Counter)
    touched_groups: set = field(default_factory=set)
    """The category groups of everything the shopper touched, gifts and trips included."""


def shopper_state(shopper_id: str | None, home: str | None, events: list[Event], cards: dict[str, ProductCard],
                  tree: CategoryTree, config: PolicyConfig, now: float, session_id: str | None = None,
                  gift: bool | None = None) -> ShopperState:
    """`cards`: the card of every product the events name (products since deleted are left out)."""
    by_session: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_session[e.session_id].append(e)
    sessions = [SessionView(sid, evs, gift=any(e.gift for e in evs), location=evs[0].location)
                for sid, evs in sorted(by_session.items(), key=lambda kv: kv[1][0].ts)]

    # The current session: the one named, else the latest if it is still going on.
    current = next((s for s in sessions if s.id == session_id), None)
    if current is None and sessions and session_id is None and now - sessions[-1].ended <= config.session_gap_minutes * 60:
        current = sessions[-1]
    if current is not None and gift is not None:
        current.gift = gift

    group_of = {pid: tree.group(card.category) for pid, card in cards.items()}
    if config.gift_and_profile_shift:
        groups = {s.id: {group_of[e.product_id] for e in s.events if e.product_id in group_of} - {None}
                  for s in sessions}
        counts = Counter(g for s in sessions if not s.gift for g in groups[s.id])
        for s in sessions:
            # Far from the profile: none of its groups appears in the shopper's other sessions.
            others = {g for g, n in counts.items() if n > (g in groups[s.id] and not s.gift)}
            s.off_profile = not s.gift and len(sessions) >= 4 and bool(groups[s.id]) and not (groups[s.id] & others)
        own = [s for s in sessions if not s.gift]
        if sum(s.off_profile for s in own) * 2 > len(own):
            # Most sessions far from all the others: variety is this shopper's taste, not a
            # detour from it (else a shopper of many tastes would have no profile at all).
            for s in own:
                s.off_profile = False
    counted = [s for s in sessions if not (config.gift_and_profile_shift and (s.gift or s.off_profile))]
    state = ShopperState(shopper_id, home or _usual_location(counted), sessions, current,
                         [e for s in counted for e in s.events])
    carted = set()
    state.touched_groups = {group_of[e.product_id] for e in events if e.product_id in group_of} - {None}
    for e in events:
        state.interacted.add(e.product_id)
        if e.type == "dismiss":
            state.dismissed.add(e.product_id)
        elif e.type in ("cart", "purchase"):
            carted.add(e.product_id)
    # A purchase is the shopper's own unless the session says it was a gift: one-time purchases
    # and restocks read every non-gift session, even one far from their usual taste.
    state.purchases = [e for s in sessions if not s.gift for e in s.events if e.type == "purchase"]
    for e in state.profile_events:
        if e.type == "view" and e.product_id not in carted:
            state.views_without_cart[e.product_id] += 1
        if e.product_id in group_of:
            state.profile_groups[group_of[e.product_id]] += 1
    return state


def _usual_location(sessions: list[SessionView]) -> str | None:
    """Where most of the shopper's own sessions start (travel never outvotes home)."""
    counts = Counter(s.location for s in sessions if s.location)
    return counts.most_common(1)[0][0] if counts else None


# -- 1. one-time purchases and restocks ---------------------------------------------------
def owned_categories(state: ShopperState, cards: dict[str, ProductCard], repurchase: dict[str, Repurchase],
                     config: PolicyConfig, now: float) -> set[str]:
    """Leaf categories not to recommend: one-time purchases made, consumables just restocked."""
    if not config.one_time_purchases:
        return set()
    blocked = set()
    for e in state.purchases:
        leaf = cards[e.product_id].category if e.product_id in cards else None
        stats = repurchase.get(leaf) if leaf else None
        if stats is None or stats.buyers < config.min_buyers:
            continue
        if stats.rate < config.one_time_rate and stats.return_rate < config.one_time_rate:
            blocked.add(leaf)
        elif stats.rate >= config.consumable_rate and stats.cycle_days \
                and now - e.ts < config.restock_after * stats.cycle_days * DAY:
            blocked.add(leaf)  # just restocked: not yet
    return blocked


def restocks(state: ShopperState, cards: dict[str, ProductCard], repurchase: dict[str, Repurchase],
             config: PolicyConfig, now: float) -> list[tuple[str, float, float]]:
    """(product id, days since bought, cycle days) for consumables due again."""
    if not config.one_time_purchases:
        return []
    last: dict[str, float] = {}
    for e in state.purchases:
        last[e.product_id] = max(last.get(e.product_id, 0.0), e.ts)
    due = []
    for pid, ts in last.items():
        leaf = cards[pid].category if pid in cards else None
        stats = repurchase.get(leaf) if leaf else None
        if stats and stats.buyers >= config.min_buyers and stats.rate >= config.consumable_rate and stats.cycle_days:
            days = (now - ts) / DAY
            if config.restock_after * stats.cycle_days <= days <= config.restock_until * stats.cycle_days:
                due.append((pid, days, stats.cycle_days))
    return due


# -- 2. seen is not wanted ---------------------------------------------------------------
def touched(state: ShopperState, config: PolicyConfig, now: float) -> tuple[set[str], list[tuple[str, str, int, float]]]:
    """(the products not to offer again, the products the shopper is coming back to as
    (id, "cart", 1, days since)). Everything the shopper touched is not offered again: bought
    or dismissed (a consumable returns as a restock), and merely viewed, since a view can be
    research or advice for a friend, and a list that repeats what was looked at is the classic
    failure; the one exception is what they carted and did not buy in the last `return_days`,
    which comes back in a visible slot ("still in your bag")."""
    if not config.seen_is_not_wanted:
        return set(), []
    last: dict[str, float] = {}
    carted, bought = set(), set(state.dismissed)
    horizon = now - config.return_days * DAY
    for s in state.sessions:
        for e in s.events:
            last[e.product_id] = max(last.get(e.product_id, e.ts), e.ts)
            if e.type == "purchase":
                bought.add(e.product_id)
            elif e.type == "cart" and e.ts >= horizon:
                carted.add(e.product_id)
    coming_back = [(pid, "cart", 1, (now - last[pid]) / DAY) for pid in sorted(carted - bought, key=lambda p: -last[p])]
    return set(last) - {pid for pid, *_ in coming_back}, coming_back


def fade(product_id: str, state: ShopperState, impressions: int, config: PolicyConfig) -> float:
    """Multiplier for a candidate: 1 unless shown again and again without engagement."""
    if not config.seen_is_not_wanted or impressions < config.impressions_to_fade:
        return 1.0
    return 0.5 ** (impressions - config.impressions_to_fade + 1)


def session_weight(state: ShopperState, config: PolicyConfig) -> float:
    """How much the current session's events count, from 0 to 1: by how many there are (one
    view says little of a shopper with a history; several consistent ones say more)."""
    if state.current is None:
        return 0.0
    if not any(e.session_id != state.current.id for e in state.profile_events):
        return 1.0  # no history beside it (a visitor, a first session): the session is all there is
    return min(1.0, len(state.current.events) / max(config.session_full_events, 1))


def anchor_weight(product_id: str, state: ShopperState, config: PolicyConfig) -> float:
    """How much an item the shopper touched says about their taste: viewed over and over
    without a cart, less and less."""
    views = state.views_without_cart.get(product_id, 0)
    if not config.seen_is_not_wanted or views < config.repeated_views:
        return 1.0
    return 0.5 ** (views - config.repeated_views + 1)


# -- 4. travel ----------------------------------------------------------------------------
def trip_location(state: ShopperState, config: PolicyConfig, now: float, asked: str | None) -> str | None:
    """The location that bounds this moment's suggestions: the one asked for, or the current
    session's while it lasts (and at most `location_ttl_hours`) when it is away from home."""
    if not config.travel:
        return None
    if asked:
        return asked if asked != state.home else None
    current = state.current
    if current and current.location and current.location != state.home \
            and now - current.started <= config.location_ttl_hours * 3600:
        return current.location
    return None


# -- 5. variety ---------------------------------------------------------------------------
def exploration_draws(state: ShopperState, trending: Trending, day: int, shown: Counter, near=None,
                      arms: dict[str, tuple[float, float]] | None = None) -> tuple[list[str], list[float], float]:
    """Thompson sampling over the category groups the shopper does not usually buy (and, with
    `near`, only those near what they touched: never coffee for a fashion-only shopper):
    (the groups, best draw first; their draws; the draw of not exploring). A group's draw is
    from

        Beta(1 + clicked_g + demand_g, 1 + (shown_g - clicked_g) + shown to this shopper_g)

    with `arms[g]` = (shown_g, clicked_g), what exploration slots showing group g earned across
    every shopper (`exploration.py`: views, carts and purchases credited within an hour, counted
    from the store's impressions, halved every week), demand_g the group's crowd demand (0 to 1,
    the most trending group 1), and every time this shopper was shown the group counted as one
    more miss. Not exploring draws from Beta(1 + clicked, 1 + shown - clicked) of the same slots
    when they showed the ranking's own items (`arms[EXPLOIT]`). Seeded by the shopper and the
    day: two requests a moment apart draw alike. `arms` None (nothing counted yet, or
    `explore_learns` off): not exploring draws 0, and every exploration slot explores."""
    seed = int(hashlib.sha256(f"{state.shopper_id}|{day}".encode()).hexdigest()[:12], 16)
    usual = {g for g, _ in state.profile_groups.most_common(3)}
    groups = sorted(g for g in trending.by_group if g and g not in usual and (near is None or near(g)))
    rng = np.random.default_rng(seed)
    counted = arms or {}
    demand = np.array([len(trending.by_group[g]) for g in groups], dtype=np.float64)
    demand = demand / max(demand.max(), 1.0) if len(groups) else demand
    seen = np.array([counted.get(g, (0.0, 0.0)) for g in groups], dtype=np.float64).reshape(-1, 2)
    draws = rng.beta(1 + seen[:, 1] + demand, 1 + (seen[:, 0] - seen[:, 1]) + np.array([shown[g] for g in groups]))
    shown_x, clicked_x = counted.get(EXPLOIT, (0.0, 0.0))
    exploit = float(rng.beta(1 + clicked_x, 1 + shown_x - clicked_x)) if arms is not None else 0.0
    order = np.argsort(-draws, kind="stable")
    return [groups[i] for i in order], [float(draws[i]) for i in order], exploit


EXPLOIT = ""
"""The arm of an exploration slot that showed the ranking's own item instead."""


def explore_groups(state: ShopperState, trending: Trending, slots: int, day: int, shown: Counter, near=None,
                   arms: dict[str, tuple[float, float]] | None = None) -> list[str]:
    """The groups the exploration slots show, at most `slots`: those whose draw beats not
    exploring (`exploration_draws`); the other slots show the ranking's next items."""
    if slots <= 0:
        return []
    groups, draws, exploit = exploration_draws(state, trending, day, shown, near, arms)
    return [g for g, draw in zip(groups, draws) if draw > exploit][:slots]


# -- 6. contact ---------------------------------------------------------------------------
def contact_decision(contacts: list[float], config: PolicyConfig, now: float) -> tuple[bool, str, float | None]:
    """(may contact, reason, when it may next) given the times of earlier contacts."""
    window = [t for t in contacts if now - t < config.contact_window_days * DAY]
    if contacts and now - max(contacts) < config.contact_quiet_hours * 3600:
        return False, "quiet period", max(contacts) + config.contact_quiet_hours * 3600
    if len(window) >= config.contact_cap:
        return False, "frequency cap", sorted(window)[-config.contact_cap] + config.contact_window_days * DAY
    return True, "ok", None
