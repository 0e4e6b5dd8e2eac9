"""The neighbour sampler returns real edges, respects fanouts, and maps seeds back."""

from __future__ import annotations

import numpy as np

from lookgraph.embeddings.sampling import NeighbourSampler


def test_sampled_edges_exist_and_respect_the_fanout():
    rng = np.random.default_rng(0)
    src = rng.integers(0, 50, 2000)
    dst = rng.integers(0, 30, 2000)
    edges = {("u", "r", "p"): np.stack([src, dst]), ("p", "rev_r", "u"): np.stack([dst, src])}
    sampler = NeighbourSampler(edges, {"u": 50, "p": 30}, fanouts=(4, 3), seed=1)
    seeds = np.array([3, 7, 7, 12])
    sub = sampler.sample({"p": seeds})
    assert sub.node_ids["p"][sub.seeds["p"]].tolist() == seeds.tolist()
    real = {(int(a), int(b)) for a, b in zip(src, dst)}
    forward = sub.edge_index[("u", "r", "p")]
    for a, b in forward.T.tolist():
        assert (int(sub.node_ids["u"][a]), int(sub.node_ids["p"][b])) in real
    # First hop: at most 4 sampled user neighbours per seed product.
    first_hop = forward[:, :sum(1 for b in forward[1].tolist() if b < 3)]
    assert np.bincount(first_hop[1].numpy(), minlength=3).max() <= 4
    # A second sample starts clean (local ids are reset).
    again = sampler.sample({"p": np.array([29])})
    assert again.node_ids["p"][0] == 29 and again.seeds["p"].tolist() == [0]


def test_nodes_without_neighbours_are_kept_as_seeds():
    edges = {("u", "r", "p"): np.array([[0], [0]])}
    sampler = NeighbourSampler(edges, {"u": 2, "p": 3}, fanouts=(5,))
    sub = sampler.sample({"p": np.array([2, 0])})
    assert sub.node_ids["p"][sub.seeds["p"]].tolist() == [2, 0]
    assert sub.edge_index[("u", "r", "p")].shape == (2, 1)
