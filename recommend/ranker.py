"""Rankers: a score per candidate from its features (`features.FEATURES`), higher first.

Contract: `score(X)` for X [candidates, FEATURES] returns one float per row; only the order
within one request matters. Two rankers:

- `LearnedRanker`: LightGBM's LambdaRank, trained by `lookgraph train` on held-out next
  interactions of the training graph (`recommend/offline.py`), saved with the artifact as
  `ranker.txt` (the model) and `ranker.json` (features, gain per feature, validation NDCG);
- `EvidenceRanker`: the hand-set weights used when no ranker was trained (a store served
  without a model, too little held-out data, or an artifact from before the ranker):
  log(1 + weighted evidence) plus the LookGNN complement and preference scores (the engine
  then puts items of a department the shopper never shopped last).

`rank` is the pipeline's stage: the ranker's scores, lowered for what was shown again and again
without engagement, moved by the rules' boosts and buries.
"""

from __future__ import annotations

import json
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


class EvidenceRanker:
    name = "evidence (hand-set weights)"

    def score(self, x: np.ndarray) -> np.ndarray:
        evidence = np.expm1(x[:, : len(SOURCES)]) @ _WEIGHTS
        return np.log1p(evidence) + x[:, _COMPLEMENT] + 0.5 * x[:, _PREFERENCE]

    def describe(self) -> dict:
        return {"ranker": self.name, "weights": EVIDENCE_WEIGHT,
                "plus": "complement + 0.5 x preference (both standardised per request); items of a department "
                        "the shopper never shopped last"}


class LearnedRanker:
    name = "lambdarank"

    def __init__(self, booster, report: dict):
        self.booster, self.report = booster, report

    def score(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x, num_threads=1)

    def describe(self) -> dict:
        return self.report

    def save(self, folder: Path) -> None:
        self.booster.save_model(str(folder / "ranker.txt"))
        (folder / "ranker.json").write_text(json.dumps(self.report, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> LearnedRanker | None:
        """The artifact's ranker, or None when it has none."""
        import lightgbm

        if not (folder / "ranker.txt").exists():
            return None
        report = json.loads((folder / "ranker.json").read_text())
        if report.get("features") != list(FEATURES):
            return None  # trained on other features: the hand-set weights serve instead
        return cls(lightgbm.Booster(model_file=str(folder / "ranker.txt")), report)


def rank(engine, request, offers: Offers, keep: list[int], x: np.ndarray) -> tuple[np.ndarray, RuleSentences]:
    """(a score per candidate of `keep`, the rules that moved each product). Fades and rules
    move a score by standard deviations of this list's scores: each fade halving one down."""
    scores = engine.ranker.score(x) if keep else np.zeros(0)
    state = request.state
    impressions = request.shown
    if impressions and len(keep):
        fade = np.array([policies.fade(offers.cards[i].id, state, impressions.get(offers.cards[i].id, 0), engine.config)
                         for i in keep])
        scores = scores + np.log2(fade) * (scores.std() + 1e-3)
    shift, ruled = engine.merch.adjust([offers.cards[i].id for i in keep], state.shopper_id, request.now, engine.variant)
    if shift.any():  # boosts and buries
        scores = scores + shift * (scores.std() + 1e-3)
    return scores, ruled


def fit_ranker(train: list[tuple[np.ndarray, ...]], valid: list[tuple[np.ndarray, ...]],
               seed: int = 7, threads: int = 1, rounds: int = 300) -> LearnedRanker:
    """LambdaRank on query groups (features, relevance[, each row's weight]) with early
    stopping on `valid`'s NDCG@20. Groups without a relevant candidate teach nothing and are
    left out."""
    import lightgbm

    def dataset(groups, reference=None):
        groups = [(g[0], g[1], g[2] if len(g) > 2 else np.ones(len(g[1]))) for g in groups if g[1].any() and len(g[1]) > 1]
        if not groups:
            return None, 0
        x = np.concatenate([g[0] for g in groups])
        y = np.concatenate([g[1] for g in groups])
        weight = np.concatenate([g[2] for g in groups])
        return lightgbm.Dataset(x, y, weight=weight, group=[len(g[1]) for g in groups], feature_name=list(FEATURES),
                                reference=reference, free_raw_data=False), len(groups)

    train_set, n_train = dataset(train)
    if train_set is None:
        raise ValueError("no held-out interaction was among the candidates: nothing to learn a ranker from")
    valid_set, n_valid = dataset(valid, train_set)
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [20], "learning_rate": 0.05,
              "num_leaves": 15, "min_data_in_leaf": 50, "feature_fraction": 0.7, "bagging_fraction": 0.8,
              "bagging_freq": 1, "lambdarank_truncation_level": 40, "seed": seed, "num_threads": threads,
              "deterministic": True, "force_row_wise": True, "verbose": -1}
    record: dict = {}
    callbacks = [lightgbm.record_evaluation(record)]
    if valid_set is not None:
        callbacks.append(lightgbm.early_stopping(60, verbose=False))
    booster = lightgbm.train(params, train_set, rounds, valid_sets=[valid_set] if valid_set else [],
                             valid_names=["valid"], callbacks=callbacks)
    gain = booster.feature_importance("gain")
    report = {
        "ranker": LearnedRanker.name, "features": list(FEATURES),
        "gain": {f: round(float(g / max(gain.sum(), 1e-12)), 4) for f, g in sorted(zip(FEATURES, gain), key=lambda t: -t[1])},
        "trees": booster.current_iteration(), "train_queries": n_train, "valid_queries": n_valid,
        "valid_ndcg@20": round(float(record["valid"]["ndcg@20"][booster.best_iteration - 1]), 4)
        if valid_set is not None and record.get("valid") else None,
    }
    return LearnedRanker(booster, report)
