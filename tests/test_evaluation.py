"""The evaluation split leaks nothing, and the metrics and policies do what they say."""

from __future__ import annotations

import numpy as np

from lookgraph.embeddings.splits import make_split
from lookgraph.embeddings.export import export_graph
from lookgraph.embeddings.metrics import ndcg_at, rank_of, top_k
from lookgraph.embeddings.vectors import across_categories
from lookgraph.graph.model import Category, Event, Look, Product, Shopper
from lookgraph.loaders.pipeline import load

from .test_store_contract import write_native


def small_graph(embedded, tmp_path):
    products = [Product(f"p{i}", f"P{i}", f"c{i % 4}") for i in range(12)]
    looks = [Look("a", "A", ("p0", "p1", "p2"), "s1"), Look("a2", "A2", ("p0", "p1"), "s1"),
             Look("b", "B", ("p3", "p4"), "s2"), Look("c", "C", ("p5", "p6", "p7"), None),
             Look("d", "D", ("p8", "p9"), "s3"), Look("e", "E", ("p10", "p11"), None)]
    events = [Event(f"e{i}", f"s{1 + i % 3}", f"p{i % 12}", "purchase", 1000.0 + i, f"u{i % 3}") for i in range(30)]
    load(write_native(tmp_path / "in", categories=[Category(f"c{i}", f"C{i}") for i in range(4)],
                      products=products, shoppers=[Shopper(f"u{i}") for i in range(3)], events=events,
                      looks=looks), embedded)
    return export_graph(embedded)


def test_held_out_looks_leave_no_trace_in_training(embedded, tmp_path):
    graph = small_graph(embedded, tmp_path)
    for seed in range(5):
        split = make_split(graph, seed, test_share=0.34, validation_share=0.0, shopper_share=0.0)
        train = split.train
        includes = {(int(a), int(b)) for a, b in train.edges[("look", "includes", "product")].T}
        held = {int(q.target) for q in split.looks}
        looks = graph.look_items()
        held_looks = [lk for lk, items in enumerate(looks) if any(
            q.target in items and set(q.context) <= set(items) for q in split.looks)]
        assert held_looks
        session = dict(zip(*graph.edges[("look", "found_in", "session")].tolist()))
        interactions = {(int(s), int(p)) for s, p in train.edges[("session", "interacted", "product")].T}
        for lk in held_looks:
            assert not any((lk, int(p)) in includes for p in looks[lk])  # membership gone
            if lk in session:
                assert not any((session[lk], int(p)) in interactions for p in looks[lk])  # session gone
                siblings = [o for o, s in session.items() if s == session[lk]]
                for sibling in siblings:  # every look of that session is held out with it
                    assert not any((sibling, int(p)) in includes for p in looks[sibling])
        for query in split.looks:
            assert query.target not in query.context
        assert held


def test_held_out_shopper_interactions_are_removed(embedded, tmp_path):
    graph = small_graph(embedded, tmp_path)
    split = make_split(graph, 0, test_share=0.0, validation_share=0.0, shopper_share=1.0)
    assert split.shoppers
    owner = dict(zip(graph.edges[("shopper", "had", "session")][1].tolist(), graph.edges[("shopper", "had", "session")][0].tolist()))
    train = split.train.edges[("session", "interacted", "product")]
    for shopper, query in split.shoppers:
        assert not any(owner.get(int(s)) == shopper and int(p) == query.target for s, p in train.T)
        assert query.target not in query.context


def test_rank_counts_ties_half_and_skips_excluded():
    scores = np.array([5.0, 3.0, 3.0, 9.0, 1.0])
    assert rank_of(scores, 1, exclude=np.array([3])) == 2.5  # 0 beats it, 2 ties
    assert rank_of(scores, 0, exclude=np.array([3])) == 1
    assert ndcg_at(np.array([1.0, 3.0, 11.0]), 10) == (1 + 0.5 + 0) / 3
    assert top_k(scores, np.array([3]), k=2).tolist() == [0, 1]


def test_the_category_cap_keeps_at_most_cap_same_category_items_on_top():
    categories = np.array([0, 0, 0, 0, 1, 2, 0, 3])
    scores = np.array([9.0, 8.0, 7.0, 6.0, 1.0, 0.5, 5.0, 0.1])
    capped = across_categories(scores, categories, context=np.array([0]), cap=2)
    order = [i for i in np.argsort(-capped, kind="stable") if i != 0]
    assert order[:5] == [1, 2, 4, 5, 7]  # two from category 0, then the other categories
    assert order[5:] == [3, 6]  # the rest of category 0, in their own order
    assert (across_categories(scores, categories, np.array([0]), cap=None) == scores).all()


def test_the_table_lists_every_metric_of_any_method_and_marks_the_ones_a_method_lacks():
    from lookgraph.embeddings.evaluate import markdown_table

    cell = {"mean": 0.5, "std": 0.1}
    table = markdown_table({"results": {"engine (served)": {"shopper_full_lists": cell, "look_hr@10": cell,
                                                            "fit_seconds": cell},
                                        "lookgnn": {"look_hr@10": cell, "fit_seconds": cell}}})
    header, _, engine, lookgnn = table.splitlines()
    assert header == "| method | shopper_full_lists | look_hr@10 | fit_seconds |"
    assert lookgnn == "| lookgnn | — | 0.5000 ± 0.1000 | 0.5 |" and engine.count("±") == 2


def test_the_shopper_share_sets_how_many_shoppers_the_evaluation_asks(embedded, tmp_path):
    from lookgraph.embeddings.evaluate import run

    graph = small_graph(embedded, tmp_path)
    asked = {share: run(graph, seeds=(0,), methods=("popularity",), log=lambda line: None, shopper_share=share)
             for share in (0.34, 1.0)}
    assert asked[1.0]["queries"]["shoppers"] == 3 and asked[0.34]["queries"]["shoppers"] == 1
    assert asked[1.0]["shopper_share"] == 1.0
