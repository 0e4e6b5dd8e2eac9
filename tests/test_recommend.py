"""The segment-of-one engine: mined looks, the learned ranker, the offline engine that trains
it, and what a storefront sees of them (full lists, reasons, product pages across categories)."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import torch
import pytest
from typer.testing import CliRunner

from lookgraph.cli import app
from lookgraph.embeddings.splits import make_split
from lookgraph.embeddings.export import export_graph, with_looks
from lookgraph.embeddings.train import TrainConfig
from lookgraph.graph.model import Category, Event, Product, Shopper
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.loaders.demo import DemoSpec
from lookgraph.loaders.pipeline import load
from lookgraph.recommend.arrange import SAME_LEAF_SHARE
from lookgraph.recommend.engine import Ask, Engine
from lookgraph.recommend.features import FEATURES
from lookgraph.recommend.mining import mine_looks
from lookgraph.recommend.offline import fit_artifact, offline_engine, write_export
from lookgraph.recommend.ranker import EvidenceRanker, LearnedRanker, fit_ranker

from .conftest import demo_in_store
from .test_store_contract import write_native

ROOT = Path(__file__).resolve().parents[1]
FAST = TrainConfig(dim=32, epochs=3, seed=3)


def basket_shop(store, tmp_path, baskets: int = 30):
    """Jeans are bought with boots in most baskets, with a scarf once; socks go with anything."""
    categories = [Category("fashion", "Fashion"), *(Category(c, c.title(), "fashion") for c in ("jeans", "boots", "scarves", "socks"))]
    products = [Product("jeans", "Jeans", "jeans"), Product("jeans-b", "Other jeans", "jeans"),
                Product("boots", "Boots", "boots"), Product("scarf", "Scarf", "scarves"), Product("socks", "Socks", "socks")]
    events, n = [], 0
    for b in range(baskets):
        items = ["jeans", "boots"] if b % 3 else ["socks", "jeans-b"]
        if b == 0:
            items = ["jeans", "scarf"]
        for item in items + (["socks"] if b % 2 else []):
            events.append(Event(f"e{n}", f"s{b}", item, "purchase", 1_000.0 * b + n, f"u{b % 7}"))
            n += 1
    load(write_native(tmp_path / "in", categories=categories, products=products,
                      shoppers=[Shopper(f"u{i}") for i in range(7)], events=events), store)
    return export_graph(store)


def test_mining_finds_what_goes_together_across_categories_more_often_than_chance(embedded, tmp_path):
    graph = basket_shop(embedded, tmp_path)
    looks = mine_looks(graph, min_support=2, min_lift=1.2)
    as_sets = {frozenset(look.product_ids): look for look in looks}
    together = as_sets[frozenset({"jeans", "boots"})]
    assert together.mined and together.id.startswith("mined:") and together.support == 20
    assert together.lift == pytest.approx(20 * 30 / (21 * 20), rel=0.01)  # baskets x together / (jeans x boots)
    assert together.name in ("often bought together: Jeans + Boots", "often bought together: Boots + Jeans")
    assert frozenset({"jeans", "scarf"}) not in as_sets  # one basket: below the support
    assert not any({"jeans", "jeans-b"} <= set(look.product_ids) for look in looks)  # same category: never


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    store = demo_in_store(tmp_path_factory.mktemp("recommend"), DemoSpec(products=300, shoppers=50, events=5_000, seed=11))
    graph = export_graph(store)
    result, ranker, split, mined = fit_artifact(graph, FAST)
    yield store, graph, result, ranker, split, mined
    store.close()


def test_training_mines_looks_and_learns_a_ranker_from_the_engines_own_candidates(demo):
    _, graph, _, none, _, _ = demo
    assert none is None  # 50 shoppers: too few held-out answers to learn from; the hand-set weights rank
    result, ranker, split, mined = fit_artifact(graph, TrainConfig(**{**FAST.__dict__, "min_ranker_queries": 10}))
    assert mined and all(look.mined for look in mined)
    assert split.train.mined_looks == mined and split.train.count("look") == len(split.train.ids["look"])
    assert isinstance(ranker, LearnedRanker) and ranker.report["features"] == list(FEATURES)
    assert ranker.report["trees"] >= 1 and sum(ranker.report["gain"].values()) == pytest.approx(1.0, abs=1e-3)


def test_the_ranker_learns_which_feature_tells_and_survives_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    telling = FEATURES.index("content_match")

    def group():
        x = rng.normal(size=(30, len(FEATURES)))
        y = np.zeros(30)
        y[np.argmax(x[:, telling])] = 1.0
        return x, y

    ranker = fit_ranker([group() for _ in range(150)])
    assert next(iter(ranker.report["gain"])) == "content_match"
    fresh = [group() for _ in range(20)]
    assert np.mean([np.argmax(ranker.score(x)) == np.argmax(y) for x, y in fresh]) >= 0.8
    x, _ = fresh[0]
    ranker.save(tmp_path)
    again = LearnedRanker.load(tmp_path)
    assert np.allclose(again.score(x), ranker.score(x)) and again.report == ranker.report


def synthetic_queries(rng, n: int, telling, history: float = 2.0, anonymous: bool | None = None) -> list[tuple]:
    """`n` query groups of 30 random candidates whose one relevant row is the best by
    `telling(x)`; `history` 0 makes them pages, else feeds (sessions with `anonymous`)."""
    out = []
    for _ in range(n):
        x = rng.random(size=(30, len(FEATURES)))
        x[:, FEATURES.index("history")] = history
        y = np.zeros(30)
        y[np.argmax(telling(x))] = 1.0
        out.append((x, y) if anonymous is None else (x, y, np.ones(30), anonymous))
    return out


def test_each_kind_of_request_is_ranked_the_way_that_does_best_on_its_own_validation_queries(tmp_path):
    from lookgraph.recommend.ranker import ndcg, single_feature

    rng = np.random.default_rng(1)
    first, second = FEATURES.index("collaborative"), FEATURES.index("trend")

    def groups(n, telling, page=False):  # a product page, or a known shopper's feed
        return synthetic_queries(rng, n, telling, history=0.0 if page else 2.0)

    alone = fit_ranker(groups(160, lambda x: x[:, first]))
    valid = groups(40, lambda x: x[:, first])
    # No page among the queries; no session either, so sessions are ranked as feeds are.
    assert alone.report["base"] == {"feed": "collaborative", "session": "collaborative", "page": None}
    assert alone.report["way"]["feed"] in ("boosted", "base") and ndcg(valid, alone.score) == pytest.approx(1.0)
    alone.save(tmp_path)
    assert np.allclose(LearnedRanker.load(tmp_path).score(valid[0][0]), alone.score(valid[0][0]))

    both = lambda x: x[:, first] + x[:, second]  # noqa: E731
    blended = fit_ranker(groups(360, both) + groups(25, both, page=True))
    found = blended.report["valid_by_kind"]
    assert blended.report["way"]["feed"] != "base" and found["feed"][blended.report["way"]["feed"]] > found["feed"]["base"]
    assert blended.report["base"]["page"] is None and blended.report["way"]["page"] == "trees"  # 25 queries: too few

    chosen = single_feature(groups(80, lambda x: x[:, first]), seed=0)
    assert chosen is not None and chosen.report["base"] == dict.fromkeys(("feed", "session", "page"), "collaborative")
    assert chosen.report["over_hand_set"]["p"] < 0.05
    fresh = groups(10, lambda x: x[:, first])
    assert all(np.argmax(chosen.score(x)) == np.argmax(y) for x, y in fresh)
    (tmp_path / "single").mkdir()
    chosen.save(tmp_path / "single")
    assert np.allclose(LearnedRanker.load(tmp_path / "single").score(fresh[0][0]), chosen.score(fresh[0][0]))
    assert single_feature(groups(80, lambda x: rng.normal(size=len(x))), seed=0) is None  # nothing tells: hand-set


def test_anonymous_sessions_are_ranked_by_what_answers_sessions_once_there_are_enough_of_them():
    # Feeds are answered by the collaborative score, anonymous visitors' sessions by what the
    # crowd engaged with beside their items. The features alone cannot tell the two apart (a
    # session's items are its profile): the request says whether it is anonymous.
    from lookgraph.recommend.ranker import MIN_BASE_QUERIES, ndcg

    rng = np.random.default_rng(3)
    feed_signal, session_signal = FEATURES.index("collaborative"), FEATURES.index("co_engagement")

    def groups(n, telling, anonymous):
        return synthetic_queries(rng, n, lambda x: x[:, telling], anonymous=anonymous)

    ranker = fit_ranker(groups(300, feed_signal, False) + groups(120, session_signal, True))
    assert ranker.report["base"]["feed"] == "collaborative" and ranker.report["base"]["session"] == "co_engagement"
    assert ranker.report["valid_by_kind"]["session"]["queries"] == 120
    sessions = groups(30, session_signal, True)
    assert ndcg(sessions, ranker.score) > 0.9  # asked as anonymous: ranked by their own base
    assert ndcg([(x, y) for x, y, *_ in sessions], ranker.score) < 0.5  # asked as a known shopper's feed: not

    few = fit_ranker(groups(300, feed_signal, False) + groups(MIN_BASE_QUERIES - 5, session_signal, True))
    assert few.report["base"]["session"] == "collaborative" and few.report["way"]["session"] == few.report["way"]["feed"]
    assert few.report["borrowed"] == {"session": "feed"} and ranker.report["borrowed"] == {}
    x = sessions[0][0]
    assert np.allclose(few.score(x, anonymous=True), few.score(x))  # too few: a session is ranked as a feed


def test_a_ranker_of_few_queries_is_cross_fitted_and_chooses_the_simplest_way_within_its_noise(tmp_path):
    import lightgbm

    from lookgraph.recommend.ranker import FOLDS, _simplest_within_one_error

    rng = np.random.default_rng(2)
    telling = FEATURES.index("collaborative")

    def groups(n):
        return synthetic_queries(rng, n, lambda x: x[:, telling])

    ranker = fit_ranker(groups(200))
    report = ranker.report
    assert report["folds"] == FOLDS and len(ranker.boosters["trees"]) == 1  # one model serves, learnt from every query
    assert report["valid_queries"] == 200  # every query validated once, by trees that never saw it
    assert report["base"]["feed"] == "collaborative" and report["way"]["feed"] == "base"  # trees add nothing to it
    x = groups(1)[0][0]
    ranker.save(tmp_path)
    assert np.allclose(LearnedRanker.load(tmp_path).score(x), ranker.score(x))

    # An artifact of one split (before folds) still loads and serves its one model per way.
    (tmp_path / "before").mkdir()
    ranker.boosters["trees"][0].save_model(str(tmp_path / "before" / "ranker.txt"))
    (tmp_path / "before" / "ranker.json").write_text((tmp_path / "ranker.json").read_text().replace('"base"', '"trees"', 0))
    old = LearnedRanker.load(tmp_path / "before")
    assert isinstance(old.boosters["trees"][0], lightgbm.Booster) and len(old.boosters["trees"]) == 1

    noise = rng.normal(0, 0.1, 60)
    assert _simplest_within_one_error({"base": 0.5 + noise, "trees": 0.505 + noise[::-1]}) == "base"
    assert _simplest_within_one_error({"base": 0.5 + noise, "trees": 0.7 + noise}) == "trees"
    big = fit_ranker(groups(1_000))
    assert big.report["folds"] == 1 and big.report["valid_queries"] == 200 and big.report["train_queries"] == 800


def test_the_served_lookgnn_has_learnt_from_what_training_held_out(demo):
    _, graph, result, _, split, _ = demo

    def touched(g):
        seen = np.zeros(g.count("product"), dtype=bool)
        seen[g.edges[("session", "interacted", "product")][1]] = True
        seen[g.edges[("look", "includes", "product")][1]] = True
        return seen

    held_out_only = touched(graph) & ~touched(split.train)  # engaged only in what the ranker and early stopping held out
    assert held_out_only.any()
    assert not result.model.cold[torch.from_numpy(held_out_only)].any()  # learnt from their engagement too, not content alone
    again = [r for r in result.history if r.get("every_interaction")]
    assert len(again) == FAST.refresh_epochs and len(result.history) > len(again)

    spent = TrainConfig(**{**FAST.__dict__, "max_minutes": 1e-6})  # the budget is spent by early stopping's epochs
    assert not any(r.get("every_interaction") for r in fit_artifact(graph, spent)[0].history)


def test_a_per_shopper_ranker_split_also_asks_the_shoppers_held_out_for_early_stopping(demo):
    from lookgraph.embeddings.splits import hold_out_missing
    from lookgraph.recommend.offline import RANKER_QUERIES

    _, graph, _, _, _, _ = demo
    config = TrainConfig(**{**FAST.__dict__, "ranker_split": "random", "refresh_epochs": 0})
    lines = []
    _, _, split, _ = fit_artifact(graph, config, log_line=lines.append)
    _, futures = hold_out_missing(graph, config.seed, RANKER_QUERIES)
    asked = next(line for line in lines if line.startswith("ranker: asking the engine for"))
    assert split.shoppers and f"for {len(futures) + len(split.shoppers)} shoppers" in asked


def test_the_offline_store_holds_the_training_graph(demo, tmp_path):
    _, _, _, _, split, _ = demo
    store = SQLiteGraphStore(tmp_path / "offline.db")
    store.ensure_schema()
    write_export(split.train, store)
    again = export_graph(store, mined_looks=True)
    assert again.count("product") == split.train.count("product")
    assert again.edges[("session", "interacted", "product")].shape == split.train.edges[("session", "interacted", "product")].shape
    assert sorted(look.id for look in store.iter_records("looks") if look.mined) == sorted(lk.id for lk in split.train.mined_looks)
    store.close()


def test_every_shopper_gets_a_full_list_and_product_pages_stay_across_categories(demo):
    _, graph, result, ranker, split, mined = demo
    with offline_engine(with_looks(graph, mined), result.vectors, ranker) as engine:
        for shopper in graph.ids["shopper"][:20]:
            answer = engine.for_shopper(shopper, Ask(k=20))
            assert len(answer.items) == 20 and answer.short_because is None
            assert all(item.paths and item.reason for item in answer.items)
        newcomer = engine.for_shopper("never-seen", Ask(k=20))
        assert len(newcomer.items) == 20
        for product in graph.ids["product"][:20]:
            page = engine.complete_the_look(product, Ask(k=20)).items
            leaf = engine.graph.cards([product])[product].category
            same = sum(item.category in (leaf, None) for item in page)
            assert len(page) == 20 and same <= int(20 * SAME_LEAF_SHARE)


def test_a_filtered_list_says_why_it_is_short(demo):
    store, graph, result, ranker, _, _ = demo
    categories = list(store.iter_records("categories"))
    parents = {c.parent_id for c in categories}
    leaf = next(c for c in categories if c.id not in parents)
    in_leaf = [p.id for p in store.iter_records("products") if p.category_id == leaf.id]
    engine = Engine(store, store.traversal(result.vectors), result.vectors, ranker=ranker)
    answer = engine.for_shopper(graph.ids["shopper"][0], Ask(k=100, categories=(leaf.id,)))
    assert {item.category for item in answer.items} <= {leaf.id}
    if len(answer.items) < 100:
        assert answer.short_because.startswith(f"only {len(answer.items)} products pass the filters")
        assert len(answer.items) <= len(in_leaf)


def test_the_served_ranker_is_told_whether_an_anonymous_visitor_asks(demo):
    store, graph, result, _, _, _ = demo
    asked = []

    class Recording(EvidenceRanker):
        def score(self, x, anonymous=False):
            asked.append(anonymous)
            return super().score(x, anonymous)

    engine = Engine(store, store.traversal(result.vectors), result.vectors, ranker=Recording())
    first, second = graph.ids["product"][:2]
    assert engine.for_session("visitor", Ask(k=5, items=(first, second), explore=False)).items
    assert engine.for_shopper(graph.ids["shopper"][0], Ask(k=5, explore=False)).items
    assert asked == [True, False]


def test_mined_looks_explain_themselves_as_bought_together(store, tmp_path):
    graph = basket_shop(store, tmp_path)
    store.replace_mined_looks(mine_looks(graph, min_support=2, min_lift=1.2))
    engine = Engine(store, store.traversal())
    page = engine.complete_the_look("jeans", Ask(k=3)).items
    boots = next(item for item in page if item.product_id == "boots")
    mined = next(path for path in boots.paths if path.nodes[1].label == "Look")
    assert [step.label for step in mined.nodes] == ["Product", "Look", "Product"]
    assert mined.nodes[1].id.startswith("mined:") and mined.relationships == ["INCLUDES", "INCLUDES"]
    assert mined.sentence == "often bought together with the Jeans you are looking at"


def within_category_shop(store, tmp_path, sessions: int = 300, buyers: int = 40):
    """A shop whose visitors browse within one category (as on Diginetica): anonymous sessions
    each view four products of one of six categories, while its known shoppers each bought one
    product of three categories, so no category looks like one shoppers come back to."""
    rng = np.random.default_rng(5)
    kinds = ("kettles", "toasters", "blenders", "irons", "fans", "heaters")
    categories = [Category("home", "Home"), *(Category(c, c.title(), "home") for c in kinds)]
    products = [Product(f"{c}-{i}", f"{c.title()} {i}", c) for c in kinds for i in range(30)]
    liked = np.linspace(3, 1, 30) / np.linspace(3, 1, 30).sum()
    events, n = [], 0
    for s in range(sessions):
        kind = kinds[s % len(kinds)]
        for i in rng.choice(30, size=4, replace=False, p=liked):
            events.append(Event(f"e{n}", f"s{s}", f"{kind}-{i}", "view", 3_600.0 * s + n))
            n += 1
    for u in range(buyers):
        for visit, kind in enumerate(rng.choice(kinds, size=3, replace=False)):
            events.append(Event(f"e{n}", f"b{u}-{visit}", f"{kind}-{rng.integers(30)}", "purchase",
                                3_600.0 * (u * 7 + visit * 50) + n, f"u{u}"))
            n += 1
    load(write_native(tmp_path / "in", categories=categories, products=products,
                      shoppers=[Shopper(f"u{u}") for u in range(buyers)], events=events), store)
    return export_graph(store)


def test_without_a_ranker_held_out_visits_decide_whether_feeds_show_more_of_a_category(demo, embedded, tmp_path):
    _, _, complementary, none, _, _ = demo
    assert none is None and complementary.vectors.meta["across_only"]["chosen"] is True  # the demo completes looks
    graph = within_category_shop(embedded, tmp_path)
    result, ranker, _, mined = fit_artifact(graph, FAST)
    choice = result.vectors.meta["across_only"]
    assert ranker is None and choice["chosen"] is False, choice
    assert choice["hits"]["more of the same"] > choice["hits"]["across only"] and choice["p"] < 0.05
    with offline_engine(with_looks(graph, mined), result.vectors) as engine:
        assert engine.strict_across is False
        browsing = engine.for_session("new", Ask(k=10, items=("kettles-0", "kettles-1"), explore=False)).items
        assert sum(item.category == "kettles" for item in browsing) >= 5
        page = engine.complete_the_look("kettles-0", Ask(k=10)).items
        assert sum(item.category == "kettles" for item in page) <= int(10 * SAME_LEAF_SHARE)  # a page still completes


def test_the_evaluation_measures_the_served_engine(demo):
    from lookgraph.embeddings.baselines import content_matrix
    from lookgraph.embeddings.evaluate import evaluate_method
    from lookgraph.recommend.offline import EngineMethod

    _, graph, *_ = demo
    split = make_split(graph, 1)
    method = EngineMethod(FAST)
    method.fit(split.train)
    try:
        scores = evaluate_method(method, split, content_matrix(graph), graph.product_category)
    finally:
        method.close()
    from lookgraph.embeddings.baselines import Popularity

    popularity = Popularity()
    popularity.fit(split.train)
    best_sellers = evaluate_method(popularity, split, content_matrix(graph), graph.product_category)
    assert scores["shopper_full_lists"] == 1.0 and scores["cross_category@20"] >= 0.8
    assert scores["look_ndcg@10"] > best_sellers["look_ndcg@10"]  # what it serves beats a best-seller list


def test_explain_model_names_the_rankers_features(demo, tmp_path, monkeypatch):
    store, *_ = demo
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path))
    from lookgraph.embeddings.publish import train_and_publish

    train_and_publish(store, tmp_path, FAST)  # too little data for a ranker: the hand-set weights, said so
    out = CliRunner().invoke(app, ["explain-model"])
    assert out.exit_code == 0, out.output
    assert "ranker evidence (hand-set weights)" in out.output and "evidence look       x 1.0" in out.output
    assert "the anchors' categories: left out (complements only)" in out.output
    train_and_publish(store, tmp_path, TrainConfig(**{**FAST.__dict__, "min_ranker_queries": 10}))
    out = CliRunner().invoke(app, ["explain-model"])
    assert out.exit_code == 0, out.output
    assert "ranker lambdarank" in out.output and "content_match" in out.output and "share of gain" in out.output
    assert "session: 0 validation queries, too few of its own: ranked as a feed is" in out.output  # a shop with looks


def test_the_store_interface_does_not_import_the_in_memory_walks():
    tree = ast.parse((ROOT / "graph" / "store.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(m and "memory_traversal" in m for m in imported)
    run = subprocess.run([sys.executable, "-c", "import lookgraph.graph.memory_traversal, lookgraph.graph.store"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_a_shopper_of_one_department_is_not_offered_the_other(demo):
    """Complements respect who the item is for: menswear for a shopper whose history is menswear
    (at the top of the list: this 300-product shop runs out of one department's candidates by 20)."""
    store, graph, result, ranker, _, mined = demo
    department = {p.id: (p.category_id or "").split("/")[1] for p in store.iter_records("products")
                  if (p.category_id or "").startswith("fashion/")}
    shares = []
    with offline_engine(with_looks(graph, mined), result.vectors, ranker) as engine:
        for shopper in graph.ids["shopper"]:
            seen = [department[e.product_id] for e in engine.store.events(shopper_id=shopper) if e.product_id in department]
            if len(seen) < 5 or len(set(seen)) != 1:
                continue
            other = {"men": "women", "women": "men"}[seen[0]]
            items = engine.for_shopper(shopper, Ask(k=10, explore=False)).items
            shares.append(np.mean([department.get(item.product_id) == other for item in items]))
    assert shares and np.mean(shares) < 0.1


def test_a_future_event_reaches_no_feature_of_a_query_asked_before_it(demo):
    """Leak-free ranker training: the offline engine asked at t reads nothing the shopper did
    after t, so a planted later purchase changes no candidate and no feature until its time."""
    store, graph, result, ranker, _, mined = demo
    with offline_engine(with_looks(graph, mined), result.vectors, ranker) as engine:
        shopper = graph.ids["shopper"][0]
        history = engine.store.events(shopper_id=shopper)
        t = engine.clock.now = history[-1].ts + 60
        before = engine.candidate_features(shopper, Ask(k=20, explore=False))
        touched = {e.product_id for e in history}
        planted = next(pid for pid in graph.ids["product"] if pid not in touched)
        engine.store.append_events([Event("planted", "planted-visit", planted, "purchase", t + 3_600, shopper)])
        after = engine.candidate_features(shopper, Ask(k=20, explore=False))
        assert before[0] == after[0] and np.array_equal(before[1], after[1])
        engine.clock.now = t + 7_200  # once it has happened, it counts
        later = engine.candidate_features(shopper, Ask(k=20, explore=False))
        assert planted not in later[0] and (later[0] != before[0] or not np.array_equal(later[1], before[1]))


def test_the_ranker_learns_what_shoppers_went_on_to_after_one_moment_for_everyone(demo):
    """`hold_out_futures`: split in time for everyone at once. Every event from the cut on
    leaves the training graph (the crowd's too, so no count reads past the query); each query
    is asked just before the cut, labelled by the products new to its shopper after it."""
    from lookgraph.embeddings.splits import hold_out_futures

    _, graph, *_ = demo
    train, futures = hold_out_futures(graph, seed=1, most=20)
    interactions = graph.edges[("session", "interacted", "product")]
    owner = dict(zip(*graph.edges[("shopper", "had", "session")][::-1].tolist()))
    assert len(futures) == 20 and len({when for _, _, when in futures}) == 1
    cut = futures[0][2] + 1.0
    assert train.event_ts.max() < cut <= graph.event_ts.max()  # nothing from the cut on, anyone's
    assert len(train.event_ts) == int((graph.event_ts < cut).sum())
    positive = np.isin(graph.event_type, (0, 1, 2))
    for shopper, later, when in futures:
        mine = [(p, ts) for (s, p), ts, ok in zip(interactions.T.tolist(), graph.event_ts.tolist(), positive)
                if owner.get(s) == shopper and ok]
        before = {p for p, ts in mine if ts < cut}
        assert len(before) >= 5 and set(later.tolist()) == {p for p, ts in mine if ts >= cut} - before


def test_where_few_span_one_moment_the_ranker_learns_from_each_shoppers_latest_visits(demo):
    """`hold_out_latest_visits`: the latest fifth of each chosen shopper's products leaves the
    training graph; the query is asked just before the first of them, and all are its labels."""
    from lookgraph.embeddings.splits import hold_out_latest_visits

    _, graph, *_ = demo
    train, futures = hold_out_latest_visits(graph, seed=1, most=30)
    interactions = graph.edges[("session", "interacted", "product")]
    kept = train.edges[("session", "interacted", "product")]
    owner = dict(zip(*graph.edges[("shopper", "had", "session")][::-1].tolist()))
    assert len(futures) == 30 and kept.shape[1] < interactions.shape[1]
    for shopper, later, when in futures:
        mine = [(p, ts) for (s, p), ts in zip(interactions.T.tolist(), graph.event_ts.tolist()) if owner.get(s) == shopper]
        left = {p for s, p in kept.T.tolist() if owner.get(s) == shopper}
        assert not set(later.tolist()) & left  # none of the future stays in training
        first_seen = {}
        for p, ts in sorted(mine, key=lambda pair: pair[1]):
            first_seen.setdefault(p, ts)
        assert all(first_seen[p] > when for p in later.tolist())  # all after the query's moment
        assert all(first_seen[p] <= when for p in left)  # and everything kept was first seen before it


def test_a_random_split_for_catalogues_where_order_says_nothing(demo):
    """`hold_out_missing` (`--ranker-split random`): a random fifth of each chosen shopper's
    products leaves the graph, every event of them; the query comes after the last event."""
    from lookgraph.embeddings.splits import hold_out_missing
    from lookgraph.embeddings.train import TrainConfig
    from lookgraph.recommend.offline import fit_artifact

    _, graph, *_ = demo
    train, futures = hold_out_missing(graph, seed=1, most=25)
    interactions, kept = graph.edges[("session", "interacted", "product")], train.edges[("session", "interacted", "product")]
    owner = dict(zip(*graph.edges[("shopper", "had", "session")][::-1].tolist()))
    assert len(futures) == 25
    for shopper, held, when in futures:
        mine = {p for s, p in interactions.T.tolist() if owner.get(s) == shopper}
        left = {p for s, p in kept.T.tolist() if owner.get(s) == shopper}
        assert set(held.tolist()) <= mine and not set(held.tolist()) & left and len(held) == max(1, len(mine) // 5)
        assert when > graph.event_ts.max()
    with pytest.raises(ValueError, match="ranker_split"):
        fit_artifact(graph, TrainConfig(ranker_split="sideways"))


def test_the_api_serves_a_trained_ranker_and_the_collaborative_source_on_each_store(store, tmp_path, monkeypatch):
    """Through the API, as a storefront sees it, on each store: `lookgraph train`'s artifact with
    a learned ranker and the collaborative index, served; every feed full and explained; what
    shoppers with a history like yours went on to, said so with its path."""
    from lookgraph.api.app import create_app
    from lookgraph.embeddings.publish import train_and_publish
    from lookgraph.loaders.demo import write_demo_store
    from lookgraph.loaders.native import NativeSource
    from lookgraph.recommend.ranker import LearnedRanker
    from lookgraph.settings import Settings

    from .test_api import READ, KEYS, TestClient, as_

    write_demo_store(tmp_path / "demo", DemoSpec(products=300, shoppers=60, events=6_000, seed=5))
    load(NativeSource(tmp_path / "demo"), store)
    config = TrainConfig(dim=64, epochs=3, seed=3, min_ranker_queries=10)
    train_and_publish(store, tmp_path / "home", config)
    app = create_app(Settings(home=tmp_path / "home", api_keys=KEYS, reload_check_seconds=0), store)
    assert isinstance(app.state.engine.ranker, LearnedRanker) and app.state.engine.model.collaborative is not None
    client = TestClient(app)
    assert client.get("/health").json()["model"]
    said, shoppers = [], sorted(store.known_ids("shoppers"))[:15]
    for shopper in shoppers:
        answer = client.get(f"/shoppers/{shopper}/recommendations?k=20", headers=as_(READ)).json()
        assert len(answer["items"]) == 20 and all(item["reason"] and item["paths"] for item in answer["items"])
        said += [path for item in answer["items"] for path in item["paths"]
                 if path["sentence"].startswith("shoppers whose history resembles yours")]
    assert said, "no feed shows the collaborative source"
    path = said[0]
    assert [n["label"] for n in path["nodes"]] == ["Shopper", "Product", "Crowd", "Product"]
    assert path["relationships"] == ["INTERACTED", "INTERACTED", "INTERACTED"]
    if store.name == "neo4j":
        # Each recommendation route is one read transaction, whatever its sources walk (the
        # crowd's statistics, counted now and then in a background thread, aside).
        from neo4j import Session

        opened = []
        for method in ("execute_read", "execute_write", "begin_transaction", "run"):
            def counting(self, *args, _run=getattr(Session, method), _method=method, **kwargs):
                if threading.current_thread().name != "crowd-statistics":
                    opened.append(_method)
                return _run(self, *args, **kwargs)
            monkeypatch.setattr(Session, method, counting)
        product, other = sorted(store.known_ids("products"))[:2]
        asked = [lambda: client.get(f"/shoppers/{shoppers[0]}/recommendations?k=20", headers=as_(READ)),
                 lambda: client.get(f"/shoppers/{shoppers[1]}/recommendations?k=10&product_id={product}", headers=as_(READ)),
                 lambda: client.get(f"/products/{product}/complete-the-look?k=10&item={other}", headers=as_(READ)),
                 lambda: client.post("/sessions/visitor-1/recommendations", json={"items": [product, other], "k": 10},
                                     headers=as_(READ))]
        for ask in asked:
            opened.clear()
            response = ask()
            assert response.status_code == 200 and response.json()["items"], response.text
            assert opened == ["execute_read"], (response.request.url, opened)
        # ... of two or three statements: the shopper with their events and shown lists, the
        # walks, and the cards of products this process has not read yet (each attribute's most
        # popular products are counted once, then kept).
        statements, read_many = [], store._read_many
        monkeypatch.setattr(store, "_read_many", lambda *queries: statements.extend(k for k, _ in queries) or read_many(*queries))
        asked[0]()
        assert sorted(set(statements) - {"traversal.product_cards"}) == ["read.shopper_history", "traversal.walks"]
        assert len(statements) <= 3, statements


def test_logged_feeds_are_learnt_from_and_both_rankers_estimated_on_the_held_out_ones(demo):
    """`lookgraph train --impressions-days`: logged feeds join the ranker's queries, and the ranker
    learnt with them and the one without are both estimated on the last fifth."""
    from lookgraph.recommend.logged import LoggedList

    store, graph, *_ = demo
    lists = []
    for n, shopper in enumerate(sorted(store.known_ids("shoppers"))[:40]):
        events = store.events(shopper_id=shopper, limit=50)
        if len(events) < 3:
            continue
        shown = tuple(dict.fromkeys(e.product_id for e in reversed(events)))[:8]
        lists.append(LoggedList(shopper, events[-1].ts + 1, shown, frozenset({n % len(shown)})))
    config = TrainConfig(**{**FAST.__dict__, "min_ranker_queries": 10})
    _, ranker, _, _ = fit_artifact(graph, config, logged=lists)
    logged = ranker.report["logged"]
    assert logged["learnt_from"] + logged["held_out"] <= len(lists) and logged["held_out"] >= 1
    assert len(logged["examination"]) == 20 and logged["examination"][0] == 1.0
    assert logged["estimated_clicks_with_logs"] >= 0 and logged["estimated_clicks_without_logs"] >= 0


def test_evaluate_estimates_the_engines_rankers_on_logged_feeds(demo):
    """`lookgraph evaluate --impressions-days`: the engine's ranker learns from logged feeds too,
    and the report says both rankers' estimates on the held-out ones."""
    from lookgraph.embeddings.evaluate import markdown_table, run
    from lookgraph.recommend.logged import LoggedList

    store, graph, *_ = demo
    lists = []
    for n, shopper in enumerate(sorted(store.known_ids("shoppers"))[:40]):
        events = store.events(shopper_id=shopper, limit=50)
        if len(events) >= 3:
            shown = tuple(dict.fromkeys(e.product_id for e in reversed(events)))[:8]
            lists.append(LoggedList(shopper, events[-1].ts + 1, shown, frozenset({n % len(shown)})))
    config = TrainConfig(**{**FAST.__dict__, "min_ranker_queries": 10})
    report = run(graph, (0,), config, ("engine",), log=lambda line: None, logged=lists)
    [estimate] = report["logged_feeds"]
    assert estimate["seed"] == 0 and estimate["held_out"] >= 1 and "estimated_clicks_with_logs" in estimate
    assert "held-out logged feeds" in markdown_table(report)
