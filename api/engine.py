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

import itertools
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.model import Event
from ..graph.store import GraphStore, UnknownNode
from ..graph.traversal import ATTRIBUTE, CROWD, LOOK, ProductCard, Traversal, Walks
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


WAY_EVIDENCE = np.array([EVIDENCE["look"], EVIDENCE["attribute"], EVIDENCE["crowd"]])  # by LOOK, ATTRIBUTE, CROWD
NO_WALKS = Walks(*(np.zeros(0, dtype=np.int64),) * 4, [], [], [])


class Offers:
    """The candidates of one request and why each was offered: the graph walks' rows (columns,
    with their evidence) and a few other reasons (LookGNN neighbours, restocks, trips, trending)
    as (candidate, evidence, path builder, its arguments). Paths are built only for the items
    returned."""

    def __init__(self, walks: Walks, evidence: np.ndarray):
        self.walks, self.walk_evidence = walks, evidence
        self.cards: list[ProductCard] = list(walks.cards)
        self.position = {card.id: i for i, card in enumerate(self.cards)}
        self.others: list[tuple[int, float, Callable[..., Path], tuple]] = []

    def card(self, product_id: str) -> ProductCard | None:
        i = self.position.get(product_id)
        return None if i is None else self.cards[i]

    def add(self, card: ProductCard, evidence: float, build: Callable[..., Path], args: tuple) -> None:
        i = self.position.setdefault(card.id, len(self.cards))
        if i == len(self.cards):
            self.cards.append(card)
        self.others.append((i, evidence, build, args))

    def evidence(self) -> np.ndarray:
        """Each candidate's evidence, summed over its reasons."""
        total = np.bincount(self.walks.candidate, self.walk_evidence, minlength=len(self.cards)).astype(np.float64)
        for i, e, _, _ in self.others:
            total[i] += e
        return total


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
        # Interned ids, as the in-memory walks' are (see MemoryTraversal._number_product).
        self._vector_row: dict[str, int] = {sys.intern(pid): i for i, pid in enumerate(vectors.ids["product"])} if vectors else {}

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
        offers = self._walk(anchors, state, ask.same_category)
        repurchase = self.graph.repurchase()
        due = policies.restocks(state, cards, repurchase, self.config, now)
        for pid, days, cycle in due:
            offers.add(cards[pid], EVIDENCE["restock"], self._restock_path, (state.shopper_id, pid, days, cycle))
        trip = policies.trip_location(state, self.config, now, ask.location)
        for card in trending.by_location.get(trip, [])[:20] if trip else []:
            offers.add(card, EVIDENCE["trip"], self._trip_path, (trip, card.id))
        shown = self._shown.get(state.shopper_id or "") or _Shown()
        if not offers.cards:  # a cold start: what is trending, groups ordered by this shopper's draw
            ordered = policies.explore_groups(state, trending, len(trending.by_group), int(now // policies.DAY), shown.groups)
            for rank, group in enumerate(ordered):
                for card in trending.by_group[group][:5]:
                    offers.add(card, EVIDENCE["trending"] / (1 + rank), self._trending_path, (group, card.id))
        evidence = offers.evidence()

        restocked = {pid for pid, _, _ in due}
        blocked = policies.owned_categories(state, cards, repurchase, self.config, now)
        anchor_leaves = {cards[a].category for a in anchors} - {None}
        keep = []
        for i, card in enumerate(offers.cards):
            if card.id in state.dismissed:
                continue
            if card.id not in restocked and (card.id in state.interacted or card.category in blocked
                                             or (not ask.same_category and card.category in anchor_leaves)):
                continue
            if ask.categories and not tree.within(card.category, ask.categories):
                continue
            keep.append(i)
        if not keep:
            return []
        scores = np.log1p(evidence[keep])
        gnn = self._gnn(anchors, [offers.cards[i].id for i in keep])
        if gnn is not None:
            scores = scores + gnn
        if shown.impressions:
            scores = scores * np.array([policies.fade(offers.cards[i].id, state, shown.impressions.get(offers.cards[i].id, 0),
                                                      self.config) for i in keep])
        ranked = np.array(keep)[np.argsort(-scores, kind="stable")].tolist()
        score_of = dict(zip(keep, scores.tolist()))

        explore = round(ask.k * self.config.explore_share) if ask.explore else 0
        chosen = _fill_categories(ranked, offers.cards, ask.k - explore)
        picks = [(i, False) for i in chosen]
        if explore:
            taken = {offers.cards[i].id for i in chosen}
            for group in policies.explore_groups(state, trending, explore, int(now // policies.DAY), shown.groups):
                for card in trending.by_group.get(group, []):
                    if card.id not in taken and card.id not in state.interacted and card.category not in blocked:
                        offers.add(card, 0.0, self._trending_path, (group, card.id, True))
                        i = offers.position[card.id]
                        score_of.setdefault(i, 0.0)
                        picks.append((i, True))
                        taken.add(card.id)
                        break
            picks += itertools.islice(((i, False) for i in ranked if offers.cards[i].id not in taken), ask.k - len(picks))
        picks = picks[: ask.k]
        picked = [offers.cards[i] for i, _ in picks]
        self._remember(state, picked)
        cards.update((card.id, card) for card in picked)
        reasons = self._reasons(offers, [i for i, _ in picks], anchors)
        return [self._recommendation(cards, offers.cards[i], score_of[i], reasons[i], exploring) for i, exploring in picks]

    def _walk(self, anchors: dict[str, tuple[float, str]], state: ShopperState, same_category: bool) -> Offers:
        """The graph walks from every anchor at once (looks, shared attributes, the crowd), with
        their evidence, and the LookGNN neighbours of the strongest anchors."""
        ids = list(anchors)
        walks = self.graph.walk(ids, across_groups=not same_category) if ids else NO_WALKS
        weights = np.array([weight for weight, _ in anchors.values()])
        evidence = WAY_EVIDENCE[walks.way] * weights[walks.anchor]
        crowd = walks.way == CROWD
        evidence[crowd] *= np.log1p(walks.via[crowd])
        if state.dismissed:  # a dismissal lowers the looks that hold the item
            lowered = [i for i, hit in enumerate(walks.looks) if any(pid in state.dismissed for pid in hit.product_ids)]
            evidence[(walks.way == LOOK) & np.isin(walks.via, lowered)] *= 0.3
        offers = Offers(walks, evidence)
        rows = [(r, a) for a in ids[:3] if (r := self._vector_row.get(a)) is not None]
        if rows:
            query = self.vectors.arrays["product"][[r for r, _ in rows]].sum(0)
            first = rows[0][1]
            near = [pid for pid in self.graph.nearest(query, 50) if pid != first]
            found = self.graph.cards(pid for pid in near if pid not in offers.position)
            for pid in near:
                if (card := found.get(pid) or offers.card(pid)) is not None:
                    offers.add(card, EVIDENCE["embedding"], self._embedding_path, (first, pid))
        return offers

    def _reasons(self, offers: Offers, picked: list[int], anchors: dict[str, tuple[float, str]]
                 ) -> dict[int, list[tuple[float, Callable[..., Path], tuple]]]:
        """Every reason each picked candidate was offered for: (evidence, path builder, its arguments)."""
        walks, ids = offers.walks, list(anchors)
        reasons: dict[int, list] = {i: [] for i in picked}
        rows = np.flatnonzero(np.isin(walks.candidate, picked))
        for i, anchor, way, via, e in zip(*(column[rows].tolist() for column in
                                           (walks.candidate, walks.anchor, walks.way, walks.via, offers.walk_evidence))):
            a, pid = ids[anchor], offers.cards[i].id
            if way == LOOK:
                look = walks.looks[via]
                reasons[i].append((e, self._look_path, (a, look.look_id, look.look_name, pid, anchors[a][1])))
            elif way == ATTRIBUTE:
                reasons[i].append((e, self._attribute_path, (a, walks.attributes[via], pid, anchors[a][1])))
            else:
                reasons[i].append((e, self._crowd_path, (a, pid, via)))
        for i, e, build, args in offers.others:
            if i in reasons:
                reasons[i].append((e, build, args))
        return reasons

    def _gnn(self, anchors: dict[str, tuple[float, str]], keep: list[str]) -> np.ndarray | None:
        """Standardised LookGNN complement score of each candidate against the anchors."""
        if self.vectors is None:
            return None
        # Weighted like the anchors, so the item in view and the session lead the profile.
        known_anchors = [(r, weight) for a, (weight, _) in anchors.items() if (r := self._vector_row.get(a)) is not None]
        if not known_anchors:
            return None
        context, weights = np.array([r for r, _ in known_anchors]), np.array([w for _, w in known_anchors])
        rows = np.fromiter(map(self._vector_row.get, keep, itertools.repeat(-1)), dtype=np.int64, count=len(keep))
        known = rows >= 0
        raw = np.zeros(len(keep))
        scores = self.vectors.gnn_scores(context, among=rows[known], weights=weights).astype(np.float64)
        raw[known] = (scores - scores.mean()) / (scores.std() + 1e-9) if len(scores) > 1 else scores
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
    def _remember(self, state: ShopperState, shown: list[ProductCard]) -> None:
        """Impressions per shopper and product (bounded), reset by any engagement."""
        if not state.shopper_id:
            return
        with self._lock:
            record = self._shown.pop(state.shopper_id, None) or _Shown()
            self._shown[state.shopper_id] = record  # now the most recently served
            for card in shown:
                count = record.impressions.pop(card.id, 0)  # re-inserted: the most recently shown last
                record.impressions[card.id] = 0 if card.id in state.interacted else count + 1
                record.groups[self.graph.categories.group(card.category)] += 1
            while len(record.impressions) > MAX_IMPRESSIONS:  # the longest unshown go first
                del record.impressions[next(iter(record.impressions))]
            while len(self._shown) > MAX_SHOPPERS_REMEMBERED:
                self._shown.popitem(last=False)

    def _recommendation(self, cards, card: ProductCard, score: float, reasons: list, exploring: bool) -> Recommendation:
        paths = [build(cards, *args) for _, build, args in sorted(reasons, key=lambda r: -r[0])[:2]]
        return Recommendation(card.id, card.name, card.category, round(float(score), 4), paths, exploring,
                              paths[0].sentence if paths else "")


def _fill_categories(ranked: list[int], cards: list[ProductCard], k: int) -> list[int]:
    """Best item of each leaf category first, in rank order; then the rest."""
    first, seen = [], set()
    for i in ranked:
        if cards[i].category not in seen:
            seen.add(cards[i].category)
            first.append(i)
            if len(first) == k:
                return first
    chosen = set(first)
    return first + [i for i in ranked if i not in chosen][: k - len(first)]
