"""The engine's walks (`Traversal`) answer alike in memory and in Neo4j (when NEO4J_URI is set),
and the Cypher walks are given exactly the parameters their statements use."""

from __future__ import annotations

import time

import numpy as np
import pytest

from lookgraph.graph.cypher import library
from lookgraph.graph.memory_traversal import MemoryTraversal
from lookgraph.graph.model import Attribute, Event, Look, Product
from lookgraph.graph.neo4j_store import Neo4jGraphStore
from lookgraph.graph.neo4j_traversal import CypherTraversal
from lookgraph.graph.traversal import ATTRIBUTE, CROWD, LOOK, STATISTICS_TTL, Repurchase, Traversal
from lookgraph.loaders.native import NativeSource
from lookgraph.loaders.pipeline import load

from .conftest import neo4j_store
from .scenario import DAY, NOW, build


@pytest.fixture
def graph(tmp_path, store):
    build(tmp_path, store)
    return store, store.traversal()


def test_looks_with_gives_each_look_of_an_anchor_with_its_items_in_order(graph):
    _, walk = graph
    hits = walk.looks_with(["jeans-1", "shirt-1", "seat-1"])
    assert [(h.anchor, h.look_id, h.look_name, h.product_ids) for h in hits] == [
        ("jeans-1", "weekend-denim", "weekend denim", ("jeans-1", "boots-1", "tote-1")),
        ("shirt-1", "office-men", "office men", ("shirt-1", "loafers-1")),
    ]


def test_shared_attributes_go_most_popular_first_and_across_groups(graph):
    _, walk = graph
    hits = walk.shared_attributes(["jeans-1"])
    assert {h.attribute for h in hits} == {"style:casual"}
    # tote-1 has one cart in the scenario, boots-1 nothing; jeans-2 is more bottoms.
    assert [h.product.id for h in hits] == ["tote-1", "boots-1"]
    assert hits[1].product.category == "women/shoes/boots" and hits[1].product.name == "Chelsea boots"
    # Within the group too when asked: jeans-2 has four views.
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"], across_groups=False)] == ["jeans-2", "tote-1", "boots-1"]
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"], 1, across_groups=False)] == ["jeans-2"]


def test_every_attribute_kind_is_walked_the_most_telling_first_on_each_store(tmp_path, store):
    """No fixed list of kinds: a brand, a title term, a colour are walked as a style is, each
    weighted by how telling it is (rarer weighs more), the same on both stores."""
    build(tmp_path, store)
    with store.bulk_load() as writer:
        writer.write("products", [
            Product("jeans-9", "Linen jeans", "women/bottoms/jeans", 80,
                    (Attribute("brand", "Acme"), Attribute("term", "linen"), Attribute("colour", "blue"))),
            Product("shirt-9", "Linen shirt", "men/tops/shirts", 40, (Attribute("term", "linen"), Attribute("colour", "blue"))),
            Product("tote-9", "Acme tote", "women/bags/totes", 30, (Attribute("brand", "Acme"), Attribute("colour", "blue"))),
            Product("belt-9", "Blue belt", "women/accessories/belts", 20, (Attribute("colour", "blue"),)),
        ])
    walk = store.traversal()
    hits = walk.shared_attributes(["jeans-9"], across_groups=False)
    weights = {h.attribute: h.weight for h in hits}
    assert set(weights) == {"brand:Acme", "term:linen", "colour:blue"}
    # Two holders each of 16 products weigh more than four holders.
    assert weights["brand:Acme"] == weights["term:linen"] > weights["colour:blue"] > 0
    assert {(h.attribute, h.product.id) for h in hits} >= {("brand:Acme", "tote-9"), ("term:linen", "shirt-9")}
    walks = walk.walk(["jeans-9"], across_groups=False)
    assert walks.attribute_weights == [weights[a] for a in walks.attributes]


def test_telling_attributes_rank_by_rarity_and_leave_out_what_everything_has():
    from lookgraph.graph.traversal import ATTRIBUTES_PER_ANCHOR, attribute_weight, telling_attributes

    held = [("colour:black", 400), ("brand:acme", 12), ("term:linen", 3), ("style:casual", 90), ("only:me", 1)]
    walked = telling_attributes(held, 1_000)
    assert [key for key, _ in walked] == ["term:linen", "brand:acme", "style:casual"]  # black: 40% of all
    assert walked[0][1] == pytest.approx(attribute_weight(3, 1_000)) and 0 < walked[-1][1] < walked[0][1] < 1
    assert len(telling_attributes([(f"term:{i}", 5) for i in range(20)], 1_000)) == ATTRIBUTES_PER_ANCHOR
    assert telling_attributes([("colour:black", 40)], 60) == [("colour:black", attribute_weight(40, 60))]  # a small shop


def test_co_sessions_count_the_crowds_sessions(graph):
    _, walk = graph
    hits = walk.co_sessions(["jeans-1", "belt-1", "tote-1"])
    assert [(h.anchor, h.product_id, h.sessions) for h in hits] == [("jeans-1", "belt-1", 4), ("belt-1", "jeans-1", 4)]


def test_the_crowds_statistics(graph):
    _, walk = graph
    repurchase = walk.repurchase()
    seats, coffee = repurchase["home/durables/toilet-seats"], repurchase["home/consumables/coffee"]
    assert (seats.buyers, seats.repeat_buyers, seats.cycle_days) == (4, 0, None)
    assert (coffee.buyers, coffee.repeat_buyers, coffee.cycle_days) == (4, 4, 20.0)
    trending = walk.trending()
    assert [c.id for c in trending.by_location["Leeds"]] == ["belt-1", "boots-2", "loafers-1", "shirt-2", "tote-1"]
    # The last 30 days before the newest event: the five recent carts, not the old coffee.
    assert {g: [c.id for c in cards] for g, cards in trending.by_group.items()} == {
        "women/accessories": ["belt-1"], "women/shoes": ["boots-2"], "women/bags": ["tote-1"],
        "men/shoes": ["loafers-1"], "men/tops": ["shirt-2"]}
    assert walk.categories.group("women/shoes/boots") == "women/shoes"
    assert walk.categories.within("women/shoes/boots", ["fashion"]) and not walk.categories.within("men/tops", ["women"])


def test_trending_counts_back_from_the_newest_sale_on_both_stores(graph):
    """One horizon on both stores: views after the last sale move nothing (they once moved
    Neo4j's window and not the embedded store's)."""
    store, walk = graph
    before = {g: [c.id for c in cards] for g, cards in walk.trending().by_group.items()}
    store.append_events([Event(f"late-view-{i}", f"late-{i}", "coffee-1", "view", NOW + (40 + i) * DAY, "crowd-1")
                         for i in range(3)])
    walk.events_added([])  # nothing to count: views only
    walk.refresh_statistics()
    assert {g: [c.id for c in cards] for g, cards in walk.trending().by_group.items()} == before


def test_cards_leave_out_unknown_products_and_new_products_walk_at_once(graph):
    store, walk = graph
    assert set(walk.cards(["jeans-1", "ghost"])) == {"jeans-1"}
    assert walk.product_count() == 12
    scarf = Product("scarf-1", "Wool scarf", "women/accessories/belts", 20, (Attribute("style", "casual"),))
    with store.bulk_load() as writer:
        writer.write("products", [scarf])
    walk.product_added(scarf)
    assert "scarf-1" in {h.product.id for h in walk.shared_attributes(["jeans-1"])}
    look = Look("autumn", "autumn layers", ("jeans-2", "scarf-1"))
    with store.bulk_load() as writer:
        writer.write("looks", [look])
    walk.look_added(look)
    assert [h.look_id for h in walk.looks_with(["scarf-1"])] == ["autumn"]


def _rows(walks) -> list[tuple]:
    """A walk's rows with every index resolved: (anchor, way, look or attribute or sessions, product)."""
    via = lambda way, v: walks.looks[v][:3] if way == LOOK else walks.attributes[v] if way == ATTRIBUTE else v  # noqa: E731
    return [(a, w, via(w, v), walks.cards[c].id)
            for a, w, v, c in zip(*(column.tolist() for column in walks[:4]))]


def test_walk_answers_as_the_three_walks_do(graph):
    _, walk = graph
    walks = walk.walk(["jeans-1", "belt-1", "ghost"])
    assert _rows(walks) == [
        (0, LOOK, ("jeans-1", "weekend-denim", "weekend denim"), "boots-1"),
        (0, LOOK, ("jeans-1", "weekend-denim", "weekend denim"), "tote-1"),
        (1, LOOK, ("belt-1", "city-walk", "city walk"), "jeans-2"),
        (1, LOOK, ("belt-1", "city-walk", "city walk"), "boots-2"),
        (0, ATTRIBUTE, "style:casual", "tote-1"), (0, ATTRIBUTE, "style:casual", "boots-1"),
        (0, CROWD, 4, "belt-1"), (1, CROWD, 4, "jeans-1"),
    ]
    # Candidates in the order first reached.
    assert [c.id for c in walks.cards] == ["boots-1", "tote-1", "jeans-2", "boots-2", "belt-1", "jeans-1"]
    assert _rows(walk.walk([])) == []


def test_the_in_memory_walk_is_the_three_walks_on_a_bigger_shop(demo_folder, embedded):
    load(NativeSource(demo_folder), embedded)
    walk = embedded.traversal()
    assert isinstance(walk, MemoryTraversal)
    products = [p.id for p in embedded.iter_records("products")]
    rows = 0
    for start in range(0, 120, 12):
        anchors = products[start : start + 12]
        for across in (True, False):
            fast, composed = walk.walk(anchors, across_groups=across), Traversal.walk(walk, anchors, across_groups=across)
            assert _rows(fast) == _rows(composed)
            assert fast.cards == composed.cards and fast.looks == composed.looks
            rows += len(fast.anchor)
    assert rows > 1_000  # looks, attributes and the crowd all answered


class _Recording(Neo4jGraphStore):
    """A Neo4j store without a server: records each statement's parameters, answers nothing."""

    def __init__(self):
        self.calls: list[tuple[str, set[str]]] = []

    def _read(self, key, **params):
        self.calls.append((key, set(params)))
        if key == "traversal.walks":  # one record, always
            return [{"products": 10, "looks": [], "attributes": [["a", None, [["style:casual", 2]]]], "crowd": []}]
        if key == "traversal.product_cards":
            return [{"cards": []}]  # an aggregate: always one record
        return [{"ts": 1.0}] if key == "traversal.latest_sale_time" else [{"products": 0}] if key.endswith("count") else []

    _write = _read

    def _read_many(self, *statements):
        return [self._read(key, **params) for key, params in statements]


def test_every_cypher_walk_gets_exactly_the_parameters_its_statement_uses():
    store = _Recording()
    walk = CypherTraversal(store)
    walk.cards(["a"])
    walk.looks_with(["a"])
    walk.shared_attributes(["a"])
    walk.co_sessions(["a"])
    walk.walk(["a"])
    walk.nearest(np.ones(4))
    walk.trending()
    walk.repurchase()
    walk.product_count()
    statements = library()
    called = {key for key, _ in store.calls}
    assert {k for k in statements if k.startswith("traversal.")} <= called
    for key, params in store.calls:
        assert params == set(statements[key].parameters), key


def test_vector_index_is_exact_on_small_catalogues_and_finds_most_of_the_exact_top_k_on_large_ones():
    from lookgraph.graph.vector_index import EXACT_BELOW, VectorIndex

    rng = np.random.default_rng(7)
    small = rng.normal(size=(500, 16)).astype(np.float32)
    ids = [f"p{i}" for i in range(len(small))]
    query = small[3] + small[9]
    exact = np.argsort(-(small / np.linalg.norm(small, axis=1, keepdims=True)) @ query)[:10]
    assert VectorIndex(ids, small).nearest(query, 10) == [ids[i] for i in exact]

    # Clustered like learnt embeddings: 60 directions, products scattered around them.
    centres = rng.normal(size=(60, 16))
    large = (centres[rng.integers(0, 60, EXACT_BELOW + 5_000)] + rng.normal(scale=0.4, size=(EXACT_BELOW + 5_000, 16)))
    ids = [f"p{i}" for i in range(len(large))]
    index = VectorIndex(ids, large)
    units = large / np.linalg.norm(large, axis=1, keepdims=True)
    found = []
    for row in rng.integers(0, len(large), 50):
        exact = {ids[i] for i in np.argsort(-(units @ large[row]))[:50]}
        found.append(len(exact & set(index.nearest(large[row], 50))) / 50)
    assert np.mean(found) > 0.9
    assert VectorIndex([], np.zeros((0, 16))).nearest(query, 5) == []


def test_the_embedded_crowd_statistics_follow_new_events_after_the_interval_and_forget_erased_shoppers(tmp_path):
    store = build(tmp_path)
    clock = [0.0]
    walk = MemoryTraversal.build(store, clock=lambda: clock[0], spawn=lambda work: work())
    assert "women/bottoms" not in walk.trending().by_group
    events = [Event(f"paris/{i}", f"paris-{i}", "jeans-2", "purchase", NOW + i, f"crowd-{i}", "Paris") for i in range(3)]
    events.append(Event("seat/again", "crowd-0-seat-2", "seat-1", "purchase", NOW - 100 * DAY, "crowd-0", "London"))
    store.append_events(events)
    walk.events_added(events)

    clock[0] = STATISTICS_TTL - 1  # served as computed until the interval is over
    assert "women/bottoms" not in walk.trending().by_group
    clock[0] = STATISTICS_TTL + 1
    trending = walk.trending()
    assert trending.by_group["women/bottoms"][0].id == "jeans-2"
    assert trending.by_location["Paris"][0].id == "jeans-2"
    assert walk.repurchase()["home/durables/toilet-seats"].repeat_buyers == 1  # crowd-0 bought a seat again

    store.delete_shopper("crowd-0")  # as `DELETE /shoppers/{id}` does: the store first, then the walks
    walk.shopper_erased("crowd-0")
    clock[0] = 2 * STATISTICS_TTL + 2
    assert walk.repurchase()["home/durables/toilet-seats"] == Repurchase(buyers=3, repeat_buyers=0, cycle_days=None)


def test_the_embedded_crowd_statistics_are_recomputed_in_a_background_thread(tmp_path):
    store = build(tmp_path)
    walk = MemoryTraversal.build(store, stats_ttl=0.0)
    event = Event("oslo/1", "oslo-1", "seat-2", "purchase", NOW, "crowd-1", "Oslo")
    store.append_events([event])
    walk.events_added([event])
    walk.trending()  # due: starts the refresh and answers with what it has meanwhile
    deadline = time.monotonic() + 10
    while "Oslo" not in walk.trending().by_location and time.monotonic() < deadline:
        time.sleep(0.01)
    assert walk.trending().by_location["Oslo"][0].id == "seat-2"


def test_the_neo4j_walks_keep_their_aggregates_for_the_interval_then_recompute_them(tmp_path):
    """Trending, repurchase and each attribute's most popular products are aggregates over every
    event: kept `stats_ttl` seconds, then recomputed (in the background) from what is stored."""
    store = neo4j_store()
    build(tmp_path, store)
    clock, spawned = [0.0], []
    walk = CypherTraversal(store, clock=lambda: clock[0], spawn=spawned.append)
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"])] == ["tote-1", "boots-1"]
    assert "Oslo" not in walk.trending().by_location
    # boots-1 becomes the more popular of the two, and sells in Oslo.
    store.append_events([Event(f"oslo-{i}", f"oslo-{i}", "boots-1", "purchase", NOW - DAY, "bob", "Oslo")
                         for i in range(3)])
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"])] == ["tote-1", "boots-1"]
    assert "Oslo" not in walk.trending().by_location and not spawned
    clock[0] = STATISTICS_TTL + 1
    # Due: requests get the last answers at once while the recounts are handed to the background...
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"])] == ["tote-1", "boots-1"]
    assert "Oslo" not in walk.trending().by_location
    walk.shared_attributes(["jeans-1"]), walk.trending()  # asked again meanwhile: not counted twice
    assert len(spawned) == 2
    for work in spawned:
        work()
    # ...and the next requests the new ones.
    assert walk.trending().by_location["Oslo"][0].id == "boots-1"
    assert [h.product.id for h in walk.shared_attributes(["jeans-1"])] == ["boots-1", "tote-1"]


def test_bought_with_is_one_truth_on_both_stores_while_events_stream_in(tmp_path):
    """The crowd's co-engagement is materialized by one computation (graph/crowd.py) that each
    store writes: after a load, and after each batch of events streamed in (refreshed as the
    serving job does), both stores hold the same BOUGHT_WITH rows and walk the same companions;
    between a batch and its refresh, walks serve what was last computed and the store says a
    refresh is due."""
    from lookgraph.graph import crowd

    embedded, neo4j = build(tmp_path / "embedded"), build(tmp_path / "neo4j", neo4j_store())
    walks = {"embedded": MemoryTraversal.build(embedded, spawn=lambda work: work()), "neo4j": CypherTraversal(neo4j)}
    products = sorted(embedded.known_ids("products"))
    rng = np.random.default_rng(3)

    def companions() -> dict[str, list]:
        return {name: [(h.anchor, h.product_id, h.sessions) for h in walk.co_sessions(products, 50)]
                for name, walk in walks.items()}

    assert list(embedded.iter_bought_with()) == list(neo4j.iter_bought_with()) != []
    before = companions()
    assert before["embedded"] == before["neo4j"] and ("jeans-1", "belt-1", 4) in before["embedded"]
    for batch in range(3):
        events = [Event(f"stream/{batch}/{s}/{i}", f"stream-{batch}-{s}", product, "view", NOW + batch * DAY + s * 60 + i)
                  for s in range(20) for i, product in enumerate(rng.choice(products, size=3, replace=False))]
        for store in (embedded, neo4j):
            store.append_events(events)
            assert crowd.due(store)
        assert companions() == before  # not counted until refreshed
        for store in (embedded, neo4j):
            crowd.refresh(store)
            assert not crowd.due(store)
        walks["embedded"].crowd_refreshed()
        assert list(embedded.iter_bought_with()) == list(neo4j.iter_bought_with())
        now = companions()
        assert now["embedded"] == now["neo4j"] != before["embedded"]
        before = now
    embedded.delete_shopper("crowd-0")
    neo4j.delete_shopper("crowd-0")
    assert crowd.due(embedded) and crowd.due(neo4j)  # an erasure changes what the crowd did together
    for store in (embedded, neo4j):
        crowd.refresh(store)
    walks["embedded"].crowd_refreshed()
    after = companions()
    together = lambda hits: next(n for a, b, n in hits if (a, b) == ("jeans-1", "belt-1"))  # noqa: E731
    assert after["embedded"] == after["neo4j"] and together(after["embedded"]) == together(before["embedded"]) - 1


def test_one_process_at_a_time_recomputes_bought_with(tmp_path, store):
    """The serving job's lease, kept in the store: a second claimant is refused while the first
    holds it, the lease runs out if its holder died, and a refresh when due takes and gives it."""
    from lookgraph.graph import crowd

    build(tmp_path, store)
    assert store.claim_crowd_refresh(1_000.0, 60.0) and not store.claim_crowd_refresh(1_030.0, 60.0)
    assert crowd.refresh_when_due(store) is None or not crowd.due(store)  # nothing due after the load
    assert store.claim_crowd_refresh(1_061.0, 60.0)  # the first holder died: its lease ran out
    store.append_events([Event("late/1", "late-1", "jeans-1", "cart", NOW, "ann"),
                         Event("late/2", "late-1", "seat-2", "cart", NOW + 1, "ann")])
    assert crowd.refresh_when_due(store, clock=lambda: 1_070.0) is None  # held by another: not now
    store.release_crowd_refresh()
    assert crowd.refresh_when_due(store)["rows"] > 0 and not crowd.due(store)
    assert store.claim_crowd_refresh(2_000.0, 60.0)  # given back after the refresh


def test_the_looks_category_complements_count_looks_and_lift_and_keep_each_categorys_strongest():
    from lookgraph.graph.crowd import GOES_WITH_PER_CATEGORY, goes_with

    looks = [["jeans", "boots", "belt"], ["jeans", "boots"], ["jeans", "jeans", None], ["dress", "heels"],
             ["jeans", "heels"]]
    rows = {(a, b): (n, lift) for a, b, n, lift in goes_with(looks)}
    # Four looks of two or more categories (the all-jeans one is not); jeans in 3 of them, boots in 2.
    assert rows[("jeans", "boots")] == rows[("boots", "jeans")] == (2, round(2 * 4 / (3 * 2), 4))
    assert rows[("dress", "heels")] == (1, 2.0) and ("jeans", "jeans") not in rows
    assert [a for a, *_ in goes_with(looks)] == sorted(a for a, *_ in goes_with(looks))
    jeans = [(b, n) for a, b, n, _ in goes_with(looks) if a == "jeans"]
    assert jeans == [("boots", 2), ("belt", 1), ("heels", 1)]  # most looks first, then by id
    many = [["hub", f"c{i:03d}"] for i in range(GOES_WITH_PER_CATEGORY + 5)] + [["hub", "c007"]]
    hub = [b for a, b, _, _ in goes_with(many) if a == "hub"]
    assert len(hub) == GOES_WITH_PER_CATEGORY and hub[0] == "c007"
