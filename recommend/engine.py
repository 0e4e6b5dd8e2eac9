"""The recommendation engine: what the API routes call. One way through, stage by stage:

1. state: the shopper's events, read from the store on every request (read-your-writes), and
   what the policies make of them (`policies.shopper_state`: context, profile, gifts, trips);
2. anchors: the item in view, the current session's items, then the profile's;
3. candidates (`candidates.py`): the graph walks from the anchors, content match, LookGNN's
   neighbours, the shopper's preference vector, restocks, a trip's location, trending;
4. policies: what must not be shown (dismissed, owned one-time categories, already had);
5. features and ranker (`features.py`, `ranker.py`): the learned ranker of the artifact, or the
   hand-set evidence weights without one; due restocks first, exploration slots, and a list
   the sources left short filled from best sellers, each with its reason;
6. explanations (`explanations.py`): each item with the paths that led to it.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.limits import FUTURE_SLACK_SECONDS
from ..graph.model import Event
from ..graph.store import GraphStore, UnknownNode
from ..graph.traversal import ATTRIBUTE, LOOK, ProductCard, Traversal
from . import explanations as explain
from . import policies
from .candidates import NO_WALKS, SOURCES, Offers, walk_offers
from .explanations import VERBS, Answer, Recommendation
from .features import Context, features
from .merchandising import Merchandising
from .model_sources import STRENGTH, ModelSources
from .policies import PolicyConfig, ShopperState
from .ranker import EvidenceRanker, LearnedRanker

# How much each anchor counts: the item in view, then the current session (times the strength
# of the event and `policies.session_weight`: one view says little, several consistent ones
# more), then the profile's by the strength of each event (at most 1).
ANCHOR_WEIGHT = {"context": 6.0, "session": 4.0}
HISTORY = 5_000
"""Events read per request: enough that a heavy shopper is not offered what they already had."""
MAX_IMPRESSIONS = 1_000
MAX_SHOPPERS_REMEMBERED = 50_000
"""Shoppers whose impressions this process remembers (least recently served forgotten first):
about 1.8 KiB each, so at most about 90 MiB."""
"""Impressions are remembered for at most this many products per shopper, and this many shoppers."""
EXPLAINED_FIRST = ("returning", "restock", "look", "attribute", "crowd", "collaborative", "content", "embedding",
                   "personal", "trip", "trending", "popular")
"""Which reasons an item's paths show first: what the shopper did, then a look, then the other
graph paths, then the model's; by evidence within one source."""
FIRST = {source: rank for rank, source in enumerate(EXPLAINED_FIRST)}
SAME_LEAF_SHARE = 0.2
"""On a product page (without `same_category`), at most this share of the list may share a
leaf category with the items in view (or have none): complete the look, not more of the same."""


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
class _Shown:
    """What this process has shown one shopper: impressions per product, and per category group."""

    impressions: dict[str, int] = field(default_factory=dict)
    groups: Counter = field(default_factory=Counter)


class Engine:
    def __init__(self, store: GraphStore, graph: Traversal, vectors: LookVectors | None = None,
                 config: PolicyConfig | None = None, clock=time.time, ranker: LearnedRanker | None = None):
        self.store, self.graph = store, graph
        self.config = config or PolicyConfig()
        self.clock = clock
        self._shown: OrderedDict[str, _Shown] = OrderedDict()  # by shopper, least recently served first
        self._lock = threading.Lock()
        self.merch = Merchandising(store, graph.categories)
        self.future_slack = FUTURE_SLACK_SECONDS
        """Events dated up to this long after the clock count (a storefront's clock may run a
        little ahead); the offline engine sets 0, so that a query at t sees nothing after t."""
        self.install(self.prepare(vectors, ranker))

    def prepare(self, vectors: LookVectors | None, ranker: LearnedRanker | None) -> tuple:
        """What serving an artifact takes (its vectors, the sources over them, its ranker), built
        without touching what is served now: a server prepares a newer artifact in a worker
        thread while requests go on, then `install`s it between two requests."""
        model = ModelSources(vectors, self.graph) if vectors is not None else None
        return vectors, model, ranker or EvidenceRanker()

    def install(self, prepared: tuple) -> None:
        """Serve the artifact `prepare` made ready from the next request on; what the engine
        remembers of shoppers (impressions) stays."""
        self.vectors, self.model, self.ranker = prepared
        self.strict_across = not isinstance(self.ranker, LearnedRanker)
        """Under the hand-set weights every list leaves out the anchors' categories. A learned
        ranker decides from the data when more of a category is wanted: a feed is its ranking,
        and a product page keeps at most `SAME_LEAF_SHARE` of its slots for the categories
        already in view (the ranker learns from candidates gathered with this off)."""

    # -- entry points ------------------------------------------------------------------------
    def for_shopper(self, shopper_id: str, ask: Ask) -> Answer:
        """A shopper's feed (or, with `ask.product_id`, their view of a product page). A shopper
        the store does not know yet is answered from the crowd, as an anonymous visitor is."""
        return self._recommend(*self._moment(shopper_id, ask))

    def for_session(self, session_id: str, ask: Ask) -> Answer:
        """An anonymous visitor: the session's events so far plus the items asked about."""
        return self._recommend(*self._moment(None, Ask(**{**ask.__dict__, "session_id": session_id})))

    def candidate_features(self, shopper_id: str | None, ask: Ask, look: bool = False) -> tuple[list[str], np.ndarray]:
        """The candidates the policies allow and their features, as the ranker sees them (for
        training the ranker: `recommend/offline.py`). `shopper_id` None: an anonymous session;
        `look`: complete the look around `ask.product_id` and `ask.items`."""
        moment = self._look_moment(ask.product_id, ask) if look else self._moment(shopper_id, ask)
        state, anchors, ask, now, cards, page = moment
        offers, keep, evidence, _, _ = self._allowed(state, anchors, ask, now, cards, page)
        return [offers.cards[i].id for i in keep], self._features(offers, keep, evidence, anchors, state, page, cards)

    def _moment(self, shopper_id: str | None, ask: Ask):
        """(state, anchors, ask, now, cards, page) of a shopper's request, or of an anonymous
        session's (`shopper_id` None, `ask.session_id` and `ask.items`)."""
        now = self.clock()
        if shopper_id is None:
            events = [e for e in self.store.events(session_id=ask.session_id, limit=HISTORY) if e.ts <= now + self.future_slack]
            cards = self._known(events, ask.items)
            events = events + [Event(f"ask/{i}", ask.session_id, pid, "view", now, None, ask.location, bool(ask.gift))
                               for i, pid in enumerate(ask.items)]
            home = None
        else:
            try:
                home = self.store.get("shoppers", shopper_id).home_location
                events = [e for e in self.store.events(shopper_id=shopper_id, limit=HISTORY)
                          if e.ts <= now + self.future_slack]
            except UnknownNode:
                home, events = None, []
            cards = self._known(events, [ask.product_id] if ask.product_id else [])
        state = policies.shopper_state(shopper_id, home, events, cards, self.graph.categories, self.config, now,
                                       ask.session_id, ask.gift)
        anchors = {a: wv for a, wv in self._anchors(state, ask).items() if a in cards}  # deleted products are no anchors
        return state, anchors, ask, now, cards, ask.product_id is not None

    def complete_the_look(self, product_id: str, ask: Ask) -> Answer:
        """What completes the look around a product (a product page, for anyone), given also
        the other items already chosen for it (`ask.items`)."""
        return self._recommend(*self._look_moment(product_id, ask))

    def _look_moment(self, product_id: str, ask: Ask):
        now = self.clock()
        chosen = [product_id, *(pid for pid in ask.items if pid != product_id)]
        cards = self._known([], chosen)
        events = [Event(f"look/{i}", "", pid, "view", now) for i, pid in enumerate(chosen)]
        state = policies.shopper_state(None, None, [], cards, self.graph.categories, self.config, now)
        state.interacted.update(chosen)  # what is in the look already is not offered again
        anchors = {e.product_id: (1.0, VERBS["context"]) for e in events}
        return state, anchors, Ask(**{**ask.__dict__, "product_id": product_id, "explore": False}), now, cards, True

    def policies_in_force(self, shopper_id: str) -> list[str]:
        """The policies shaping this shopper's lists now, as sentences (for the console)."""
        state, _, ask, now, cards, _ = self._moment(shopper_id, Ask(k=10))
        names = self.graph.categories.names
        notes = []
        owned = policies.owned_categories(state, cards, self.graph.repurchase(), self.config, now)
        if owned:
            notes.append("one-time purchases and fresh restocks, not offered again now: "
                         + ", ".join(sorted(names.get(c, c) for c in owned)))
        if state.current is not None and (state.current.gift or state.current.off_profile):
            notes.append("this session shops for someone else: it shapes this session only, never the profile")
        trip = policies.trip_location(state, self.config, now, ask.location)
        if trip:
            notes.append(f"travelling: suggestions sell in {trip}; the home location stays {state.home}")
        if self.config.explore_share:
            notes.append(f"variety: {self.config.explore_share:.0%} of a feed's slots explore beyond the usual groups")
        return notes

    def outbound(self, shopper_id: str, channel: str, k: int) -> dict:
        now = self.clock()
        window = now - max(self.config.contact_window_days * policies.DAY, self.config.contact_quiet_hours * 3600)
        # Decided and logged in one transaction: parallel calls cannot beat the cap.
        allowed, reason, retry = self.store.claim_contact(
            shopper_id, channel, now, window, lambda times: policies.contact_decision(times, self.config, now))
        if not allowed:
            return {"contact": False, "reason": reason, "retry_after": retry, "items": []}
        items = self.for_shopper(shopper_id, Ask(k=k)).items
        return {"contact": True, "reason": reason, "retry_after": None, "items": items}

    def forget(self, shopper_id: str) -> None:
        """Drop what this process holds of a shopper, on erasure: impressions, their part in
        the crowd's counts and statistics, their learnt vector."""
        with self._lock:
            self._shown.pop(shopper_id, None)
        self.graph.shopper_erased(shopper_id)
        if self.model is not None:
            self.model.shopper_erased(shopper_id)

    def _known(self, events: list[Event], asked) -> dict[str, ProductCard]:
        """Cards of the products the events name and of those asked about; an asked product
        that does not exist raises `UnknownNode`."""
        cards = self.graph.cards([*asked, *(e.product_id for e in events)])
        for pid in asked:
            if pid not in cards:
                raise UnknownNode("Product", pid)
        return cards

    # -- 2. anchors: where the walk starts ---------------------------------------------------
    def _anchors(self, state: ShopperState, ask: Ask) -> dict[str, tuple[float, str]]:
        """Up to 12 products the walk starts from: {product id: (weight, verb)}."""
        anchors: dict[str, tuple[float, str]] = {}

        def add(pid: str, weight: float, verb: str) -> None:
            if pid not in state.dismissed and weight > anchors.get(pid, (0.0, ""))[0]:
                anchors[pid] = (weight, VERBS.get(verb, verb))

        if ask.product_id:
            add(ask.product_id, ANCHOR_WEIGHT["context"], "context")
        session = policies.session_weight(state, self.config)
        if state.current is not None:
            for e in state.current.events[-10:]:
                add(e.product_id, ANCHOR_WEIGHT["session"] * session * STRENGTH.get(e.type, 0.5)
                    * policies.anchor_weight(e.product_id, state, self.config), e.type)
        # The profile, unless the session shops for someone else: all of it when flagged a gift;
        # when only far from the profile, by how much the session says (one view: little).
        profile = 1.0 if state.current is None else 0.0 if state.current.gift else \
            1.0 - session if state.current.off_profile else 1.0
        if profile > 0:
            for e in reversed(state.profile_events[-30:]):
                if e.type in STRENGTH:
                    add(e.product_id, profile * STRENGTH[e.type] * policies.anchor_weight(e.product_id, state, self.config),
                        e.type)
        return dict(sorted(anchors.items(), key=lambda kv: -kv[1][0])[:12])

    # -- 3-6. candidates, policies, ranking, explanations ------------------------------------
    def _allowed(self, state: ShopperState, anchors: dict[str, tuple[float, str]], ask: Ask, now: float,
                 cards: dict[str, ProductCard], page: bool):
        """The candidates, and those of them the policies and the ask allow:
        (offers, allowed rows, evidence, the rule as a function of a card, due restocks)."""
        tree = self.graph.categories
        # What the shopper had is not offered again, except what they are coming back to (a feed only).
        out, coming_back = policies.touched(state, self.config, now) if state.shopper_id and not page else (state.interacted, [])
        repurchase = self.graph.repurchase()
        restocks = policies.restocks(state, cards, repurchase, self.config, now)
        offers = self._candidates(anchors, state, ask, now, cards, page or self.strict_across,
                                  page and not ask.same_category, out, restocks, coming_back)
        # Merchandising: what is not available where the shopper is (a look's item stood in
        # for), and what a rule keeps out.
        location = policies.trip_location(state, self.config, now, ask.location) or state.home
        kept_out = self.merch.excludes(state.shopper_id, now)
        self._substitutes(offers, location, kept_out | state.dismissed | out, cards)
        evidence = offers.evidence()
        due = {pid for pid, _, _ in restocks} | {pid for pid, *_ in coming_back}  # offered back, first in line
        blocked = policies.owned_categories(state, cards, repurchase, self.config, now)
        excluded = set() if ask.same_category or not self.strict_across else {cards[a].category for a in anchors} - {None}

        def allowed(card: ProductCard) -> bool:
            if card.id in state.dismissed or card.id in kept_out or not self.merch.shown(card.id, location):
                return False
            if card.id not in due and (card.id in out or card.category in blocked or card.category in excluded):
                return False
            return not ask.categories or tree.within(card.category, ask.categories)

        return offers, [i for i, card in enumerate(offers.cards) if allowed(card)], evidence, allowed, due

    def _recommend(self, state: ShopperState, anchors: dict[str, tuple[float, str]], ask: Ask, now: float,
                   cards: dict[str, ProductCard], page: bool) -> Answer:
        offers, keep, evidence, allowed, due = self._allowed(state, anchors, ask, now, cards, page)
        scores = (self.ranker.score(self._features(offers, keep, evidence, anchors, state, page, cards))
                  if keep else np.zeros(0))
        shown = self._shown.get(state.shopper_id or "") or _Shown()
        if shown.impressions and len(keep):
            fade = np.array([policies.fade(offers.cards[i].id, state, shown.impressions.get(offers.cards[i].id, 0),
                                           self.config) for i in keep])
            scores = scores + np.log2(fade) * (scores.std() + 1e-3)  # each fade halving: a standard deviation down
        shift, ruled = self.merch.adjust([offers.cards[i].id for i in keep], state.shopper_id, now)
        if shift.any():  # boosts and buries, in standard deviations of this list's scores
            scores = scores + shift * (scores.std() + 1e-3)
        ranked = np.array(keep, dtype=np.int64)[np.argsort(-scores, kind="stable")].tolist()
        score_of = dict(zip(keep, scores.tolist()))
        if self.strict_across and not (state.current and state.current.gift):
            # Under the hand-set weights, who an item is for is a rule (a learned ranker reads it
            # from `department_affinity`): items of a department the shopper never shopped, and
            # that neither the item in view nor this session is in, go last.
            mine = {self.graph.categories.department(cards[pid].category)
                    for pid in [*(e.product_id for e in state.profile_events), *anchors] if pid in cards} - {None}
            if mine:
                ranked = _cap(ranked, [self.graph.categories.department(offers.cards[i].category) not in mine
                                       for i in ranked], 0)
        if page and not ask.same_category and not self.strict_across:
            # An item of no known category cannot be shown to complete the look: capped too.
            in_view = {cards[a].category for a in anchors} | {None}
            ranked = _cap(ranked, [offers.cards[i].category in in_view for i in ranked], int(ask.k * SAME_LEAF_SHARE))

        # Due restocks and what the shopper is coming back to belong in the visible slots; then
        # the ranking (under the hand-set weights, the best of each leaf first); then exploration.
        pinned = self._pinned(offers, ask, state, now, allowed, cards)
        restock_first = pinned + [i for i in ranked if offers.cards[i].id in due and i not in pinned][: max(1, ask.k // 4)]
        first = set(restock_first)
        rest = [i for i in ranked if i not in first]
        explore = round(ask.k * self.config.explore_share) if ask.explore else 0
        chosen = restock_first + (_fill_categories(rest, offers.cards, ask.k - explore - len(restock_first))
                                  if self.strict_across else rest[: ask.k - explore - len(restock_first)])
        picks = [(i, False) for i in chosen]
        if explore:
            picks += self._explore(state, offers, ranked, chosen, explore, page, now, shown, allowed, score_of)
            taken = {i for i, _ in picks}
            picks += itertools.islice(((i, False) for i in ranked if i not in taken), ask.k - len(picks))
        picks = picks[: ask.k]
        short_because = None
        if len(picks) < ask.k:
            picks, short_because = self._fill(state, offers, picks, ask, allowed, score_of, cards)
        picked = [offers.cards[i] for i, _ in picks]
        self._remember(state, picked)
        cards.update((card.id, card) for card in picked)
        reasons = self._reasons(offers, [i for i, _ in picks], anchors, state)
        return Answer([self._recommendation(cards, offers.cards[i], score_of.get(i, 0.0), reasons[i], exploring,
                                            ruled.get(offers.cards[i].id, []))
                       for i, exploring in picks], short_because)

    def _substitutes(self, offers: Offers, location: str | None, out: set[str], cards: dict[str, ProductCard]) -> None:
        """A look item that cannot be shown here is stood in for by the nearest available
        product of its leaf category (by LookGNN's vectors when there are some, else by the
        crowd's co-sessions), offered with the look's evidence and saying so."""
        walks = offers.walks
        for row in np.flatnonzero(walks.way == LOOK) if len(walks.candidate) else ():
            missing = offers.cards[walks.candidate[row]]
            if self.merch.shown(missing.id, location) or missing.category is None:
                continue
            substitute = self._nearest_available(missing, location, out | {c.id for c in offers.cards})
            if substitute is None:
                continue
            hit = walks.looks[walks.via[row]]
            cards[missing.id] = missing
            offers.add(substitute, "look", float(offers.walk_evidence[row]), explain.substitute_path,
                       (hit.look_id, hit.look_name, missing.id, self.merch.availability(missing.id, location), substitute.id))

    def _nearest_available(self, card: ProductCard, location: str | None, out: set[str]) -> ProductCard | None:
        """The product of `card`'s leaf category nearest it that can be shown and is not in `out`."""
        if self.model is not None and card.id in self.model.row:
            vectors = self.vectors.arrays["product"]
            leaf = self.vectors.product_category
            row = self.model.row[card.id]
            same = np.flatnonzero(leaf == leaf[row])
            ordered = same[np.argsort(-(vectors[same] @ vectors[row]), kind="stable")]
            ids = self.vectors.ids["product"]
            names = (ids[r] for r in ordered[:200])
        else:  # the crowd's co-sessions first, then the rest of the leaf category
            names = itertools.chain((hit.product_id for hit in self.graph.co_sessions([card.id], 50)),
                                    sorted(self.store.products_matching([card.category], None, None, None)))
        for pid in names:
            if pid != card.id and pid not in out and self.merch.shown(pid, location):
                found = self.graph.cards([pid]).get(pid)
                if found is not None and found.category == card.category:
                    return found
        return None

    def _pinned(self, offers: Offers, ask: Ask, state: ShopperState, now: float, allowed, cards) -> list[int]:
        """On a category page (`ask.categories`), the shown items of the looks pinned to it, first."""
        if not ask.categories:
            return []
        picks: list[int] = []
        for rule in self.merch.pins(ask.categories, state.shopper_id, now):
            try:
                look = self.store.get("looks", rule.look_id)
            except UnknownNode:
                continue
            for card in self.graph.cards(look.product_ids).values():
                if allowed(card) and card.id not in {offers.cards[i].id for i in picks}:
                    picks.append(offers.add(card, "look", 0.0, explain.pinned_path,
                                            (look.id, look.name, rule.name or rule.id, card.id)))
        return picks[: ask.k]

    def _candidates(self, anchors: dict[str, tuple[float, str]], state: ShopperState, ask: Ask, now: float,
                    cards: dict[str, ProductCard], across: bool, page: bool, out: set[str], restocks: list,
                    coming_back: list) -> Offers:
        ids = list(anchors)
        walks = self.graph.walk(ids, across_groups=across and not ask.same_category) if ids else NO_WALKS
        offers = walk_offers(walks, np.array([w for w, _ in anchors.values()]), state.dismissed)
        if self.model is not None:
            self.model.offer(offers, anchors, state, page, out, policies.session_weight(state, self.config))
        for pid, days, cycle in restocks:
            offers.add(cards[pid], "restock", 1.0, explain.restock_path, (state.shopper_id, pid, days, cycle))
        for pid, how, times, days in coming_back:
            if pid in cards:
                # The strongest signal a storefront has: above any path from an anchor (at most 6).
                offers.add(cards[pid], "returning", 6.0 * times / (1.0 + days), explain.returning_path,
                           (state.shopper_id, pid, how, times, days))
        trending = self.graph.trending()
        trip = policies.trip_location(state, self.config, now, ask.location)
        for card in trending.by_location.get(trip, [])[:20] if trip else []:
            offers.add(card, "trip", 1.0, explain.trip_path, (trip, card.id))
        if not offers.cards:  # a cold start: what is trending, groups ordered by this shopper's draw
            shown = self._shown.get(state.shopper_id or "") or _Shown()
            ordered = policies.explore_groups(state, trending, len(trending.by_group), int(now // policies.DAY), shown.groups)
            for rank, group in enumerate(ordered):
                for card in trending.by_group[group][:5]:
                    offers.add(card, "trending", 1.0 / (1 + rank), explain.trending_path,
                               (group, self.graph.categories.names.get(group, group), card.id))
        return offers

    def _features(self, offers: Offers, keep: list[int], evidence: np.ndarray, anchors: dict[str, tuple[float, str]],
                  state: ShopperState, page: bool, cards: dict[str, ProductCard]) -> np.ndarray:
        """The features of each candidate of `keep`; `cards`: the request's known products."""
        tree = self.graph.categories
        leaves, groups, departments = Counter(), Counter(), Counter()
        profile = [e.product_id for e in state.profile_events if e.type in STRENGTH and e.product_id in cards]
        # Without a history (a product page, for anyone), the items in view are the context.
        context_items = profile or [a for a in anchors if a in cards]
        for pid in context_items:
            leaf = cards[pid].category
            leaves[leaf] += 1
            groups[tree.group(leaf)] += 1
            departments[tree.department(leaf)] += 1
        total = max(len(context_items), 1)
        context = Context(
            anchor_leaves={cards[a].category for a in anchors} - {None},
            leaf_share={k: v / total for k, v in leaves.items()}, group_share={k: v / total for k, v in groups.items()},
            department_share={k: v / total for k, v in departments.items()}, department_of=tree.department,
            history=len(profile), in_view=page or state.current is not None, group_of=tree.group,
            leaf_return=self.model.leaf_return if self.model else {})
        if self.model is not None:
            rows = np.fromiter((self.model.row.get(offers.cards[i].id, -1) for i in keep), dtype=np.int64, count=len(keep))
            known = rows >= 0
            at = np.maximum(rows, 0)
            catalogue = offers.catalogue
            if "complement" in catalogue:
                context.complement = _standardised(catalogue["complement"][at], known)
                context.content = np.where(known, catalogue["content"][at], 0.0)
                crowd_rows, crowd_evidence = catalogue["co_engagement"]
                if len(crowd_rows):
                    slot = np.minimum(np.searchsorted(crowd_rows, rows), len(crowd_rows) - 1)
                    context.co_engagement = np.where(known & (crowd_rows[slot] == rows), crowd_evidence[slot], 0.0)
            if "preference" in catalogue:
                context.preference = _standardised(catalogue["preference"][at], known)
            if "collaborative" in catalogue:
                context.collaborative = _standardised(catalogue["collaborative"][at], known)
            for name in ("popularity", "trend"):
                if name in self.vectors.arrays:
                    setattr(context, name, np.where(known, np.log1p(self.vectors.arrays[name][at]), 0.0))
        return features(offers, keep, evidence, context)

    def _explore(self, state, offers: Offers, ranked: list[int], chosen: list[int], slots: int, page: bool,
                 now: float, shown: _Shown, allowed, score_of: dict) -> list[tuple[int, bool]]:
        """Exploration slots. On a product page: the best candidates (all of them complete the
        item in view) from category groups the list does not show yet. In a feed: Thompson
        sampling over category groups the shopper does not usually buy."""
        tree, picks = self.graph.categories, []
        taken = set(chosen)
        if page:
            groups = {tree.group(offers.cards[i].category) for i in chosen}
            for i in ranked:
                group = tree.group(offers.cards[i].category)
                if i not in taken and group not in groups:
                    picks.append((i, True))
                    groups.add(group)
                    taken.add(i)
                    if len(picks) == slots:
                        break
            return picks
        trending = self.graph.trending()
        # Near: the departments of the profile, and of the session once it says enough (one view
        # of a new department is no reason to explore it).
        groups = set(state.profile_groups) | (state.touched_groups if policies.session_weight(state, self.config) >= 1
                                              or not state.profile_groups else set())
        departments = {tree.department(g) for g in groups}
        near = (lambda group: tree.department(group) in departments) if departments else None  # noqa: E731
        for group in policies.explore_groups(state, trending, slots, int(now // policies.DAY), shown.groups, near):
            for card in trending.by_group.get(group, []):
                if card.id not in offers.position or offers.position[card.id] not in taken:
                    if not allowed(card):
                        continue
                    i = offers.add(card, "trending", 0.0, explain.trending_path,
                                   (group, tree.names.get(group, group), card.id, True))
                    score_of.setdefault(i, 0.0)
                    picks.append((i, True))
                    taken.add(i)
                    break
        return picks

    def _fill(self, state: ShopperState, offers: Offers, picks: list, ask: Ask, allowed, score_of: dict,
              cards: dict[str, ProductCard]) -> tuple[list, str | None]:
        """A list the sources left short, filled from best sellers that pass the same rules,
        the shopper's usual category groups first; says why when even that falls short."""
        why = f"the shopper's own paths found {len(picks)} of the {ask.k} items asked for"
        taken = {offers.cards[i].id for i, _ in picks}
        pool: list[ProductCard] = []
        popular = self.model.popular if self.model else None
        if popular is not None:
            ids = self.vectors.ids["product"]
            pool = list(self.graph.cards([ids[r] for r in popular[: 20 * ask.k + 200]]).values())
        trending = self.graph.trending()
        usual = [g for g, _ in state.profile_groups.most_common()]
        for group in [*usual, *sorted(g for g in trending.by_group if g not in usual)]:
            pool += trending.by_group.get(group, [])
        if popular is not None and usual:  # best sellers of the shopper's usual groups first
            rank = {g: n for n, g in enumerate(usual)}
            pool.sort(key=lambda c: rank.get(self.graph.categories.group(c.category), len(rank)))
        for card in pool:
            if len(picks) >= ask.k:
                break
            if card.id in taken or not allowed(card):
                continue
            name = self.graph.categories.names.get(card.category, card.category) if card.category else None
            i = offers.add(card, "popular", 1.0, explain.popular_path, (card.category, name, card.id, why))
            score_of.setdefault(i, 0.0)
            picks.append((i, False))
            taken.add(card.id)
        if len(picks) >= ask.k:
            return picks, None
        rules = ["what the shopper already has or dismissed"]
        if ask.categories:
            rules.append(f"category {', '.join(ask.categories)}")
        if not ask.same_category:
            rules.append("other categories than the item in view" if ask.product_id else "complementary categories")
        return picks, f"only {len(picks)} products pass the filters ({'; '.join(rules)})"

    def _reasons(self, offers: Offers, picked: list[int], anchors: dict[str, tuple[float, str]], state: ShopperState
                 ) -> dict[int, list[tuple[int, float, object, tuple]]]:
        """Every reason each picked candidate was offered for: (the source's rank in
        `EXPLAINED_FIRST`, evidence, path builder, its arguments)."""
        walks, ids = offers.walks, list(anchors)
        reasons: dict[int, list] = {i: [] for i in picked}
        rows = np.flatnonzero(np.isin(walks.candidate, picked))
        for i, anchor, way, via, e in zip(*(column[rows].tolist() for column in
                                           (walks.candidate, walks.anchor, walks.way, walks.via, offers.walk_evidence))):
            a, pid = ids[anchor], offers.cards[i].id
            if way == LOOK:
                look = walks.looks[via]
                reasons[i].append((FIRST["look"], e, explain.look_path,
                                   (a, look.look_id, look.look_name, look.mined, pid, anchors[a][1])))
            elif way == ATTRIBUTE:
                reasons[i].append((FIRST["attribute"], e, explain.attribute_path, (a, walks.attributes[via], pid, anchors[a][1])))
            else:
                reasons[i].append((FIRST["crowd"], e, explain.crowd_path, (a, pid, via)))
        for i, column, e, build, args in offers.others:
            if i in reasons:
                reasons[i].append((FIRST[SOURCES[column]], e, build, args))
        return reasons

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

    def _recommendation(self, cards, card: ProductCard, score: float, reasons: list, exploring: bool,
                        rules: list[str]) -> Recommendation:
        ordered = sorted(reasons, key=lambda r: (r[0], -r[1]))
        pinned = [r for r in ordered if r[2] is explain.pinned_path]  # a pin is why it leads the page: said first
        paths, drawn = [], set()
        for _, _, build, args in pinned + [r for r in ordered if r not in pinned]:
            path = build(cards, *args)
            key = (tuple((step.label, step.id) for step in path.nodes), tuple(path.relationships))
            if key not in drawn:  # two reasons can draw the same path (two walks, one look): said once
                drawn.add(key)
                paths.append(path)
                if len(paths) == 2:
                    break
        rules = rules + [f"pinned by rule {args[2]!r}" for _, _, _, args in pinned[:1]]
        return Recommendation(card.id, card.name, card.category, round(float(score), 4), paths, exploring,
                              paths[0].sentence if paths else "", rules)


def _standardised(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Scores standardised over the known rows; unknown rows 0."""
    out = np.zeros(len(scores))
    if known.sum() > 1:
        values = scores[known]
        out[known] = (values - values.mean()) / (values.std() + 1e-9)
    return out


def _cap(ranked: list[int], capped: list[bool], most: int) -> list[int]:
    """`ranked` with the capped items past the first `most` moved to the end (order kept)."""
    head, tail = [], []
    for i, is_capped in zip(ranked, capped):
        (tail if is_capped and (most := most - 1) < 0 else head).append(i)
    return head + tail


def _fill_categories(ranked: list[int], cards: list[ProductCard], k: int) -> list[int]:
    """Best item of each leaf category first, in rank order; then the rest."""
    if k <= 0:
        return []
    first, seen = [], set()
    for i in ranked:
        if cards[i].category not in seen:
            seen.add(cards[i].category)
            first.append(i)
            if len(first) == k:
                return first
    chosen = set(first)
    return first + [i for i in ranked if i not in chosen][: k - len(first)]
