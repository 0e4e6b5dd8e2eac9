"""Collaborative filtering that a reviewer would trust: EASE and ItemKNN as their papers define
them, BPR-MF and LightGCN trained as RecBole trains them, each beating a popularity list on
data that is collaborative by construction; the item-to-item index the engine serves."""

from __future__ import annotations

import numpy as np
import pytest
from lookgraph.embeddings.baselines import EASE, BPRMF, ItemKNN, LightGCNBaseline, Popularity, holdout
from lookgraph.embeddings.collaborative import (
    ease_weights,
    fit_collaborative,
    interaction_matrix,
    itemknn_weights,
    neighbours_of,
)
from lookgraph.embeddings.export import GraphExport


def taste_clusters(seed: int = 3, users: int = 240, items: int = 120, clusters: int = 6, per_user: int = 14):
    """Users in taste clusters, each engaging with items of their cluster only; a few items of
    every cluster are far more popular than the rest, so a best-seller list is a poor guess."""
    rng = np.random.default_rng(seed)
    cluster_items = np.array_split(rng.permutation(items), clusters)
    pairs = []
    for user in range(users):
        mine = cluster_items[user % clusters]
        weights = np.linspace(1.0, 0.2, len(mine))
        chosen = rng.choice(mine, size=min(per_user, len(mine)), replace=False, p=weights / weights.sum())
        pairs += [(user, int(i)) for i in chosen]
    return np.array(pairs).T, users, items


def as_graph(pairs: np.ndarray, users: int, items: int) -> GraphExport:
    """One session per engagement, each its shopper's: the export the baselines read."""
    n = pairs.shape[1]
    edges = {("shopper", "had", "session"): np.stack([pairs[0], np.arange(n)]),
             ("session", "interacted", "product"): np.stack([np.arange(n), pairs[1]]),
             ("look", "includes", "product"): np.zeros((2, 0), dtype=np.int64),
             ("look", "found_in", "session"): np.zeros((2, 0), dtype=np.int64),
             ("shopper", "saved", "look"): np.zeros((2, 0), dtype=np.int64),
             ("product", "has", "attribute"): np.zeros((2, 0), dtype=np.int64),
             ("product", "in", "category"): np.zeros((2, 0), dtype=np.int64),
             ("category", "child_of", "category"): np.zeros((2, 0), dtype=np.int64)}
    ids = {"shopper": [f"u{i}" for i in range(users)], "session": [f"s{i}" for i in range(n)],
           "product": [f"p{i}" for i in range(items)], "look": [], "attribute": [], "category": []}
    return GraphExport(ids, edges, np.full(n, 2), np.arange(n, dtype=np.float64), np.zeros(0, dtype=np.int64),
                       np.full(items, -1), [], [])


def recall_at_20(method, train: np.ndarray, test: dict[int, np.ndarray]) -> float:
    hits = []
    for user, wanted in test.items():
        history = train[1][train[0] == user]
        scores = method.for_shopper(user, history).astype(np.float64)
        scores[history] = -np.inf
        top = np.argsort(-scores, kind="stable")[:20]
        hits.append(np.isin(wanted, top).mean())
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def clustered():
    pairs, users, items = taste_clusters()
    train, test = holdout(pairs, users, seed=1, share=0.2)
    return as_graph(train, users, items), train, test


@pytest.mark.parametrize("make", [ItemKNN, EASE, lambda: BPRMF(seed=0, epochs=150), lambda: LightGCNBaseline(seed=0, epochs=150)],
                         ids=["itemknn", "ease", "bpr-mf", "lightgcn"])
def test_every_collaborative_baseline_beats_a_best_seller_list_on_collaborative_data(clustered, make):
    graph, train, test = clustered
    popularity = Popularity()
    popularity.fit(graph)
    method = make()
    method.fit(graph)
    theirs, ours = recall_at_20(popularity, train, test), recall_at_20(method, train, test)
    assert ours > 2 * theirs, (method.name, ours, theirs)


def test_bpr_stops_early_on_validation_and_keeps_its_best_epoch(clustered):
    graph, _, _ = clustered
    model = BPRMF(seed=0, epochs=300)
    model.fit(graph)
    assert 10 < model.epochs_run < 300  # it stopped: ten epochs without a better validation NDCG


@pytest.mark.parametrize("make, patience", [(lambda: BPRMF(seed=0, epochs=300), 10),
                                             (lambda: LightGCNBaseline(seed=0, epochs=300), 50)], ids=["bpr-mf", "lightgcn"])
def test_each_factor_baseline_waits_its_own_patience_for_a_better_validation_score(clustered, monkeypatch, make, patience):
    # A validation score that only falls after the first epoch: training stops when more than
    # `patience` epochs in a row scored below it, as RecBole's `early_stopping` does (RecBole's
    # 10 for BPR-MF, the LightGCN paper's 50 for LightGCN).
    import lookgraph.embeddings.baselines as baselines

    falling = iter(np.linspace(1.0, 0.0, 400))
    monkeypatch.setattr(baselines, "ndcg_of_lists", lambda *args: next(falling))
    graph, _, _ = clustered
    model = make()
    model.fit(graph)
    assert model.epochs_run == 1 + patience + 1


def test_a_validation_score_that_ties_its_best_does_not_stop_training(clustered, monkeypatch):
    # On a large sparse catalogue validation can score 0.0 epoch after epoch. RecBole counts a tie
    # as the best (and keeps the later epoch): training goes on to its last epoch instead of
    # stopping after 10 and keeping its first.
    import lookgraph.embeddings.baselines as baselines

    monkeypatch.setattr(baselines, "ndcg_of_lists", lambda *args: 0.0)
    graph, _, _ = clustered
    model = BPRMF(seed=0, epochs=30)
    model.fit(graph)
    assert model.epochs_run == 30


def test_ease_is_its_closed_form():
    x = interaction_matrix(np.array([0, 0, 1, 1, 2, 2, 3]), np.array([0, 1, 0, 1, 1, 2, 2]), 4, 3)
    b = ease_weights(x, lam=1.0)
    gram = (x.T @ x).toarray() + np.eye(3)
    p = np.linalg.inv(gram)
    assert np.allclose(b, -p / np.diag(p)[None, :] * (1 - np.eye(3)), atol=1e-6)
    assert np.allclose(np.diag(b), 0.0)
    assert b[0, 1] > b[0, 2]  # 0 and 1 are had together by two users, 0 and 2 by none


def test_a_tie_names_the_earliest_history_row_and_one_reach_answers_both_questions():
    alike = np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]], dtype=np.float32)
    index = neighbours_of(alike)
    history = np.array([2, 0])
    reach = index.reach(history)
    assert reach.strongest(np.array([1])) == {1: (2, 0.5)}  # rows 2 and 0 weigh product 1 alike: the first named
    assert index.reach(history[::-1]).strongest(np.array([1])) == {1: (0, 0.5)}
    weights = np.array([1.0, 2.0])
    assert reach.scores(weights).tolist() == pytest.approx([0.5, 1.5, 1.0])
    assert reach.scores(weights).tolist() == index.scores(history, weights).tolist()
    assert index.reach(np.array([], dtype=np.int64)).strongest(np.array([1])) == {}


def test_itemknn_keeps_the_k_most_similar_by_cosine():
    x = interaction_matrix(np.array([0, 0, 1, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 2, 3]), 3, 4)
    w = itemknn_weights(x, k=1).toarray()
    assert np.count_nonzero(w[:, 0]) == 1 and w[1, 0] == pytest.approx(1.0, abs=1e-4)  # 0 and 1: the same users
    assert w[2, 3] == pytest.approx(1 / np.sqrt(2), abs=1e-4)  # cos of {1, 2} and {2}


def test_the_served_index_gives_the_models_scores():
    pairs, users, items = taste_clusters(users=60, items=30)
    x = interaction_matrix(pairs[0], pairs[1], users, items)
    index = fit_collaborative(pairs[0], pairs[1], users, items, method="ease")
    history = np.array([0, 5, 9])
    dense = ease_weights(x)
    exact = dense[history].sum(0)  # every weight kept (30 products, under the index's 500), negative ones too
    assert np.allclose(index.scores(history), exact, atol=1e-5)
    best = int(np.argmax(index.scores(history)))
    source, weight = index.strongest(history, np.array([best]))[best]
    assert source in history.tolist() and weight == pytest.approx(dense[source, best], rel=1e-5)
    assert weight == pytest.approx(max(dense[h, best] for h in history), rel=1e-5)  # the largest of the history's
    everyone = index.strongest(history, np.arange(items))
    for product, (source, weight) in everyone.items():  # each the same as one product asked alone
        assert weight == pytest.approx(max(dense[h, product] for h in history), rel=1e-5) and dense[source, product] == \
            pytest.approx(weight, rel=1e-5)
    assert all(max(dense[h, p] for h in history) <= 0 for p in set(range(items)) - set(everyone))
    knn = fit_collaborative(pairs[0], pairs[1], users, items, method="itemknn")
    assert knn.method == "itemknn" and np.allclose(knn.scores(history), itemknn_weights(x).toarray()[history].sum(0),
                                                   atol=1e-5)
    assert neighbours_of(dense, keep=3).indptr[-1] <= 3 * items
    # Kept by size: each row's three weights farthest from zero, whatever their sign.
    signed = np.random.default_rng(0).normal(size=(items, items)).astype(np.float32)
    kept = neighbours_of(signed, keep=3)
    for row in range(items):
        mine = kept.items[kept.indptr[row]: kept.indptr[row + 1]]
        assert set(mine.tolist()) == set(np.argsort(-np.abs(signed[row]))[:3].tolist())
    assert (kept.weights < 0).any()
