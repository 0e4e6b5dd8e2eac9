"""Exporting a store into index arrays and a HeteroData."""

from __future__ import annotations

import numpy as np

from lookgraph.embeddings.export import EDGE_TYPES, export_graph
from lookgraph.loaders.pipeline import load

from .test_store_contract import CATALOGUE, write_native


def test_export_indexes_every_node_and_relationship(embedded, tmp_path):
    load(write_native(tmp_path / "in", **CATALOGUE), embedded)
    graph = export_graph(embedded, batch_size=2)
    assert {t: graph.count(t) for t in graph.ids} == {
        "shopper": 2, "session": 4, "product": 3, "category": 4, "attribute": 2, "look": 1}
    product, category = graph.index("product"), graph.index("category")
    assert graph.product_category[product["jeans-1"]] == category["jeans"]
    assert graph.product_category[product["belt-1"]] == -1
    assert [graph.ids["product"][p] for p in graph.look_items()[0]] == ["jeans-1", "boots-1", "belt-1"]
    interactions = graph.edges[("session", "interacted", "product")]
    assert interactions.shape == (2, 5) and len(graph.event_type) == 5
    assert graph.edges[("shopper", "had", "session")].shape[1] == 3  # the anonymous session has no shopper

    data = graph.to_hetero_data()
    for src, rel, dst in EDGE_TYPES:
        forward = data[src, rel, dst].edge_index
        assert (data[dst, f"rev_{rel}", src].edge_index == forward.flip(0)).all()
    assert data["session", "interacted", "product"].edge_weight.shape == (5,)


def test_fingerprint_is_stable_and_follows_the_data(embedded, tmp_path):
    load(write_native(tmp_path / "in", **CATALOGUE), embedded)
    first, second = export_graph(embedded), export_graph(embedded)
    assert first.fingerprint == second.fingerprint
    from lookgraph.graph.model import Event

    embedded.append_events([Event("new", "s9", "belt-1", "view", 9000.0, "bob")])
    assert export_graph(embedded).fingerprint != first.fingerprint
    assert np.array_equal(first.product_category, second.product_category)
