"""Rankers: a score per candidate from its features (`features.FEATURES`), higher first.

Contract: `score(X)` for X [candidates, FEATURES] returns one float per row; only the order
within one request matters. Two rankers:

- `LearnedRanker`: LightGBM's LambdaRank, trained by `lookgraph train` on held-out next
  interactions of the training graph (`recommend/offline.py`), saved with the artifact as
  `ranker.txt` (the model) and `ranker.json` (features, gain per feature, validation NDCG).
  Each kind of request (a known shopper's feed, with a profile to go on; an anonymous visitor's
  session, with only its items so far; a product page, with only the items in view) has a
  base: the feature that ranks that kind's validation queries best alone. The trees are learnt
  twice, from nothing and over the base,

      trees(x)          or        z(x[:, base[kind]]) + trees'(x)     z: standardised over the candidates

  and each kind is ranked whichever way, or by its base alone, does best on its own validation
  queries (`way`). A shop where one signal carries (EASE's on film ratings) is served at least
  that signal's ranking. A kind with fewer than `MIN_BASE_QUERIES` validation queries is
  ranked as the kind it `BORROWS` from (a session as a feed), else by the trees from nothing;
- `EvidenceRanker`: the hand-set weights used when no ranker was trained (a store served
  without a model, too little held-out data, or an artifact from before the ranker):
  log(1 + weighted evidence) plus the LookGNN complement and preference scores (the engine
  then puts items of a department the shopper never shopped last).

`rank` is the pipeline's stage: the ranker's scores, lowered for what was shown again and again
without engagement, moved by the rules' boosts and buries.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from . import policies
from .candidates import SOURCES, Offers
from .features import FEATURES
from .merchandising import RuleSentences

EVIDENCE_WEIGHT = {"look": 1.0, "attribute": 0.4, "crowd": 0.3, "content": 0.4, "embedding": 0.5, "personal": 0.5,
                   "collaborative": 0.5,
                   "restock": 2.0, "returning": 2.0, "trip": 0.3, "trending": 0.2, "popular": 0.05}
_WEIGHTS = np.array([EVIDENCE_WEIGHT[s] for s in SOURCES])
_COMPLEMENT, _PREFERENCE = FEATURES.index("complement"), FEATURES.index("preference")
_HISTORY = FEATURES.index("history")

KINDS = ("feed", "session", "page")
MIN_BASE_QUERIES = 30
"""Held-out queries of a kind needed to choose its base feature."""
BORROWS = {"session": "feed"}
"""A kind with too few queries of its own is ranked as this kind is: a session is a feed whose
profile is the session (a shop with looks asks no session queries)."""
RANKER_THREADS = min(2, os.cpu_count() or 1)
"""LightGBM's threads while learning: a fixed count, so that a machine learns the same trees
whatever else it is doing."""
FOLDS = 5
CROSS_FIT_QUERIES = 1_000
"""Below this many answerable held-out queries the ranker is cross-fitted over `FOLDS` folds
(every query validates once); above, one validation fifth is plenty and a fifth of the cost."""
EARLY_STOPPING_ROUNDS = 30
"""Boosting stops this many rounds after the validation queries' NDCG@20 last rose."""


def kind_of(x: np.ndarray, anonymous: bool = False) -> str:
    """"page": nothing to go on but the items in view (a product page, for anyone); else
    "session" for an anonymous visitor (their session's items are their profile), "feed" for a
    known shopper. The features cannot tell the last two apart: the request says (`anonymous`)."""
    if not len(x) or x[0, _HISTORY] <= 0:
        return "page"
    return "session" if anonymous else "feed"


def _base_scores(base: dict, x: np.ndarray, anonymous: bool = False) -> np.ndarray:
    feature = base.get(kind_of(x, anonymous))
    return _standardised(x[:, FEATURES.index(feature)]) if feature else np.zeros(len(x))


class EvidenceRanker:
    name = "evidence (hand-set weights)"

    def score(self, x: np.ndarray, anonymous: bool = False) -> np.ndarray:
        evidence = np.expm1(x[:, : len(SOURCES)]) @ _WEIGHTS
        return np.log1p(evidence) + x[:, _COMPLEMENT] + 0.5 * x[:, _PREFERENCE]

    def describe(self) -> dict:
        return {"ranker": self.name, "weights": EVIDENCE_WEIGHT,
                "plus": "complement + 0.5 x preference (both standardised per request); items of a department "
                        "the shopper never shopped last"}


class LearnedRanker:
    name = "lambdarank"

    def __init__(self, boosters: dict, report: dict):
        self.boosters, self.report = boosters, report
        """"trees": LambdaRank from nothing; "boosted": LambdaRank over the base features; each a
        list of boosters whose scores are averaged (one, as `fit_ranker` learns them)."""

    def score(self, x: np.ndarray, anonymous: bool = False) -> np.ndarray:
        """`anonymous`: the request is an anonymous visitor's (`kind_of`)."""
        kind = kind_of(x, anonymous)
        way = self.report.get("way", {}).get(kind) or self.report.get("way", {}).get(BORROWS.get(kind), "trees")
        if way == "trees":
            return self._trees("trees", x)
        scores = _base_scores(self.report["base"], x, anonymous)
        return scores + self._trees("boosted", x) if way == "boosted" else scores

    def _trees(self, way: str, x: np.ndarray) -> np.ndarray:
        return sum(b.predict(x, num_threads=1) for b in self.boosters[way]) / len(self.boosters[way])

    def describe(self) -> dict:
        return self.report

    def save(self, folder: Path) -> None:
        for way, boosters in self.boosters.items():
            for n, booster in enumerate(boosters):
                booster.save_model(str(folder / f"ranker-{way}-{n}.txt"))
        (folder / "ranker.json").write_text(json.dumps(self.report, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> LearnedRanker | None:
        """The artifact's ranker, or None when it has none."""
        import lightgbm

        if not (folder / "ranker.json").exists():
            return None
        report = json.loads((folder / "ranker.json").read_text())
        if report.get("features") != list(FEATURES):
            return None  # trained on other features: the hand-set weights serve instead
        boosters = {}
        for way, before_folds in (("trees", "ranker.txt"), ("boosted", "ranker-boosted.txt")):
            files = sorted(folder.glob(f"ranker-{way}-*.txt"), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
            files = files or [f for f in (folder / before_folds,) if f.exists()]  # an artifact of one split
            if files:
                boosters[way] = [lightgbm.Booster(model_file=str(f)) for f in files]
        return cls(boosters, report)


def rank(engine, request, offers: Offers, keep: list[int], x: np.ndarray) -> tuple[np.ndarray, RuleSentences]:
    """(a score per candidate of `keep`, the rules that moved each product). Fades and rules
    move a score by standard deviations of this list's scores: each fade halving one down."""
    state = request.state
    scores = engine.ranker.score(x, anonymous=state.shopper_id is None) if keep else np.zeros(0)
    impressions = request.shown
    if impressions and len(keep):
        fade = np.array([policies.fade(offers.cards[i].id, state, impressions.get(offers.cards[i].id, 0), engine.config)
                         for i in keep])
        scores = scores + np.log2(fade) * (scores.std() + 1e-3)
    shift, ruled = engine.merch.adjust([offers.cards[i].id for i in keep], state.shopper_id, request.now, engine.variant)
    if shift.any():  # boosts and buries
        scores = scores + shift * (scores.std() + 1e-3)
    return scores, ruled


def _standardised(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-9) if len(values) else values


def ndcg(groups: list[tuple[np.ndarray, ...]], score) -> float:
    """Mean NDCG@20 over query groups (features, relevance[, weights[, anonymous]]) ranked by
    `score(x, anonymous)`, ties in the order given (the weights are for training, not for this)."""
    found = []
    for g in groups:
        order = np.argsort(-score(g[0], *g[3:4]), kind="stable")[:20]
        gains = (2.0 ** g[1] - 1)
        ideal = np.sort(gains)[::-1][:20]
        discount = 1 / np.log2(np.arange(2, 22))
        found.append(float(gains[order] @ discount[: len(order)]) / max(float(ideal @ discount[: len(ideal)]), 1e-12))
    return float(np.mean(found)) if found else 0.0


def fit_ranker(groups: list[tuple[np.ndarray, ...]], seed: int = 7, threads: int = RANKER_THREADS, rounds: int = 300,
               learn_only: list[tuple[np.ndarray, ...]] = ()) -> LearnedRanker:
    """LambdaRank on held-out query groups (features, relevance[, each row's weight[, whether
    an anonymous visitor asked]]), learnt
    twice: from nothing, and over each kind's base feature (the one that ranks that kind's
    queries best alone).

    Cross-fitted: the queries fall into `folds` (`FOLDS` below `CROSS_FIT_QUERIES` queries,
    else one: four fifths to learn from, a fifth to validate on); each fold's trees are learnt
    on the other folds, with early stopping on their own. Every query is thus scored once by
    trees that never saw it; what serves is learnt once more from every query, for the folds'
    mean number of rounds (one model per way, as cheap to serve as one split's). Each kind of
    request is ranked the way that does best on those out-of-fold scores: by the simplest of
    the base alone, the base with trees over it, and the trees from nothing whose NDCG@20 is
    within one standard error of the best (a few hundred queries choose by noise otherwise). A
    kind with fewer than `MIN_BASE_QUERIES` queries is ranked as the kind it `BORROWS` from
    (its base, and its way), else by the trees from nothing.
    `learn_only`: more groups learnt from in every fold, never validated on (logged feeds).
    Groups without a relevant candidate teach nothing and are left out."""
    def useful(groups):
        return [(g[0], g[1], g[2] if len(g) > 2 else np.ones(len(g[1])), bool(g[3]) if len(g) > 3 else False)
                for g in groups if g[1].any() and len(g[1]) > 1]

    groups, learn_only = useful(groups), useful(learn_only)
    if len(groups) < 2:
        raise ValueError("fewer than two held-out interactions were among the candidates: nothing to learn a ranker from")
    folds = FOLDS if len(groups) < CROSS_FIT_QUERIES else 1
    order = np.random.default_rng(seed).permutation(len(groups))
    fold_of = np.empty(len(groups), dtype=np.int64)
    fold_of[order] = np.arange(len(groups)) % FOLDS if folds > 1 else (np.arange(len(groups)) >= int(len(groups) * 0.8))
    kinds = np.array([kind_of(g[0], g[3]) for g in groups])
    base, own = {}, {}
    for kind in KINDS:
        queries = [g for g, k in zip(groups, kinds) if k == kind]
        alone = {f: ndcg(queries, lambda x, *_, i=i: x[:, i]) for i, f in enumerate(FEATURES)}
        own[kind] = len(queries) >= MIN_BASE_QUERIES
        base[kind] = max(alone, key=alone.get) if own[kind] else None
    for kind, lender in BORROWS.items():
        if not own[kind]:
            base[kind] = base[lender]
    ways = ("trees", "boosted") if any(base.values()) else ("trees",)
    boosters = {way: [] for way in ways}
    found = {way: np.zeros(len(groups)) for way in (*ways, "base")}  # each query's out-of-fold NDCG@20
    for fold in range(folds) if folds > 1 else (1,):
        learn = [g for g, f in zip(groups, fold_of) if f != fold] + learn_only
        valid = np.flatnonzero(fold_of == fold)
        for way in ways:
            booster = _lambdarank(learn, [groups[i] for i in valid], base if way == "boosted" else None, seed, threads, rounds)
            boosters[way].append(booster)
            one = LearnedRanker({way: [booster]}, {"base": base, "way": dict.fromkeys(KINDS, way)})
            found[way][valid] = [ndcg([groups[i]], one.score) for i in valid]
        found["base"][valid] = [ndcg([groups[i]], lambda x, anonymous: _base_scores(base, x, anonymous)) for i in valid]
    scored = fold_of >= 0 if folds > 1 else fold_of == 1
    if folds > 1:  # served: learnt once more from every query, for the folds' mean number of rounds
        boosters = {way: [_lambdarank(groups + learn_only, [], base if way == "boosted" else None, seed, threads,
                                      max(1, round(float(np.mean([_trees(b) for b in fitted])))))]
                    for way, fitted in boosters.items()}
    gain = boosters["trees"][0].feature_importance("gain", iteration=boosters["trees"][0].best_iteration or None)
    report = {
        "ranker": LearnedRanker.name, "features": list(FEATURES), "base": base, "folds": folds,
        "gain": {f: round(float(g / max(gain.sum(), 1e-12)), 4) for f, g in sorted(zip(FEATURES, gain), key=lambda t: -t[1])},
        "trees": _trees(boosters["trees"][0]),
        "boosted_trees": _trees(boosters["boosted"][0]) if "boosted" in boosters else 0,
        "train_queries": int(len(groups) - scored.sum()) if folds == 1 else len(groups), "learn_only": len(learn_only),
        "valid_queries": int(scored.sum()), "way": {}, "valid_by_kind": {},
        "borrowed": {kind: lender for kind, lender in BORROWS.items() if not own[kind]},
    }
    for kind in sorted(KINDS, key=lambda k: k in BORROWS):  # a lender's way is known before its borrower's
        mine = scored & (kinds == kind)
        candidates = ("base", "boosted", "trees") if base[kind] else ("trees",)  # simplest first
        report["way"][kind] = (_simplest_within_one_error({way: found[way][mine] for way in candidates}) if own[kind]
                               or kind not in BORROWS else report["way"][BORROWS[kind]])
        report["valid_by_kind"][kind] = {"queries": int(mine.sum()),
                                         **{way: round(float(found[way][mine].mean()), 4) if mine.any() else 0.0
                                            for way in candidates}}
    chosen = np.array([found[report["way"][k]][i] for i, k in enumerate(kinds)])
    report["valid_ndcg@20"] = round(float(chosen[scored].mean()), 4)
    return LearnedRanker(boosters, report)


def _simplest_within_one_error(found: dict[str, np.ndarray]) -> str:
    """The first way (simplest first) whose mean is within one standard error of the best's,
    the error that of the per-query difference between the two."""
    if not any(len(v) for v in found.values()):
        return next(reversed(found))
    best = max(found, key=lambda way: found[way].mean())
    for way, values in found.items():
        difference = found[best] - values
        if difference.mean() <= difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else way == best:
            return way
    return best


def _lambdarank(train: list, valid: list, base: dict | None, seed: int, threads: int, rounds: int):
    import lightgbm

    def dataset(groups, reference=None):
        if not groups:
            return None
        x = np.concatenate([g[0] for g in groups])
        init = np.concatenate([_base_scores(base, g[0], g[3]) for g in groups]) if base else None
        return lightgbm.Dataset(x, np.concatenate([g[1] for g in groups]), weight=np.concatenate([g[2] for g in groups]),
                                group=[len(g[1]) for g in groups], feature_name=list(FEATURES), init_score=init,
                                reference=reference, free_raw_data=False)

    train_set = dataset(train)
    valid_set = dataset(valid, train_set)
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [20], "learning_rate": 0.05,
              "num_leaves": 15, "min_data_in_leaf": 50, "feature_fraction": 0.7, "bagging_fraction": 0.8,
              "bagging_freq": 1, "lambdarank_truncation_level": 40, "seed": seed, "num_threads": threads,
              "deterministic": True, "force_row_wise": True, "verbose": -1}
    callbacks = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)] if valid_set is not None else []
    return lightgbm.train(params, train_set, rounds, valid_sets=[valid_set] if valid_set else [],
                          valid_names=["valid"], callbacks=callbacks)


def _trees(booster) -> int:
    return booster.best_iteration or booster.current_iteration()


def single_feature(groups: list[tuple[np.ndarray, ...]], seed: int, significance: float = 0.05) -> LearnedRanker | None:
    """Where too few held-out queries are answerable to learn trees from: the feature that ranks
    half of them best alone, served (as a `LearnedRanker` of no trees) only if on the other half
    it puts the answer in the top 20 of significantly more queries than the hand-set weights
    (a one-sided sign test over the queries one answers and the other does not); else None."""
    useful = [g for g in groups if g[1].any() and len(g[1]) > 1]
    order = np.random.default_rng(seed).permutation(len(useful))
    choose, test = [useful[i] for i in order[::2]], [useful[i] for i in order[1::2]]
    if not choose or not test:
        return None
    alone = {f: ndcg(choose, lambda x, *_, i=i: x[:, i]) for i, f in enumerate(FEATURES)}
    base = max(alone, key=alone.get)

    def answered(score) -> np.ndarray:
        return np.array([bool(g[1][np.argsort(-score(g[0]), kind="stable")[:20]].any()) for g in test])

    found, hand = answered(lambda x: x[:, FEATURES.index(base)]), answered(EvidenceRanker().score)
    wins, losses = int((found & ~hand).sum()), int((hand & ~found).sum())
    n = wins + losses
    p = sum(math.comb(n, i) for i in range(wins, n + 1)) / 2**n if n else 1.0
    if p >= significance:
        return None
    return LearnedRanker({}, {
        "ranker": LearnedRanker.name, "features": list(FEATURES), "base": dict.fromkeys(KINDS, base), "gain": {base: 1.0},
        "way": dict.fromkeys(KINDS, "base"), "trees": 0, "boosted_trees": 0,
        "train_queries": len(choose), "valid_queries": len(test), "base_valid_ndcg@20": round(ndcg(test, lambda x: x[:, FEATURES.index(base)]), 4),
        "valid_ndcg@20": round(ndcg(test, lambda x: x[:, FEATURES.index(base)]), 4),
        "over_hand_set": {"answered": int(found.sum()), "hand_set_answered": int(hand.sum()), "p": round(p, 6)}})
