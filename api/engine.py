"""The recommendation engine: what the API routes call.

For a moment of a shopper (or an anonymous session, or a product page) it
1. reads the shopper's events from the store (so the last event counts: read-your-writes) and
   applies the policies (`api/policies.py`) to decide what is context and what is profile;
2. walks the graph from the anchors (the item in view, the current session's items, then the
   profile's) to candidates, keeping every path: anchor -> Look -> other items of the look;
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
from dataclasses import dataclass, field

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.model import Event
from ..graph.store import GraphStore
from ..graph.traversal import GraphIndex
from . import policies
from .policies import PolicyConfig, ShopperState

# How much each anchor counts: the item in view, then the current session, then the profile
# (whose many anchors would otherwise outvote a single fresh event).
ANCHOR_WEIGHT = {"context": 6.0, "session": 4.0}
EVIDENCE = {"look": 1.0, "restock": 2.0, "attribute": 0.4, "crowd": 0.3, "embedding": 0.5, "trip": 0.3, "trending": 0.2}
VERBS = {"view": "viewed", "cart": "put in your bag", "purchase": "bought", "context": "are looking at"}
HISTORY = 500


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
class _Candidate:
    evidence: float = 0.0
    paths: list[tuple] = field(default_factory=list)
    """(evidence, path builder, its arguments): paths are built only for the items returned."""


class Engine:
    def __init__(self, store: GraphStore, index: GraphIndex, vectors: LookVectors | None = None,
                 config: PolicyConfig | None = None, clock=time.time):
        self.store, self.index, self.vectors = store, index, vectors
        self.config = config or PolicyConfig()
        self.clock = clock
        self._impressions: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._shown_groups: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self._vector_row: dict[str, int] = {pid: i for i, pid in enumerate(vectors.ids["product"])} if vectors else {}

    # -- entry points ------------------------------------------------------------------------
    def for_shopper(self, shopper_id: str, ask: Ask) -> list[Recommendation]:
        shopper = self.store.get("shoppers", shopper_id)  # raises UnknownNode
        now = self.clock()
        events = self.store.events(shopper_id=shopper_id, limit=HISTORY)
        state = policies.shopper_state(shopper_id, shopper.home_location, events, self.index, self.config, now,
                                       ask.session_id, ask.gift)
        return self._recommend(state, self._anchors(state, ask), ask, now)

    def for_session(self, session_id: str, ask: Ask) -> list[Recommendation]:
        now = self.clock()
        events = self.store.events(session_id=session_id, limit=HISTORY)
        extra = [Event(f"ask/{i}", session_id, pid, "view", now, None, ask.location, bool(ask.gift))
                 for i, pid in enumerate(ask.items)]
        for pid in ask.items:
            self.index.product(self.store, pid)  # raises UnknownNode for an unknown item
        state = policies.shopper_state(None, None, events + extra, self.index, self.config, now, session_id, ask.gift)
        return self._recommend(state, self._anchors(state, ask), ask, now)

    def complete_the_look(self, product_id: str, ask: Ask) -> list[Recommendation]:
        now = self.clock()
        state = policies.shopper_state(None, None, [], self.index, self.config, now)
        anchor = self.index.product(self.store, product_id)
        ask = Ask(**{**ask.__dict__, "explore": False})
        return self._recommend(state, [(anchor, 1.0, "context")], ask, now)

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
        """Drop what this process remembers of a shopper (impressions), e.g. on erasure."""
        with self._lock:
            self._shown_groups.pop(shopper_id, None)
            for key in [key for key in self._impressions if key[0] == shopper_id]:
                del self._impressions[key]

    # -- anchors: where the walk starts ------------------------------------------------------
    def _anchors(self, state: ShopperState, ask: Ask) -> list[tuple[int, float, str]]:
        anchors: dict[int, tuple[float, str]] = {}

        def add(pid: str, weight: float, verb: str) -> None:
            if pid in self.index.position and pid not in state.dismissed:
                p = self.index.position[pid]
                if weight > anchors.get(p, (0.0, ""))[0]:
                    anchors[p] = (weight, verb)

        if ask.product_id:
            add(self.index.product_ids[self.index.product(self.store, ask.product_id)], ANCHOR_WEIGHT["context"], "context")
        if state.current is not None:
            for e in state.current.events[-10:]:
                add(e.product_id, ANCHOR_WEIGHT["session"] * policies.anchor_weight(e.product_id, state, self.config), e.type)
        if state.current is None or not (state.current.gift or state.current.off_profile):
            strength = {"purchase": 1.0, "cart": 0.8, "view": 0.5}
            for e in reversed(state.profile_events[-30:]):
                if e.type in strength:
                    add(e.product_id, strength[e.type] * policies.anchor_weight(e.product_id, state, self.config), e.type)
        ranked = sorted(anchors.items(), key=lambda kv: -kv[1][0])[:12]
        return [(p, w, verb) for p, (w, verb) in ranked]

    # -- the walk, the ranking, the policies -------------------------------------------------
    def _recommend(self, state: ShopperState, anchors, ask: Ask, now: float) -> list[Recommendation]:
        ix = self.index
        candidates: dict[int, _Candidate] = {}

        def offer(p: int, kind: str, weight: float, build, *args) -> None:
            c = candidates.setdefault(p, _Candidate())
            evidence = EVIDENCE[kind] * weight
            c.evidence += evidence
            c.paths.append((evidence, build, args))

        for a, weight, verb in anchors:
            self._walk_from(a, weight, VERBS.get(verb, verb), state, offer, ask.same_category)
        self._embedding_neighbours(anchors, offer)
        due = policies.restocks(state, ix, self.config, now)
        for pid, days, cycle in due:
            if pid in ix.position:
                offer(ix.position[pid], "restock", 1.0, self._restock_path, state.shopper_id, ix.position[pid], days, cycle)
        trip = policies.trip_location(state, self.config, now, ask.location)
        for p in ix.trending_by_location.get(trip, [])[:20] if trip else []:
            offer(p, "trip", 1.0, self._trip_path, trip, p)
        if not candidates:  # a cold start: what is trending, groups ordered by this shopper's draw
            shown = self._shown_groups.get(state.shopper_id or "", Counter())
            ordered = policies.explore_groups(state, ix, len(ix.trending_by_group), int(now // policies.DAY), shown)
            for rank, group in enumerate(ordered):
                for p in ix.trending_by_group[group][:5]:
                    offer(p, "trending", 1.0 / (1 + rank), self._trending_path, group, p)

        restocked = {ix.position[pid] for pid, _, _ in due if pid in ix.position}
        blocked = policies.owned_categories(state, ix, self.config, now)
        anchor_leaves = {ix.category[a] for a, _, _ in anchors} - {None}
        keep = []
        for p, c in candidates.items():
            pid, leaf = ix.product_ids[p], ix.category[p]
            if p not in restocked and (pid in state.interacted or (leaf in blocked)):
                continue
            if pid in state.dismissed or (not ask.same_category and leaf in anchor_leaves and p not in restocked):
                continue
            if ask.categories and not self._in_categories(leaf, ask.categories):
                continue
            keep.append(p)
        if not keep:
            return []
        scores = np.array([math.log1p(candidates[p].evidence) for p in keep])
        gnn = self._gnn(anchors, keep)
        if gnn is not None:
            scores = scores + gnn
        if state.shopper_id:
            scores = scores * np.array([policies.fade(ix.product_ids[p], state, self._impressions.get(
                (state.shopper_id, ix.product_ids[p]), 0), self.config) for p in keep])
        ranked = [keep[i] for i in np.argsort(-scores, kind="stable")]
        score_of = dict(zip(keep, scores.tolist()))

        explore = round(ask.k * self.config.explore_share) if ask.explore else 0
        chosen = _fill_categories(ranked, ix, ask.k - explore)
        picks = [(p, False) for p in chosen]
        if explore:
            taken = set(chosen)
            shown = self._shown_groups.get(state.shopper_id or "", Counter())
            for group in policies.explore_groups(state, ix, explore, int(now // policies.DAY), shown):
                for p in ix.trending_by_group.get(group, []):
                    pid = ix.product_ids[p]
                    if p not in taken and pid not in state.interacted and ix.category[p] not in blocked:
                        candidates.setdefault(p, _Candidate()).paths.append((0.0, self._trending_path, (group, p, True)))
                        score_of.setdefault(p, 0.0)
                        picks.append((p, True))
                        taken.add(p)
                        break
            picks += [(p, False) for p in ranked if p not in taken][: ask.k - len(picks)]
        self._remember(state, [p for p, _ in picks])
        return [self._recommendation(p, score_of[p], candidates[p], exploring) for p, exploring in picks[: ask.k]]

    def _walk_from(self, a: int, weight: float, verb: str, state: ShopperState, offer, same_category: bool) -> None:
        ix = self.index
        for look_id in ix.product_looks.get(a, [])[:10]:
            look = ix.looks[look_id]
            dismissed = any(pid in state.dismissed for pid in look.product_ids)
            factor = 0.3 if dismissed else 1.0  # a dismissal lowers the looks that hold the item
            for pid in look.product_ids:
                q = ix.position.get(pid)
                if q is not None and q != a:
                    offer(q, "look", weight * factor, self._look_path, a, look, q, verb)
        group = ix.group(ix.category[a])
        for key in ix.product_attributes.get(a, []):
            found = 0
            for q in ix.attribute_products.get(key, [])[:80]:
                if q != a and (same_category or ix.group(ix.category[q]) != group):
                    offer(q, "attribute", weight, self._attribute_path, a, key, q, verb)
                    found += 1
                    if found == 8:
                        break
        for q, count in ix.crowd.get(a, [])[:20]:
            offer(q, "crowd", weight * math.log1p(count), self._crowd_path, a, q, count)

    def _embedding_neighbours(self, anchors, offer) -> None:
        if self.vectors is None or not anchors:
            return
        rows = [(self._vector_row.get(self.index.product_ids[a]), a) for a, _, _ in anchors[:3]]
        rows = [(r, a) for r, a in rows if r is not None]
        if not rows:
            return
        items = self.vectors.arrays["product"]
        scores = items @ items[[r for r, _ in rows]].sum(0)
        top = np.argpartition(-scores, min(50, len(scores) - 1))[:50]
        a = rows[0][1]
        for row in top:
            q = self.index.position.get(self.vectors.ids["product"][row])
            if q is not None and q != a:
                offer(q, "embedding", 1.0, self._embedding_path, a, q)

    def _gnn(self, anchors, keep: list[int]) -> np.ndarray | None:
        """Standardised LookGNN complement score of each candidate against the anchors."""
        if self.vectors is None:
            return None
        context = np.array([r for a, _, _ in anchors if (r := self._vector_row.get(self.index.product_ids[a])) is not None])
        rows = np.array([self._vector_row.get(self.index.product_ids[p], -1) for p in keep])
        if not len(context):
            return None
        known = rows >= 0
        raw = np.zeros(len(keep))
        raw[known] = self.vectors.gnn_scores(context, among=rows[known])
        if known.sum() > 1:
            raw[known] = (raw[known] - raw[known].mean()) / (raw[known].std() + 1e-9)
        return raw

    # -- helpers ------------------------------------------------------------------------------
    def _in_categories(self, leaf: str | None, wanted: tuple[str, ...]) -> bool:
        while leaf is not None:
            if leaf in wanted:
                return True
            leaf = self.index.parent.get(leaf)
        return False

    def _product_step(self, p: int) -> Step:
        return Step("Product", self.index.product_ids[p], self.index.names[p])

    # -- paths, built only for the items returned --------------------------------------------
    def _look_path(self, a: int, look, q: int, verb: str) -> Path:
        return Path([self._product_step(a), Step("Look", look.id, look.name), self._product_step(q)],
                    ["INCLUDES", "INCLUDES"], f"goes with the {self.index.names[a]} you {verb} in the look '{look.name}'")

    def _attribute_path(self, a: int, key: str, q: int, verb: str) -> Path:
        kind, _, value = key.partition(":")
        return Path([self._product_step(a), Step("Attribute", key, value), self._product_step(q)],
                    ["HAS_ATTRIBUTE", "HAS_ATTRIBUTE"], f"matches the {value} {kind} of the {self.index.names[a]} you {verb}")

    def _crowd_path(self, a: int, q: int, count: int) -> Path:
        return Path([self._product_step(a), Step("Crowd", f"sessions with {self.index.product_ids[a]}", f"{count} shopping session{'s' if count != 1 else ''}"),
                     self._product_step(q)], ["INTERACTED", "INTERACTED"],
                    f"shoppers who looked at the {self.index.names[a]} also looked at this "
                    f"({count} session{'s' if count != 1 else ''})")

    def _embedding_path(self, a: int, q: int) -> Path:
        return Path([self._product_step(a), self._product_step(q)], ["COMPLEMENTS"],
                    f"LookGNN finds it completes looks with the {self.index.names[a]}")

    def _restock_path(self, shopper_id: str | None, p: int, days: float, cycle: float) -> Path:
        return Path([Step("Shopper", shopper_id or "", shopper_id or ""), self._product_step(p)], ["INTERACTED"],
                    f"time to restock: you buy this about every {cycle:.0f} days, last {days:.0f} days ago")

    def _trip_path(self, trip: str, p: int) -> Path:
        return Path([Step("Crowd", f"sessions in {trip}", f"shoppers in {trip}"), self._product_step(p)],
                    ["INTERACTED"], f"popular with shoppers in {trip} right now")

    def _trending_path(self, group: str, p: int, explore: bool = False) -> Path:
        name = self.index.category_names.get(group, group)
        sentence = f"something different: trending in {name}" if explore else f"trending in {name}"
        return Path([Step("Category", group, name), self._product_step(p)], ["IN_CATEGORY"], sentence)

    def _remember(self, state: ShopperState, shown: list[int]) -> None:
        """Impressions per shopper and product (bounded), reset by any engagement."""
        if not state.shopper_id:
            return
        with self._lock:
            groups = self._shown_groups.setdefault(state.shopper_id, Counter())
            for p in shown:
                key = (state.shopper_id, self.index.product_ids[p])
                self._impressions[key] = 0 if key[1] in state.interacted else self._impressions.get(key, 0) + 1
                self._impressions.move_to_end(key)
                groups[self.index.group(self.index.category[p])] += 1
            while len(self._impressions) > 1_000_000:
                self._impressions.popitem(last=False)

    def _recommendation(self, p: int, score: float, candidate: _Candidate, exploring: bool) -> Recommendation:
        paths = [build(*args) for _, build, args in sorted(candidate.paths, key=lambda ep: -ep[0])[:2]]
        return Recommendation(self.index.product_ids[p], self.index.names[p], self.index.category[p],
                              round(float(score), 4), paths, exploring)


def _fill_categories(ranked: list[int], index: GraphIndex, k: int) -> list[int]:
    """Best item of each leaf category first, in rank order; then the rest."""
    first, seen = [], set()
    for p in ranked:
        if index.category[p] not in seen:
            seen.add(index.category[p])
            first.append(p)
            if len(first) == k:
                return first
    chosen = set(first)
    return first + [p for p in ranked if p not in chosen][: k - len(first)]

