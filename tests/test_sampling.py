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


def test_trimmed_propagation_gives_the_seeds_the_same_embedding_at_less_cost():
    """Layer l updates only nodes within L-1-l hops of the seeds (`Subgraph.hops`): the seeds'
    output must equal a propagation that updates every node of the subgraph."""
    import torch
    from lookgraph.embeddings.model import LookGNN

    rng = np.random.default_rng(3)
    num_nodes = {"shopper": 40, "product": 60}
    forward = np.stack([rng.integers(0, 40, 400), rng.integers(0, 60, 400)])
    edges = {("shopper", "engaged", "product"): forward, ("product", "rev_engaged", "shopper"): forward[::-1].copy()}
    content = (np.zeros(61, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 1)
    torch.manual_seed(0)
    model = LookGNN(num_nodes, list(edges), 1, content, dim=16, layers=2).eval()
    sub = NeighbourSampler(edges, num_nodes, fanouts=(3, 2), seed=5).sample(
        {"product": np.array([1, 2, 3]), "shopper": np.array([4])})
    assert all(hops == sorted(hops) for hops in sub.hops.values())
    assert sub.hops["product"][0] == 3 and sub.hops["product"][-1] == len(sub.node_ids["product"])
    with torch.no_grad():
        whole = model(sub.node_ids, sub.edge_index)
        trimmed = model(sub.node_ids, sub.edge_index, sub.hops)
    for node_type in ("product", "shopper"):
        seeds = sub.seeds[node_type]
        assert torch.allclose(whole[node_type][seeds], trimmed[node_type][seeds], atol=1e-6)
    # Fewer rows updated: only what later layers read.
    assert len(trimmed["product"]) < len(whole["product"])


def test_pairs_and_session_windows_match_a_plain_loop():
    from types import SimpleNamespace

    from lookgraph.embeddings.baselines import group_pairs, session_windows

    groups = [np.array([4, 1, 9]), np.array([2, 3]), np.array([7, 7, 8])]
    first, second = group_pairs(groups)
    expected = sorted((a, b) for g in groups for a in g.tolist() for b in g.tolist() if a != b)
    assert sorted(zip(first.tolist(), second.tolist())) == expected

    # Session 0 engages 5, 3, 5 (again), 1, 2, 6 in time order; session 1 a single item.
    session = np.array([0, 0, 0, 0, 0, 0, 1])
    product = np.array([5, 3, 5, 1, 2, 6, 4])
    ts = np.array([1, 2, 3, 4, 5, 6, 1])
    graph = SimpleNamespace(edges={("session", "interacted", "product"): np.stack([session, product])},
                            event_type=np.zeros(7, dtype=np.int64), event_ts=ts, count=lambda t: 10)
    windows = session_windows(graph, (0,), 2)  # first seen: 5 3 | 1 2 | 6 -> windows of two
    assert [w.tolist() for w in windows] == [[3, 5], [1, 2]]


def test_a_whole_graph_propagates_as_an_edge_index_does_values_and_gradients():
    """`FullGraph` gives each relation as a `MeanAdjacency` (sparse means with a kept
    transpose): LookGNN's output and every gradient must equal those through the plain edge
    index, repeated edges and nodes without neighbours included."""
    import torch
    from lookgraph.embeddings.model import LookGNN
    from lookgraph.embeddings.sampling import FullGraph

    rng = np.random.default_rng(4)
    num_nodes = {"shopper": 40, "product": 60}
    forward = np.stack([rng.integers(0, 40, 300), rng.integers(0, 50, 300)])  # products 50-59: no neighbours
    forward = np.concatenate([forward, forward[:, :40]], axis=1)  # repeated edges count twice
    edges = {("shopper", "engaged", "product"): forward, ("product", "rev_engaged", "shopper"): forward[::-1].copy()}
    content = (np.zeros(61, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), 1)
    torch.manual_seed(0)
    model = LookGNN(num_nodes, list(edges), 1, content, dim=16, layers=2, id_dropout=0.0)
    ids = {t: torch.arange(n) for t, n in num_nodes.items()}
    plain = {e: torch.from_numpy(np.ascontiguousarray(index)) for e, index in edges.items()}
    outputs, gradients = [], []
    for edge_index in (plain, FullGraph(edges, num_nodes).sample({}).edge_index):
        model.zero_grad()
        h = model(ids, edge_index)
        (h["product"].square().sum() + h["shopper"].sum()).backward()
        outputs.append(h)
        gradients.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    for node_type in num_nodes:
        assert torch.allclose(outputs[0][node_type], outputs[1][node_type], atol=1e-5)
    assert len(gradients[0]) == len(gradients[1]) > 0
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*gradients))
