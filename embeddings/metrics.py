"""Ranking metrics shared by training (early stopping) and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOP = 20


@dataclass
class Query:
    """Rank every product for `context` (product rows); `target` is the one held out."""

    context: np.ndarray
    target: int


def rank_of(scores: np.ndarray, target: int, exclude: np.ndarray) -> float:
    """1-based rank of `target` among all products but `exclude`; ties count half."""
    scores = scores.astype(np.float64, copy=True)
    scores[exclude] = -np.inf
    value = scores[target]
    greater = int((scores > value).sum())
    ties = int((scores == value).sum()) - 1
    return greater + ties / 2 + 1


def top_k(scores: np.ndarray, exclude: np.ndarray, k: int = TOP) -> np.ndarray:
    scores = scores.astype(np.float64, copy=True)
    scores[exclude] = -np.inf
    if k < len(scores):  # a catalogue of k products or fewer is all of it, ordered
        top = np.argpartition(-scores, k)[:k]
    else:
        top = np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


def ndcg_at(ranks: np.ndarray, k: int) -> float:
    return float(np.where(ranks <= k, 1 / np.log2(ranks + 1), 0).mean()) if len(ranks) else 0.0


def hit_rate_at(ranks: np.ndarray, k: int) -> float:
    return float((ranks <= k).mean()) if len(ranks) else 0.0
