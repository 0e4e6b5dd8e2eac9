"""LookGNN trains reproducibly, embeds cold items from their attributes, prefers complements,
and publishes a versioned artifact whose vectors land back in the store."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from lookgraph.cli import app
from lookgraph.embeddings.splits import make_split
from lookgraph.embeddings.export import export_graph
from lookgraph.embeddings.publish import train_and_publish
from lookgraph.embeddings.train import TrainConfig, train
from lookgraph.embeddings.vectors import LookVectors, latest_artifact
from lookgraph.graph.model import Product
from lookgraph.loaders.demo import DemoSpec

from .conftest import demo_in_store

FAST = TrainConfig(dim=32, epochs=4, batch_size=256, seed=3)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    store = demo_in_store(tmp_path_factory.mktemp("train"), DemoSpec(products=400, shoppers=60, events=6_000, seed=5))
    # A product nobody has seen: a twin of p000200 by attributes and category.
    twin = store.get("products", "p000200")
    store.append_events([])  # no-op: appending nothing is fine
    with store.bulk_load() as writer:
        writer.write("products", [Product("cold-twin", twin.name, twin.category_id, twin.price, twin.attributes)])
    yield store
    store.close()


@pytest.fixture(scope="module")
def trained(demo_store):
    graph = export_graph(demo_store)
    split = make_split(graph, 0, test_share=0.0, validation_share=0.2, shopper_share=0.0)
    return graph, train(split.train, FAST, split.validation)


def test_training_is_reproducible(demo_store, trained):
    graph, first = trained
    split = make_split(graph, 0, test_share=0.0, validation_share=0.2, shopper_share=0.0)
    second = train(split.train, FAST, split.validation)
    # Equal up to float summation order (threaded CPU kernels).
    assert np.allclose(first.vectors.arrays["product"], second.vectors.arrays["product"], atol=1e-4)
    assert np.allclose([e["loss"] for e in first.history], [e["loss"] for e in second.history], atol=1e-5)
    assert first.history[-1]["loss"] < first.history[0]["loss"]


def test_a_cold_product_is_embedded_from_its_attributes(trained):
    graph, result = trained
    vectors = result.vectors.arrays["product"]
    index = graph.index("product")
    cold = vectors[index["cold-twin"]]
    assert np.linalg.norm(cold) > 0
    cosine = vectors @ cold / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(cold) + 1e-9)
    category = graph.product_category
    same = (category == category[index["cold-twin"]])
    same[index["cold-twin"]] = False
    # Nobody has touched it, yet it lands near its attribute twin and its own category.
    assert (cosine > cosine[index["p000200"]]).mean() < 0.10  # the twin is in its top decile
    assert cosine[same].mean() > cosine[~same].mean()


def test_the_complement_score_prefers_other_categories(trained):
    graph, result = trained
    vectors = result.vectors
    groups = np.array([cid.rsplit("/", 1)[0] if cid else "" for cid in
                       (graph.ids["category"][c] if c >= 0 else None for c in graph.product_category)])
    jeans = [i for i, c in enumerate(graph.product_category) if c >= 0 and graph.ids["category"][c].endswith("/jeans")]
    same_group = []
    for item in jeans[:15]:
        scores = vectors.gnn_scores(np.array([item]))  # the learnt score alone: no content, no cap
        scores[item] = -np.inf
        top = np.argsort(-scores)[:20]
        same_group.append(np.mean(groups[top] == groups[item]))
    # Jeans are completed by tops, shoes, bags... not by more bottoms.
    assert np.mean(same_group) < 0.25


def test_publish_saves_a_versioned_artifact_and_writes_vectors_back(demo_store, tmp_path):
    folder, result = train_and_publish(demo_store, tmp_path, TrainConfig(dim=16, epochs=2, seed=1))
    assert latest_artifact(tmp_path) == folder
    loaded = LookVectors.load(folder)
    assert np.array_equal(loaded.arrays["product"], result.vectors.arrays["product"])
    assert loaded.meta["fingerprint"] == export_graph(demo_store).fingerprint
    assert {"config", "metrics", "history", "content_weight", "version"} <= set(loaded.meta)
    assert (folder / "checkpoint.pt").exists()
    stored = demo_store.read_embeddings("Product", ["p000001", "cold-twin"])
    assert set(stored) == {"p000001", "cold-twin"}
    vector, version = stored["p000001"]
    assert version == loaded.meta["version"] and len(vector) == 16
    row = loaded.ids["product"].index("p000001")
    assert np.allclose(vector, loaded.arrays["product"][row])


def test_train_command_reports_and_refuses_an_empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["train", "--epochs", "1"])
    assert result.exit_code == 2 and "no products" in result.output



def test_the_complement_score_weighs_its_context(trained):
    """The engine weights the GNN's context like its anchors (the item in view above the profile)."""
    _, result = trained
    vectors, context = result.vectors, np.array([3, 40, 77])
    alone = vectors.gnn_scores(np.array([3]))
    assert np.allclose(vectors.gnn_scores(context, weights=np.array([1.0, 0.0, 0.0])), alone, atol=1e-5)
    mixed = vectors.gnn_scores(context, weights=np.array([4.0, 0.5, 0.5]))
    assert np.allclose(mixed, 4 * alone + 0.5 * (vectors.gnn_scores(np.array([40])) + vectors.gnn_scores(np.array([77]))),
                       atol=1e-4)


def test_scoring_every_product_at_once_gives_each_products_own_score(trained):
    """The whole catalogue is scored category block by category block, and content through a
    sparse product: the same numbers as each product scored alone, by the docstrings' formulas."""
    _, result = trained
    vectors, context, weights = result.vectors, np.array([3, 40, 77]), np.array([2.0, 1.0, 0.5], dtype=np.float32)
    every = np.arange(len(vectors.ids["product"]))
    assert np.allclose(vectors.gnn_scores(context, weights=weights),
                       vectors.gnn_scores(context, among=every, weights=weights), rtol=1e-5, atol=1e-5)
    types, bias, items = vectors.arrays["category_type"], vectors.arrays["gate_bias"], vectors.arrays["product"]
    category = vectors.product_category
    for x in (0, 55, len(every) - 1):  # score(x) = sum_i w_i (x * sigmoid(t_cat(x) * t_cat(i) + b)) . c_i
        gate = 1 / (1 + np.exp(-(types[category[x]] * types[category[context]] + bias)))
        expected = sum(w * (items[x] * g) @ items[i] for w, g, i in zip(weights, gate, context))
        assert np.isclose(vectors.gnn_scores(context, weights=weights)[x], expected, rtol=1e-4, atol=1e-4)
    assert np.allclose(vectors.content_scores(context, weights),
                       vectors.content_scores(context, weights, among=every), rtol=1e-5, atol=1e-6)


def test_a_shop_without_looks_trains_whole_graph_stops_early_on_shoppers_and_says_each_epoch(tmp_path):
    import torch

    store = demo_in_store(tmp_path, DemoSpec(products=200, shoppers=40, events=3_000, seed=2), without=("looks", "saved_looks"))
    graph = export_graph(store)
    split = make_split(graph, 0, test_share=0.0, validation_share=0.0, shopper_share=0.5)
    lines: list[str] = []
    config = TrainConfig(dim=16, epochs=30, patience=2, seed=1, threads=1)
    result = train(split.train, config, [], shoppers=split.shoppers, log_line=lines.append)
    store.close()
    assert torch.get_num_threads() == 1
    assert all(record.get("full_graph") for record in result.history)  # small: propagated whole
    assert all("val_shopper_ndcg@20" in record for record in result.history)
    assert len(result.history) < 30  # stopped early on the held-out shoppers, without looks
    assert len(lines) == len(result.history) and lines[0].startswith("epoch   1/30")


def test_a_time_budget_ends_training_after_the_epoch_that_spends_it_and_says_so(trained):
    graph, _ = trained
    split = make_split(graph, 0, test_share=0.0, validation_share=0.2, shopper_share=0.0)
    lines: list[str] = []
    config = TrainConfig(dim=16, epochs=30, patience=30, seed=1, threads=1, max_minutes=1e-6)
    result = train(split.train, config, split.validation, log_line=lines.append)
    assert len(result.history) == 1 and result.vectors is not None
    assert lines[-1].startswith("stopped after epoch 1: the 1e-06-minute budget is spent")


def test_sampled_training_runs_the_trimmed_subgraph_and_embeds_every_product(demo_store):
    """A graph over `full_graph_size` is mini-batched over sampled 2-hop neighbourhoods."""
    graph = export_graph(demo_store)
    split = make_split(graph, 0, test_share=0.0, validation_share=0.2, shopper_share=0.0)
    config = TrainConfig(dim=16, epochs=2, batch_size=128, seed=1, threads=1, full_graph_size=1, max_steps_per_epoch=5)
    result = train(split.train, config, split.validation)
    assert not any(record.get("full_graph") for record in result.history)
    vectors = result.vectors.arrays["product"]
    assert vectors.shape == (graph.count("product"), 16) and np.isfinite(vectors).all()
    assert len(np.unique(vectors.round(5), axis=0)) == graph.count("product")


def test_engagement_is_drawn_by_strength_and_recency():
    from lookgraph.embeddings.baselines import shopper_products
    from lookgraph.embeddings.export import GraphExport
    from lookgraph.embeddings.train import engagement_weights

    day = 86_400.0
    # One shopper, one session each: p0 bought now, p1 viewed now, p2 bought 90 days ago.
    edges = {e: np.zeros((2, 0), dtype=np.int64) for e in
             [("shopper", "had", "session"), ("session", "interacted", "product"), ("product", "in", "category"),
              ("category", "child_of", "category"), ("product", "has", "attribute"), ("look", "includes", "product"),
              ("look", "found_in", "session"), ("shopper", "saved", "look")]}
    edges[("shopper", "had", "session")] = np.array([[0, 0, 0], [0, 1, 2]])
    edges[("session", "interacted", "product")] = np.array([[0, 1, 2], [0, 1, 2]])
    ids = {"shopper": ["u"], "session": ["s0", "s1", "s2"], "product": ["p0", "p1", "p2"], "category": [],
           "attribute": [], "look": []}
    graph = GraphExport(ids, edges, np.array([2, 0, 2], dtype=np.int8), np.array([90 * day, 90 * day, 0.0]),
                        np.zeros(0, dtype=np.int64), np.full(3, -1))
    p = engagement_weights(graph, shopper_products(graph), half_life_days=90)
    assert p[0] / p[1] == pytest.approx(3.0) and p[0] / p[2] == pytest.approx(2.0) and p.sum() == pytest.approx(1.0)
