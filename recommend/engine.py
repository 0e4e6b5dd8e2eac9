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

Every request's reads run in one read transaction (`GraphStore.read_together`); each list served
gets a recommendation id and goes to `keep_shown` (the API's impression log, `impressions.py`),
from which later requests read what the shopper was shown (fading, exploration). A list inside a
running experiment is served by its variant's engine (`arm`) and names the variant
(`experiments.py`).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable

import numpy as np

from ..embeddings.vectors import LookVectors
from ..graph.limits import FUTURE_SLACK_SECONDS
from ..graph.model import Impression, Variant
from ..graph.store import GraphStore, erasure_key
from ..graph.traversal import Traversal
from . import policies
from .arrange import arrange
from .candidates import gather
from .experiments import Experiments, tag
from .exploration import arms_of
from .explanations import Answer, explain
from .features import describe
from .filters import admit
from .impressions import impression_of, new_recommendation_id
from .merchandising import Merchandising
from .model_sources import ModelSources
from .policies import PolicyConfig
from .ranker import EvidenceRanker, LearnedRanker, rank
from .request import Ask, Request, for_look
from .request import for_shopper as shopper_request

__all__ = ["Ask", "Engine"]

log = logging.getLogger("lookgraph.engine")

class Engine:
    def __init__(self, store: GraphStore, graph: Traversal, vectors: LookVectors | None = None,
                 config: PolicyConfig | None = None, clock=time.time, ranker: LearnedRanker | None = None,
                 keep_shown: Callable[[Impression], object] | None = None,
                 load_version: Callable[[str], tuple[LookVectors, LearnedRanker | None]] | None = None):
        self.store, self.graph = store, graph
        self.load_version = load_version
        """Reads a trained version's vectors and ranker (`api/artifacts.load_version`), for the
        experiments' variants that name one."""
        self._versions: dict[str, tuple] = {}
        """version -> (its vectors, its ranker, the graph it was prepared over, prepared): shared
        by every arm."""
        self.config = config or PolicyConfig()
        self.clock = clock
        self.keep_shown = keep_shown
        """Where each list served goes to be kept (`impressions.ImpressionLog.record`): what
        fading and exploration read back from the store (`request.Request.shown`)."""
        self.merch = Merchandising(store, graph.categories)
        self.experiments = Experiments(store)
        self.exploration = arms_of(store.exploration_state())
        """What exploration earned (`exploration.py`), read again when any process counts anew."""
        self._arms: dict[tuple[str, str], tuple[tuple, Engine, int]] = {}
        self.variant: str | None = None
        """The experiment variant ("<experiment>/<variant>") this engine serves (`arm`): the
        rules made for it apply."""
        self.future_slack = FUTURE_SLACK_SECONDS
        """Events dated up to this long after the clock count (a storefront's clock may run a
        little ahead); the offline engine sets 0, so that a query at t sees nothing after t."""
        self.install(self.prepare(vectors, ranker))
        self.warm_versions()

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
    def for_shopper(self, shopper_id: str, ask: Ask, kind: str | None = "feed") -> Answer:
        """A shopper's feed (or, with `ask.product_id`, their view of a product page). A shopper
        the store does not know yet is answered from the crowd, as an anonymous visitor is.
        `kind` None: a preview (the console's), not shown to the shopper, so not kept."""
        return self.answer(lambda engine: shopper_request(engine, shopper_id, ask), kind, shopper_id, ask.session_id)

    def for_session(self, session_id: str, ask: Ask) -> Answer:
        """An anonymous visitor: the session's events so far plus the items asked about."""
        ask = Ask(**{**ask.__dict__, "session_id": session_id})
        return self.answer(lambda engine: shopper_request(engine, None, ask), "session", None, session_id)

    def complete_the_look(self, product_id: str, ask: Ask, kind: str | None = "complete_the_look") -> Answer:
        """What completes the look around a product (a product page, for anyone), given also
        the other items already chosen for it (`ask.items`); `ask.session_id`, when the page
        knows it, puts the list in the visitor's experiment variant."""
        return self.answer(lambda engine: for_look(engine, product_id, ask), kind, None, ask.session_id)

    def answer(self, request_of: Callable[[Engine], Request], kind: str | None, shopper_id: str | None,
               session_id: str | None) -> Answer:
        """One request read in one read transaction (`GraphStore.read_together`: on Neo4j a
        request is one transaction and sees one snapshot), served by the engine of the
        shopper's experiment variant if any; the list shown is given a recommendation id and
        handed to `keep_shown` (the API's impression log) to be kept."""
        engine, variant = self, None
        serving = self.experiments.serving(kind, shopper_id, session_id, self.clock()) if kind is not None else None
        if serving is not None:
            experiment, name, arm = serving
            variant = tag(experiment, name)
            engine = self.arm(experiment.id, arm) if arm is not None else self
        request, answer = self.store.read_together(lambda: engine.recommend(request_of(engine)))
        answer.recommendation_id, answer.variant = new_recommendation_id(), variant
        answer.model = engine.vectors.meta.get("version") if engine.vectors is not None else None
        if self.keep_shown is not None and kind is not None and answer.items:
            ranker = "lambdarank" if isinstance(engine.ranker, LearnedRanker) else "hand-set"
            self.keep_shown(impression_of(answer, kind, request, answer.model, ranker))
        return answer

    def exploration_arms(self) -> dict[str, tuple[float, float]] | None:
        """What exploration's draw learns from (`policies.exploration_draws`); None: nothing."""
        return self.exploration if self.config.explore_learns else None

    def arm(self, experiment_id: str, variant: Variant) -> Engine:
        """The engine a variant serves from: this one with the variant's policies, ranker,
        model and rules; made once per variant and again when what it copies was replaced (a
        reload, a new artifact, a rule or product written, exploration's new counts)."""
        served = (self.graph, self.merch, self.vectors, self.model, self.ranker, self.config, self.exploration)
        kept = self._arms.get((experiment_id, variant.name))
        if kept is not None and kept[2] == self.merch.changes and all(a is b for a, b in zip(kept[0], served)):
            return kept[1]
        arm = copy.copy(self)
        arm._arms, arm.variant = {}, f"{experiment_id}/{variant.name}"
        if variant.policy:
            arm.config = PolicyConfig(**{**self.config.model_dump(), **variant.policy})
        if not variant.rules:
            arm.merch = self.merch.without_rules(arm.variant)
        if variant.model == "none":
            arm.install((None, None, EvidenceRanker()))
        elif variant.model != "served":
            try:
                vectors, model, ranker = self.version(variant.model)
            except Exception:  # its answers say which model served them (`Answer.model`)
                log.exception("could not load model %s for variant %s: serving the served one", variant.model, variant.name)
                vectors, model, ranker = self.vectors, self.model, self.ranker
            arm.install((vectors, model, ranker if variant.ranker == "served" else EvidenceRanker()))
        elif variant.ranker == "hand-set":
            arm.install((self.vectors, self.model, EvidenceRanker()))
        self._arms[(experiment_id, variant.name)] = (served, arm, self.merch.changes)
        return arm

    def version(self, name: str) -> tuple:
        """A trained version other than the one served, prepared over the current graph: read
        once, prepared again only when the graph is read again."""
        kept = self._versions.get(name)
        if kept is None:
            if self.load_version is None:
                raise LookupError(f"no trained versions to load from: cannot serve model {name!r}")
            vectors, ranker = self.load_version(name)
            kept = (vectors, ranker, None, None)
        if kept[2] is not self.graph:
            kept = self._versions[name] = (kept[0], kept[1], self.graph, self.prepare(kept[0], kept[1]))
        return kept[3]

    def warm_versions(self) -> None:
        """Read the versions that running or scheduled experiments' variants name, so that no
        request waits for one; a version no longer named is let go."""
        now, named = self.clock(), set()
        for experiment in self.experiments.all():
            if experiment.ends_at is None or experiment.ends_at > now:
                named |= {v.model for v in experiment.variants if v.model not in ("served", "none")}
        for name in set(self._versions) - named:
            del self._versions[name]
        for name in sorted(named):
            try:
                self.version(name)
            except Exception:  # its requests are answered by the served model meanwhile (`arm`)
                log.exception("could not load model %s for an experiment's variant", name)

    def recommend(self, request: Request) -> tuple[Request, Answer]:
        """The pipeline, stage by stage."""
        offers = gather(self, request)
        admission = admit(self, request, offers)
        x = describe(self, request, offers, admission.keep)
        scores, ruled = rank(self, request, offers, admission.keep, x)
        picks, short_because, score_of = arrange(self, request, offers, admission, scores)
        return request, explain(request, offers, picks, score_of, ruled, short_because)

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
        picks = self.for_shopper(shopper_id, Ask(k=k), kind="outbound")
        return {"contact": True, "reason": reason, "retry_after": None, "items": picks.items,
                "recommendation_id": picks.recommendation_id, "variant": picks.variant}

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
        """An erasure recorded in the store's change log (by its `erasure_key`): forget the
        learnt vector of every shopper with that key, and recount the crowd without them."""
        for model in [self.model, *(kept[3][1] for kept in self._versions.values() if kept[3] is not None)]:
            for shopper_id in [sid for sid in (model.shopper_row if model else ()) if erasure_key(sid) == key]:
                model.shopper_erased(shopper_id)
        self.graph.shopper_erased("")
