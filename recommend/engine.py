"""The recommendation engine: what the API routes call. Every request runs one pipeline, each
stage a module of its own, entered once:

1. `request.py`: the shopper's events, read from the store (read-your-writes), and what the
   policies make of them (context, profile, gifts, trips, what they had, what is due), and
   the anchors the walks start from;
2. `candidates.gather`: every source's candidates (graph walks, LookGNN, collaborative,
   preference, restocks, a trip's location, trending for a cold start);
3. `filters.admit`: what may be shown (availability, rules, what the shopper had, one-time
   purchases, the ask's categories);
4. `features.describe`: one row of features per candidate;
5. `ranker.rank`: the learned ranker of the artifact (or the hand-set weights without one),
   faded by repeated impressions, moved by the rules' boosts and buries;
6. `arrange.arrange`: caps, pins, restocks first, exploration slots, best sellers to fill;
7. `explanations.explain`: each item with the paths that led to it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.limits import FUTURE_SLACK_SECONDS
from ..graph.store import GraphStore, erasure_key
from ..graph.traversal import ProductCard, Traversal
from . import policies
from .arrange import arrange
from .candidates import gather
from .explanations import Answer, explain
from .features import describe
from .filters import admit
from .merchandising import Merchandising
from .model_sources import ModelSources
from .policies import PolicyConfig, ShopperState
from .ranker import EvidenceRanker, LearnedRanker, rank
from .request import Ask, Request, for_look
from .request import for_shopper as shopper_request

__all__ = ["Ask", "Engine"]

MAX_IMPRESSIONS = 1_000
"""Impressions are remembered for at most this many products per shopper."""
MAX_SHOPPERS_REMEMBERED = 50_000
"""Shoppers whose impressions this process remembers (least recently served forgotten first):
about 1.8 KiB each, so at most about 90 MiB."""


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
        chosen = (self.vectors.meta.get("across_only") or {}).get("chosen", True) if self.vectors else True
        self.strict_across = not isinstance(self.ranker, LearnedRanker) and chosen
        """Under the hand-set weights every list leaves out the anchors' categories, unless
        training found on held-out queries that this shop's shoppers want more of a category
        (`offline.choose_across_only`). A learned ranker decides from the data when more of a
        category is wanted. Either way a product page keeps at most `arrange.SAME_LEAF_SHARE`
        of its slots for the categories already in view (the ranker learns from candidates
        gathered with this off)."""

    # -- entry points ------------------------------------------------------------------------
    def for_shopper(self, shopper_id: str, ask: Ask) -> Answer:
        """A shopper's feed (or, with `ask.product_id`, their view of a product page). A shopper
        the store does not know yet is answered from the crowd, as an anonymous visitor is."""
        return self.answer(lambda: shopper_request(self, shopper_id, ask))

    def for_session(self, session_id: str, ask: Ask) -> Answer:
        """An anonymous visitor: the session's events so far plus the items asked about."""
        return self.answer(lambda: shopper_request(self, None, Ask(**{**ask.__dict__, "session_id": session_id})))

    def complete_the_look(self, product_id: str, ask: Ask) -> Answer:
        """What completes the look around a product (a product page, for anyone), given also
        the other items already chosen for it (`ask.items`)."""
        return self.answer(lambda: for_look(self, product_id, ask))

    def answer(self, request_of: Callable[[], Request]) -> Answer:
        """One request read in one read transaction (`GraphStore.read_together`: on Neo4j a
        request is one transaction and sees one snapshot), then what it showed remembered."""
        request, shown, answer = self.store.read_together(lambda: self.recommend(request_of()))
        self._remember(request.state, shown)
        return answer

    def recommend(self, request: Request) -> tuple[Request, list[ProductCard], Answer]:
        """The pipeline, stage by stage: the request, the cards it shows, the answer."""
        offers = gather(self, request)
        admission = admit(self, request, offers)
        x = describe(self, request, offers, admission.keep)
        scores, ruled = rank(self, request, offers, admission.keep, x)
        picks, short_because, score_of = arrange(self, request, offers, admission, scores)
        answer = explain(request, offers, picks, score_of, ruled, short_because)
        return request, [offers.cards[i] for i, _ in picks], answer

    def candidate_features(self, shopper_id: str | None, ask: Ask, look: bool = False) -> tuple[list[str], np.ndarray]:
        """The candidates the filter allows and their features, as the ranker sees them (for
        training the ranker: `recommend/offline.py`). `shopper_id` None: an anonymous session;
        `look`: complete the look around `ask.product_id` and `ask.items`."""
        request = for_look(self, ask.product_id, ask) if look else shopper_request(self, shopper_id, ask)
        offers = gather(self, request)
        keep = admit(self, request, offers).keep
        return [offers.cards[i].id for i in keep], describe(self, request, offers, keep)

    def policies_in_force(self, shopper_id: str) -> list[str]:
        """The policies shaping this shopper's lists now, as sentences (for the console)."""
        request = shopper_request(self, shopper_id, Ask(k=10))
        state, names = request.state, self.graph.categories.names
        notes = []
        owned = policies.owned_categories(state, request.cards, self.graph.repurchase(), self.config, request.now)
        if owned:
            notes.append("one-time purchases and fresh restocks, not offered again now: "
                         + ", ".join(sorted(names.get(c, c) for c in owned)))
        if state.current is not None and (state.current.gift or state.current.off_profile):
            notes.append("this session shops for someone else: it shapes this session only, never the profile")
        if request.trip:
            notes.append(f"travelling: suggestions sell in {request.trip}; the home location stays {state.home}")
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

    def reload_graph(self) -> None:
        """Read the graph's walks, the merchandising and the sources over them again from the
        store (after a bulk load, new categories, another process's mined looks): built beside
        what is served, then swapped in."""
        graph = self.store.traversal(self.vectors)
        merch = Merchandising(self.store, graph.categories)
        ranker = self.ranker if isinstance(self.ranker, LearnedRanker) else None
        self.graph, self.merch = graph, merch
        self.install(self.prepare(self.vectors, ranker))

    def forget_erased(self, key: str) -> None:
        """An erasure recorded in the store's change log (by its `erasure_key`): forget every
        shopper of this process with that key, and recount the crowd without them."""
        with self._lock:
            remembered = [sid for sid in self._shown if erasure_key(sid) == key]
        learnt = [sid for sid in (self.model.shopper_row if self.model else ()) if erasure_key(sid) == key]
        for shopper_id in dict.fromkeys(remembered + learnt):
            with self._lock:
                self._shown.pop(shopper_id, None)
            if self.model is not None:
                self.model.shopper_erased(shopper_id)
        self.graph.shopper_erased("")

    def forget(self, shopper_id: str) -> None:
        """Drop what this process holds of a shopper, on erasure: impressions, their part in
        the crowd's counts and statistics, their learnt vector."""
        with self._lock:
            self._shown.pop(shopper_id, None)
        self.graph.shopper_erased(shopper_id)
        if self.model is not None:
            self.model.shopper_erased(shopper_id)

    # -- what this process remembers of shoppers: impressions ---------------------------------
    def impressions(self, shopper_id: str | None) -> dict[str, int]:
        """How often each product was shown to the shopper since they last engaged with it."""
        shown = self._shown.get(shopper_id or "")
        return shown.impressions if shown else {}

    def shown_groups(self, shopper_id: str | None) -> Counter:
        """How often each category group was shown to the shopper (exploration's draw)."""
        shown = self._shown.get(shopper_id or "")
        return shown.groups if shown else Counter()

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
