"""The first stage of a request: who is asking, and where the walk starts.

`Request` holds everything the later stages read of one request, computed here once: the
shopper's events as the policies see them (`policies.shopper_state`: context, profile, gifts,
trips), the anchors (the item in view, the session's items, the profile's), what the shopper
already had and what they are coming back to, the consumables due, where they are, what the
rules keep out. Events are read from the store on every request (read-your-writes).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field

from ..graph.model import Event
from ..graph.store import UnknownNode
from ..graph.traversal import ProductCard
from . import policies
from .explanations import VERBS
from .model_sources import STRENGTH
from .policies import ShopperState

ANCHOR_WEIGHT = {"context": 6.0, "session": 4.0}
"""How much each anchor counts: the item in view, then the current session (times the strength
of the event and `policies.session_weight`: one view says little, several consistent ones
more), then the profile's by the strength of each event (at most 1)."""
ANCHORS = 12
"""Products a walk starts from, the weightiest first."""
SHOWN_LISTS = 50
"""The latest lists shown to a shopper that fading and exploration read back from the store."""
HISTORY = 5_000
"""Events read per request: enough that a heavy shopper is not offered what they already had."""


@dataclass
class Ask:
    """What a caller asks for (the API's query parameters)."""

    k: int = 20
    product_id: str | None = None
    location: str | None = None
    gift: bool | None = None
    categories: tuple[str, ...] = ()
    same_category: bool = False
    session_id: str | None = None
    items: tuple[str, ...] = ()
    explore: bool = True


@dataclass
class Request:
    state: ShopperState
    anchors: dict[str, tuple[float, str]]
    """{product id: (weight, verb)}, the weightiest first."""
    ask: Ask
    now: float
    cards: dict[str, ProductCard]
    """The cards of the products the events name and of those asked about (more are added as
    the list is made)."""
    page: bool
    """A product page (an item in view), not a feed."""
    out: set[str] = field(default_factory=set)
    """What the shopper had: not offered again (in a feed, `policies.touched`)."""
    coming_back: list = field(default_factory=list)
    """What they carted and did not buy, offered back ("still in your bag")."""
    restocks: list = field(default_factory=list)
    """Consumables due again: (product id, days since, cycle days)."""
    location: str | None = None
    """Where the shopper is: a trip's location, else home."""
    trip: str | None = None
    kept_out: Container[str] = field(default_factory=set)
    """Products a rule keeps out of this shopper's lists."""
    session_share: float = 0.0
    """How much the current session counts beside the profile (`policies.session_weight`)."""
    shown: dict[str, int] = field(default_factory=dict)
    """How many of the latest lists shown to the shopper held each product since they last
    engaged with it (the store's impressions: every worker's alike), for fading."""
    shown_groups: Counter = field(default_factory=Counter)
    """How often each category group was shown to the shopper, for exploration's draw."""
    explore_slots: int = 0
    """How many of the list's last slots were exploration's to fill (`arrange`)."""

    @property
    def due(self) -> set[str]:
        """Offered back, first in line: due restocks and what they are coming back to."""
        return {pid for pid, *_ in self.restocks} | {pid for pid, *_ in self.coming_back}


def for_shopper(engine, shopper_id: str | None, ask: Ask) -> Request:
    """A shopper's request, or an anonymous session's (`shopper_id` None, `ask.session_id` and
    `ask.items`). A shopper the store does not know yet is answered as a visitor is."""
    now = engine.clock()
    if shopper_id is None:
        events = [e for e in engine.store.events(session_id=ask.session_id, limit=HISTORY)
                  if e.ts <= now + engine.future_slack]
        cards = known(engine, events, ask.items)
        events = events + [Event(f"ask/{i}", ask.session_id, pid, "view", now, None, ask.location, bool(ask.gift))
                           for i, pid in enumerate(ask.items)]
        home, lists, every = None, [], cards
    else:
        try:  # one read: on Neo4j one round trip for the shopper, their events and what they were shown
            shopper, events, lists = engine.store.shopper_history(shopper_id, HISTORY, SHOWN_LISTS)
            home = shopper.home_location
        except UnknownNode:
            home, events, lists = None, [], []
        events = [e for e in events if e.ts <= now + engine.future_slack]
        lists = [i for i in lists if i.at <= now + engine.future_slack]  # none shown after the moment asked about
        asked = [ask.product_id] if ask.product_id else []
        every = known(engine, events, asked, also=[item.product_id for i in lists for item in i.items])
        cards = {pid: every[pid] for pid in (*asked, *(e.product_id for e in events)) if pid in every}
    state = policies.shopper_state(shopper_id, home, events, cards, engine.graph.categories, engine.config, now,
                                   ask.session_id, ask.gift)
    anchors = {a: wv for a, wv in _anchors(state, ask, engine.config).items() if a in cards}  # deleted products are no anchors
    request = Request(state, anchors, ask, now, cards, ask.product_id is not None)
    _read_shown(engine, request, events, lists, every)
    return _settled(engine, request)


def _read_shown(engine, request: Request, events: list[Event], lists: list, cards: dict[str, ProductCard]) -> None:
    """What the shopper was shown lately (`lists`, the shown products' `cards`) and has not
    engaged with since (`Request.shown`)."""
    if request.state.shopper_id is None or not lists:
        return
    engaged: dict[str, float] = {}
    for e in events:
        engaged[e.product_id] = max(engaged.get(e.product_id, e.ts), e.ts)
    # Counted per product (the lists repeat a few dozen products), then, for the few the
    # shopper engaged with, only the lists shown after they last did.
    times = Counter(item.product_id for impression in lists for item in impression.items)
    group = engine.graph.categories.group
    for pid, n in times.items():
        if pid in engaged:
            n = sum(item.product_id == pid for impression in lists if impression.at > engaged[pid]
                    for item in impression.items)
        if n:
            request.shown[pid] = n
        if pid in cards:
            request.shown_groups[group(cards[pid].category)] += times[pid]


def for_look(engine, product_id: str, ask: Ask) -> Request:
    """Completing the look around a product (a product page, for anyone), given the other
    items already chosen for it (`ask.items`)."""
    now = engine.clock()
    chosen = [product_id, *(pid for pid in ask.items if pid != product_id)]
    cards = known(engine, [], chosen)
    state = policies.shopper_state(None, None, [], cards, engine.graph.categories, engine.config, now)
    state.interacted.update(chosen)  # what is in the look already is not offered again
    anchors = {pid: (1.0, VERBS["context"]) for pid in chosen}
    ask = Ask(**{**ask.__dict__, "product_id": product_id, "explore": False})
    return _settled(engine, Request(state, anchors, ask, now, cards, True))


def known(engine, events: list[Event], asked, also=()) -> dict[str, ProductCard]:
    """Cards of the products the events name, of those asked about and of `also`, in one read;
    an asked product that does not exist raises `UnknownNode`."""
    cards = engine.graph.cards(list(dict.fromkeys([*asked, *(e.product_id for e in events), *also])))  # each once
    for pid in asked:
        if pid not in cards:
            raise UnknownNode("Product", pid)
    return cards


def _settled(engine, request: Request) -> Request:
    """What the policies make of the request's state, once: what not to offer again, what is
    due, where the shopper is, what the rules keep out."""
    state, config, now = request.state, engine.config, request.now
    if state.shopper_id and not request.page:
        request.out, request.coming_back = policies.touched(state, config, now)
    else:
        request.out = state.interacted
    request.restocks = policies.restocks(state, request.cards, engine.graph.repurchase(), config, now)
    request.trip = policies.trip_location(state, config, now, request.ask.location)
    request.location = request.trip or state.home
    request.kept_out = engine.merch.excludes(state.shopper_id, now, engine.variant)
    request.session_share = policies.session_weight(state, config)
    return request


def _anchors(state: ShopperState, ask: Ask, config) -> dict[str, tuple[float, str]]:
    """Up to `ANCHORS` products the walk starts from: {product id: (weight, verb)}."""
    anchors: dict[str, tuple[float, str]] = {}

    def add(pid: str, weight: float, verb: str) -> None:
        if pid not in state.dismissed and weight > anchors.get(pid, (0.0, ""))[0]:
            anchors[pid] = (weight, VERBS.get(verb, verb))

    if ask.product_id:
        add(ask.product_id, ANCHOR_WEIGHT["context"], "context")
    session = policies.session_weight(state, config)
    if state.current is not None:
        for e in state.current.events[-10:]:
            add(e.product_id, ANCHOR_WEIGHT["session"] * session * STRENGTH.get(e.type, 0.5)
                * policies.anchor_weight(e.product_id, state, config), e.type)
    # The profile, unless the session shops for someone else: none of it when flagged a gift;
    # when only far from the profile, all of it until the session says enough to stand alone
    # (`session_full_events`: one view far from a known profile never outweighs it).
    profile = 1.0 if state.current is None else 0.0 if state.current.gift else \
        (0.0 if session >= 1 else 1.0) if state.current.off_profile else 1.0
    if profile > 0:
        for e in reversed(state.profile_events[-30:]):
            if e.type in STRENGTH:
                add(e.product_id, profile * STRENGTH[e.type] * policies.anchor_weight(e.product_id, state, config),
                    e.type)
    return dict(sorted(anchors.items(), key=lambda kv: -kv[1][0])[:ANCHORS])
