"""The recommendation engine: what the API routes call.

For a moment of a shopper (or an anonymous session, or a product page) it
1. reads the shopper's events from the store (so the last event counts: read-your-writes) and
   applies the policies (`api/policies.py`) to decide what is context and what is profile;
2. walks the graph (`graph/traversal.py`: in memory for the embedded store, in Cypher inside
   Neo4j) from the anchors (the item in view, the current session's items, then the profile's)
   to candidates, keeping every path: anchor -> Look -> other items of the look;
   anchor -> style/occasion Attribute -> items in other categories; anchor -> the crowd's
   sessions -> items seen with it; anchor -> nearest items by LookGNN embedding; a trip's
   location -> what sells there; consumables due -> restock; and, for cold starts, trending;
3. ranks by path evidence plus the GNN's category-aware complement score, drops what the
   policies rule out, fills missing categories before a second item of one, and gives a
   share of the slots to exploration;
4. returns each item with its paths, machine-readable and as a sentence.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.model import Event
from ..graph.store import GraphStore, UnknownNode
from ..graph.traversal import ProductCard, Traversal
from . import policies
from .policies import PolicyConfig, ShopperState

# How much each anchor counts: the item in view, then the current session, then the profile
# (whose many anchors would otherwise outvote a single fresh event).
ANCHOR_WEIGHT = {"context": 6.0, "session": 4.0}
EVIDENCE = {"look": 1.0, "restock": 2.0, "attribute": 0.4, "crowd": 0.3, "embedding": 0.5, "trip": 0.3, "trending": 0.2}
VERBS = {"view": "viewed", "cart": "put in your bag", "purchase": "bought", "context": "are looking at"}
HISTORY = 500
MAX_IMPRESSIONS = 1_000
MAX_SHOPPERS_REMEMBERED = 200_000
"""Impressions are remembered for at most this many products per shopper, and this many shoppers."""


@dataclass
class Step:
    label: str
    id: str
    name: str


@dataclass
class Path:
    nodes: list[Step]
    relationships: list[str]
    sentence: str


@dataclass
class Recommendation:
    product_id: str
    name: str
    category: str | None
    score: float
    paths: list[Path]
    exploration: bool = False
    reason: str = ""
    """The first path's sentence."""


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


Offer = tuple[str, float, Callable[..., Path], tuple]
"""(candidate, evidence, path builder, its arguments): one walk's reason for a candidate.
Paths are built only for the items returned."""


@dataclass
class _Shown:
    """What this process has shown one shopper: impressions per product, and per category group."""

    impressions: dict[str, int] = field(default_factory=dict)
    groups: Counter = field(default_factory=Counter)


class Engine:
    def __init__(self, store: GraphStore, graph: Traversal, vectors: LookVectors | None = None,
                 config: PolicyConfig | None = None, clock=time.time):
        self.store, self.graph, self.vectors = store, graph, vectors
        self.config = config or PolicyConfig()
        self.clock = clock
        self._shown: OrderedDict[str, _Shown] = OrderedDict()  # by shopper, least recently served first
        self._lock = threading.Lock()
        self._vector_row: dict[str, int] = {pid: i for i, pid in enumerate(vectors.ids["product"])} if vectors else {}

    # -- entry points ------------------------------------------------------------------------
    def for_shopper(self, shopper_id: str, ask: Ask) -> list[Recommendation]:
        shopper = self.store.get("shoppers", shopper_id)  # raises UnknownNode
        now = self.clock()
        events = self.store.events(shopper_id=shopper_id, limit=HISTORY)
        cards = self._known(events, [ask.product_id] if ask.product_id else [])
        state = policies.shopper_state(shopper_id, shopper.home_location, events, cards, self.graph.categories,
                                       self.config, now, ask.session_id, ask.gift)
        return self._recommend(state, self._anchors(state, ask), ask, now, cards)

    def for_session(self, session_id: str, ask: Ask) -> list[Recommendation]:
        now = self.clock()
        events = self.store.events(session_id=session_id, limit=HISTORY)
        cards = self._known(events, ask.items)
        extra = [Event(f"ask/{i}", session_id, pid, "view", now, None, ask.location, bool(ask.gift))
                 for i, pid in enumerate(ask.items)]
        state = policies.shopper_state(None, None, events + extra, cards, self.graph.categories, self.config, now,
                                       session_id, ask.gift)
        return self._recommend(state, self._anchors(state, ask), ask, now, cards)

    def complete_the_look(self, product_id: str, ask: Ask) -> list[Recommendation]:
        now = self.clock()
        cards = self._known([], [product_id])
        state = policies.shopper_state(None, None, [], cards, self.graph.categories, self.config, now)
        ask = Ask(**{**ask.__dict__, "explore": False})
        return self._recommend(state, {product_id: (1.0, VERBS["context"])}, ask, now, cards)

    def outbound(self, shopper_id: str, channel: str, k: int) -> dict:
        now = self.clock()
        window = now - max(self.config.contact_window_days * policies.DAY, self.config.contact_quiet_hours * 3600)
        contacts = [ts for _, ts in self.store.contacts(shopper_id, window)]
        allowed, reason, retry = policies.contact_decision(contacts, self.config, now)
        if not allowed:
            self.store.get("shoppers", shopper_id)
            return {"contact": False, "reason": reason, "retry_after": retry, "items": []}
        items = self.for_shopper(shopper_id, Ask(k=k))
        self.store.record_contact(shopper_id, channel, now)
        return {"contact": True, "reason": reason, "retry_after": None, "items": items}

    def forget(self, shopper_id: str) -> None:
        """Drop what this process remembers of a shopper (impressions, purchases counted for
        the crowd's statistics), e.g. on erasure."""
        with self._lock:
            self._shown.pop(shopper_id, None)
        self.graph.shopper_erased(shopper_id)

    def _known(self, events: list[Event], asked) -> dict[str, ProductCard]:
        """Cards of the products the events name and of those asked about; an asked product
        that does not exist raises `UnknownNode`."""
        cards = self.graph.cards([*asked, *(e.product_id for e in events)])
        for pid in asked:
            if pid not in cards:
                raise UnknownNode("Product", pid)
        return cards

    # -- anchors: where the walk starts ------------------------------------------------------
    def _anchors(self, state: ShopperState, ask: Ask) -> dict[str, tuple[float, str]]:
        """Up to 12 products the walk starts from: {product id: (weight, verb)}."""
        anchors: dict[str, tuple[float, str]] = {}

        def add(pid: str, weight: float, verb: str) -> None:
            if pid not in state.dismissed and weight > anchors.get(pid, (0.0, ""))[0]:
                anchors[pid] = (weight, VERBS.get(verb, verb))

        if ask.product_id:
            add(ask.product_id, ANCHOR_WEIGHT["context"], "context")
        if state.current is not None:
            for e in state.current.events[-10:]:
                add(e.product_id, ANCHOR_WEIGHT["session"] * policies.anchor_weight(e.product_id, state, self.config), e.type)
        if state.current is None or not (state.current.gift or state.current.off_profile):
            strength = {"purchase": 1.0, "cart": 0.8, "view": 0.5}
            for e in reversed(state.profile_events[-30:]):
                if e.type in strength:
                    add(e.product_id, strength[e.type] * policies.anchor_weight(e.product_id, state, self.config), e.type)
        return dict(sorted(anchors.items(), key=lambda kv: -kv[1][0])[:12])

    # -- the walk, the ranking, the policies -------------------------------------------------
    def _recommend(self, state: ShopperState, anchors: dict[str, tuple[float, str]], ask: Ask, now: float,
                   cards: dict[str, ProductCard]) -> list[Recommendation]:
        anchors = {a: wv for a, wv in anchors.items() if a in cards}  # products since deleted are no anchors
        tree, trending = self.graph.categories, self.graph.trending()
        offers: list[Offer] = self._walk(anchors, state, ask.same_category, cards)
        repurchase = self.graph.repurchase()
        due = policies.restocks(state, cards, repurchase, self.config, now)
        offers += [(pid, EVIDENCE["restock"], self._restock_path, (state.shopper_id, pid, days, cycle))
                   for pid, days, cycle in due]
        trip = policies.trip_location(state, self.config, now, ask.location)
        for card in trending.by_location.get(trip, [])[:20] if trip else []:
            cards.setdefault(card.id, card)
            offers.append((card.id, EVIDENCE["trip"], self._trip_path, (trip, card.id)))
        shown = self._shown.get(state.shopper_id or "") or _Shown()
        if not offers:  # a cold start: what is trending, groups ordered by this shopper's draw
            ordered = policies.explore_groups(state, trending, len(trending.by_group), int(now // policies.DAY), shown.groups)
            for rank, group in enumerate(ordered):
                for card in trending.by_group[group][:5]:
                    cards.setdefault(card.id, card)
                    offers.append((card.id, EVIDENCE["trending"] / (1 + rank), self._trending_path, (group, card.id)))
        evidence: dict[str, float] = {}
        for pid, e, _, _ in offers:
            evidence[pid] = evidence.get(pid, 0.0) + e
        cards.update(self.graph.cards(pid for pid in evidence if pid not in cards))

        restocked = {pid for pid, _, _ in due}
        blocked = policies.owned_categories(state, cards, repurchase, self.config, now)
        anchor_leaves = {cards[a].category for a in anchors} - {None}
        keep = []
        for pid in evidence:
            card = cards.get(pid)
            if card is None or pid in state.dismissed:
                continue
            if pid not in restocked and (pid in state.interacted or card.category in blocked
                                         or (not ask.same_category and card.category in anchor_leaves)):
                continue
            if ask.categories and not tree.within(card.category, ask.categories):
                continue
            keep.append(pid)
        if not keep:
            return []
        scores = np.log1p([evidence[pid] for pid in keep])
        gnn = self._gnn(anchors, keep)
        if gnn is not None:
            scores = scores + gnn
        if shown.impressions:
            scores = scores * np.array([policies.fade(pid, state, shown.impressions.get(pid, 0), self.config) for pid in keep])
        ranked = [keep[i] for i in np.argsort(-scores, kind="stable")]
        score_of = dict(zip(keep, scores.tolist()))

        explore = round(ask.k * self.config.explore_share) if ask.explore else 0
        chosen = _fill_categories(ranked, cards, ask.k - explore)
        picks = [(pid, False) for pid in chosen]
        if explore:
            taken = set(chosen)
            for group in policies.explore_groups(state, trending, explore, int(now // policies.DAY), shown.groups):
                for card in trending.by_group.get(group, []):
                    if card.id not in taken and card.id not in state.interacted and card.category not in blocked:
                        cards.setdefault(card.id, card)
                        offers.append((card.id, 0.0, self._trending_path, (group, card.id, True)))
                        score_of.setdefault(card.id, 0.0)
                        picks.append((card.id, True))
                        taken.add(card.id)
                        break
            picks += [(pid, False) for pid in ranked if pid not in taken][: ask.k - len(picks)]
        picks = picks[: ask.k]
        self._remember(state, [pid for pid, _ in picks], cards)
        reasons: dict[str, list[tuple[float, Callable[..., Path], tuple]]] = {pid: [] for pid, _ in picks}
        for pid, e, build, args in offers:
            if pid in reasons:
                reasons[pid].append((e, build, args))
        return [self._recommendation(cards, pid, score_of[pid], reasons[pid], exploring) for pid, exploring in picks]

    def _walk(self, anchors: dict[str, tuple[float, str]], state: ShopperState, same_category: bool,
              cards: dict[str, ProductCard]) -> list[Offer]:
        """The graph walks from every anchor at once: looks, shared attributes, the crowd, and
        the LookGNN neighbours of the strongest anchors."""
        ids, offers = list(anchors), []
        if not ids:
            return offers
        for hit in self.graph.looks_with(ids, 10):
            weight, verb = anchors[hit.anchor]
            dismissed = any(pid in state.dismissed for pid in hit.product_ids)
            e = EVIDENCE["look"] * weight * (0.3 if dismissed else 1.0)  # a dismissal lowers the looks that hold the item
            offers += [(pid, e, self._look_path, (hit.anchor, hit.look_id, hit.look_name, pid, verb))
                       for pid in hit.product_ids if pid != hit.anchor]
        for hit in self.graph.shared_attributes(ids, 8, across_groups=not same_category):
            weight, verb = anchors[hit.anchor]
            cards.setdefault(hit.product.id, hit.product)
            offers.append((hit.product.id, EVIDENCE["attribute"] * weight, self._attribute_path,
                           (hit.anchor, hit.attribute, hit.product.id, verb)))
        offers += [(hit.product_id, EVIDENCE["crowd"] * anchors[hit.anchor][0] * math.log1p(hit.sessions), self._crowd_path,
                    (hit.anchor, hit.product_id, hit.sessions)) for hit in self.graph.co_sessions(ids, 20)]
        rows = [(r, a) for a in ids[:3] if (r := self._vector_row.get(a)) is not None]
        if rows:
            query = self.vectors.arrays["product"][[r for r, _ in rows]].sum(0)
            first = rows[0][1]
            offers += [(pid, EVIDENCE["embedding"], self._embedding_path, (first, pid))
                       for pid in self.graph.nearest(query, 50) if pid != first]
        return offers

    def _gnn(self, anchors: dict[str, tuple[float, str]], keep: list[str]) -> np.ndarray | None:
        """Standardised LookGNN complement score of each candidate against the anchors."""
        if self.vectors is None:
            return None
        # Weighted like the anchors, so the item in view and the session lead the profile.
        known_anchors = [(r, weight) for a, (weight, _) in anchors.items() if (r := self._vector_row.get(a)) is not None]
        if not known_anchors:
            return None
        context, weights = np.array([r for r, _ in known_anchors]), np.array([w for _, w in known_anchors])
        rows = np.array([self._vector_row.get(pid, -1) for pid in keep])
        known = rows >= 0
        raw = np.zeros(len(keep))
        raw[known] = self.vectors.gnn_scores(context, among=rows[known], weights=weights)
        if known.sum() > 1:
            raw[known] = (raw[known] - raw[known].mean()) / (raw[known].std() + 1e-9)
        return raw

    # -- paths, built only for the items returned --------------------------------------------
    @staticmethod
    def _step(cards: dict[str, ProductCard], pid: str) -> Step:
        return Step("Product", pid, cards[pid].name if pid in cards else pid)

    def _look_path(self, cards, a: str, look_id: str, look_name: str, q: str, verb: str) -> Path:
        return Path([self._step(cards, a), Step("Look", look_id, look_name), self._step(cards, q)],
                    ["INCLUDES", "INCLUDES"], f"goes with the {cards[a].name} you {verb} in the look '{look_name}'")

    def _attribute_path(self, cards, a: str, key: str, q: str, verb: str) -> Path:
        kind, _, value = key.partition(":")
        return Path([self._step(cards, a), Step("Attribute", key, value), self._step(cards, q)],
                    ["HAS_ATTRIBUTE", "HAS_ATTRIBUTE"], f"matches the {value} {kind} of the {cards[a].name} you {verb}")

    def _crowd_path(self, cards, a: str, q: str, count: int) -> Path:
        sessions = f"{count} shopping session{'s' if count != 1 else ''}"
        return Path([self._step(cards, a), Step("Crowd", f"sessions with {a}", sessions), self._step(cards, q)],
                    ["INTERACTED", "INTERACTED"],
                    f"shoppers who looked at the {cards[a].name} also looked at this "
                    f"({count} session{'s' if count != 1 else ''})")

    def _embedding_path(self, cards, a: str, q: str) -> Path:
        return Path([self._step(cards, a), self._step(cards, q)], ["COMPLEMENTS"],
                    f"LookGNN finds it completes looks with the {cards[a].name}")

    def _restock_path(self, cards, shopper_id: str | None, pid: str, days: float, cycle: float) -> Path:
        return Path([Step("Shopper", shopper_id or "", shopper_id or ""), self._step(cards, pid)], ["INTERACTED"],
                    f"time to restock: you buy this about every {cycle:.0f} days, last {days:.0f} days ago")

    def _trip_path(self, cards, trip: str, pid: str) -> Path:
        return Path([Step("Crowd", f"sessions in {trip}", f"shoppers in {trip}"), self._step(cards, pid)],
                    ["INTERACTED"], f"popular with shoppers in {trip} right now")

    def _trending_path(self, cards, group: str, pid: str, explore: bool = False) -> Path:
        name = self.graph.categories.names.get(group, group)
        sentence = f"something different: trending in {name}" if explore else f"trending in {name}"
        return Path([Step("Category", group, name), self._step(cards, pid)], ["IN_CATEGORY"], sentence)

    # -- helpers ------------------------------------------------------------------------------
    def _remember(self, state: ShopperState, shown: list[str], cards: dict[str, ProductCard]) -> None:
        """Impressions per shopper and product (bounded), reset by any engagement."""
        if not state.shopper_id:
            return
        with self._lock:
            record = self._shown.pop(state.shopper_id, None) or _Shown()
            self._shown[state.shopper_id] = record  # now the most recently served
            for pid in shown:
                count = record.impressions.pop(pid, 0)  # re-inserted: the most recently shown last
                record.impressions[pid] = 0 if pid in state.interacted else count + 1
                record.groups[self.graph.categories.group(cards[pid].category)] += 1
            while len(record.impressions) > MAX_IMPRESSIONS:  # the longest unshown go first
                del record.impressions[next(iter(record.impressions))]
            while len(self._shown) > MAX_SHOPPERS_REMEMBERED:
                self._shown.popitem(last=False)

    def _recommendation(self, cards, pid: str, score: float, reasons: list, exploring: bool) -> Recommendation:
        paths = [build(cards, *args) for _, build, args in sorted(reasons, key=lambda r: -r[0])[:2]]
        card = cards[pid]
        return Recommendation(pid, card.name, card.category, round(float(score), 4), paths, exploring,
                              paths[0].sentence if paths else "")


def _fill_categories(ranked: list[str], cards: dict[str, ProductCard], k: int) -> list[str]:
    """Best item of each leaf category first, in rank order; then the rest."""
    first, seen = [], set()
    for pid in ranked:
        if cards[pid].category not in seen:
            seen.add(cards[pid].category)
            first.append(pid)
            if len(first) == k:
                return first
    chosen = set(first)
    return first + [pid for pid in ranked if pid not in chosen][: k - len(first)]
