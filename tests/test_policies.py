"""The engine: complements across categories, explained, reacting to each event, and none of
the classic failures of personalization."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from lookgraph.graph.model import Event
from lookgraph.graph.traversal import ProductCard
from lookgraph.recommend.candidates import COLUMN, NO_WALKS, Offers
from lookgraph.recommend.engine import Ask, Engine
from lookgraph.recommend.request import for_shopper as shopper_request
from lookgraph.recommend import policies
from lookgraph.recommend.policies import PolicyConfig, touched

from .scenario import DAY, NOW, Clock, build


@pytest.fixture
def shop(tmp_path, store):
    """The scenario shop in each store (Neo4j when NEO4J_URI is set): same engine, same answers."""
    build(tmp_path, store)
    clock = Clock()
    # What it shows is kept at once (the API queues it and writes it within a second).
    engine = Engine(store, store.traversal(), None, PolicyConfig(explore_share=0.0), clock,
                    keep_shown=lambda impression: store.append_impressions([impression]))
    yield store, engine, clock


def ids(recommendations) -> list[str]:
    return [r.product_id for r in recommendations]


def event(n, product, kind="view", session="ann-now", ts=NOW, shopper="ann", location="London", gift=False):
    return Event(f"t/{n}", session, product, kind, ts, shopper, location, gift)


def test_complete_the_look_goes_across_categories_and_explains_itself(shop):
    _, engine, _ = shop
    recs = engine.complete_the_look("jeans-1", Ask(k=5)).items
    assert {"boots-1", "tote-1"} <= set(ids(recs))
    assert "jeans-2" not in ids(recs)  # no more jeans by default
    boots = next(r for r in recs if r.product_id == "boots-1")
    path = boots.paths[0]
    assert [s.label for s in path.nodes] == ["Product", "Look", "Product"]
    assert path.relationships == ["INCLUDES", "INCLUDES"]
    assert path.sentence == "goes with the Slim jeans you are looking at in the look 'weekend denim'"
    assert "jeans-2" in ids(engine.complete_the_look("jeans-1", Ask(k=10, same_category=True)).items)


def test_missing_categories_are_filled_before_a_second_item_of_one(shop):
    _, engine, _ = shop
    recs = engine.complete_the_look("jeans-1", Ask(k=3)).items
    categories = [r.category for r in recs]
    assert len(set(categories)) == len(categories)


def test_each_event_changes_the_next_answer(shop):
    store, engine, clock = shop
    before = ids(engine.for_shopper("ann", Ask(k=10)).items)
    store.append_events([event(1, "jeans-1")])
    after = engine.for_shopper("ann", Ask(k=10)).items
    assert after[0].product_id in {"boots-1", "tote-1"} and ids(after) != before
    assert "jeans-1" not in ids(after)  # seen is not re-shown
    assert any("you viewed in the look 'weekend denim'" in p.sentence for r in after for p in r.paths)


def test_a_one_time_purchase_stops_its_category(shop):
    store, engine, clock = shop
    store.append_events([event(1, "seat-1", "view"), event(2, "seat-1", "purchase", ts=NOW + 60)])
    clock.now = NOW + 3600
    recs = engine.for_shopper("ann", Ask(k=20)).items
    assert not any(r.category == "home/durables/toilet-seats" for r in recs)  # seat-2 would come via the crowd


def test_consumables_come_back_near_their_cycle(shop):
    store, engine, clock = shop
    store.append_events([event(1, "coffee-1", "purchase", session="ann-coffee", ts=NOW - 18 * DAY)])
    recs = engine.for_shopper("ann", Ask(k=20)).items
    coffee = [r for r in recs if r.product_id == "coffee-1"]
    assert coffee and "time to restock: you buy this about every 20 days" in coffee[0].paths[0].sentence
    store.append_events([event(2, "coffee-1", "purchase", session="ann-coffee-2", ts=NOW - 2 * DAY)])
    assert "coffee-1" not in ids(engine.for_shopper("ann", Ask(k=20)).items)  # just bought: not yet


def test_a_dismissal_removes_the_item_and_lowers_its_look(shop):
    store, engine, _ = shop
    store.append_events([event(1, "jeans-1", session="v-plain", shopper=None),
                         event(2, "jeans-1", session="v-dismiss", shopper=None),
                         event(3, "boots-1", "dismiss", session="v-dismiss", shopper=None, ts=NOW + 1)])
    plain = {r.product_id: r.score for r in engine.for_session("v-plain", Ask(k=10, explore=False)).items}
    dismissed = {r.product_id: r.score for r in engine.for_session("v-dismiss", Ask(k=10, explore=False)).items}
    assert "boots-1" in plain and "boots-1" not in dismissed
    assert dismissed["tote-1"] < plain["tote-1"]  # its look ('weekend denim') counts less now
    store.append_events([event(4, "boots-1", "dismiss", ts=NOW + 2)])
    assert "boots-1" not in ids(engine.for_shopper("ann", Ask(k=10, product_id="jeans-1")).items)
    assert "boots-1" in ids(engine.for_shopper("bob", Ask(k=10, product_id="jeans-1")).items)  # only ann dismissed it


def test_items_shown_again_and_again_fade_whichever_process_showed_them(shop):
    """Fading reads the lists kept in the store: a second engine (another worker) over the same
    store fades what the first showed."""
    store, engine, clock = shop
    first = {r.product_id: r.score for r in engine.for_shopper("ann", Ask(k=5)).items}
    for n in range(6):
        clock.now = NOW + n + 1
        engine.for_shopper("ann", Ask(k=5)).items
    other = Engine(store, store.traversal(), None, PolicyConfig(explore_share=0.0), clock)
    later = {r.product_id: r.score for r in other.for_shopper("ann", Ask(k=5)).items}
    faded = [p for p in first if p in later and later[p] < first[p]]
    assert faded
    store.append_events([event(9, faded[0], "cart", ts=NOW + 10)])  # engaged with since: no longer faded
    clock.now = NOW + 11
    again = {r.product_id: r.score for r in other.for_shopper("ann", Ask(k=5)).items}
    assert faded[0] not in again or again[faded[0]] > later[faded[0]]


def test_gift_shopping_shapes_the_session_not_the_profile(shop):
    store, engine, clock = shop
    store.append_events([event(1, "shirt-1", session="ann-gift", ts=NOW, gift=True)])
    during = engine.for_shopper("ann", Ask(k=5)).items
    assert "loafers-1" in ids(during)  # the session's own context
    clock.now = NOW + 3 * 3600  # the gift session is over
    after = engine.for_shopper("ann", Ask(k=5)).items
    assert "loafers-1" not in ids(r for r in after if "best seller" not in r.reason)  # a best seller may fill a slot
    assert not any(s.id == "shirt-1" for r in after for p in r.paths for s in p.nodes)


def test_a_session_far_from_the_profile_counts_as_for_someone_else(shop):
    store, engine, clock = shop
    store.append_events([event(1, "shirt-1", session="ann-unflagged", ts=NOW)])  # not flagged as a gift
    assert "loafers-1" in ids(engine.for_shopper("ann", Ask(k=5)).items)
    clock.now = NOW + 3 * 3600
    assert "loafers-1" not in ids(r for r in engine.for_shopper("ann", Ask(k=5)).items if "best seller" not in r.reason)


def test_a_shopper_of_many_tastes_keeps_a_profile_and_one_view_does_not_take_it_over():
    """Four sessions each in a group of its own: variety is this shopper's taste, not four
    detours from it (every session far from the others once left such a shopper no profile, and
    one view then took the whole feed). The profile stays; the view's session counts a share."""
    from lookgraph.graph.traversal import CategoryTree
    from lookgraph.graph.model import Category

    tree = CategoryTree.of([Category("f", "Fashion"), Category("f/w", "Women", "f"), Category("f/m", "Men", "f"),
                            *(Category(f"f/w/{g}", g, "f/w") for g in ("tops", "shoes", "bags")),
                            *(Category(f"f/m/{g}", g, "f/m") for g in ("tops", "shoes"))])
    cards = {f"{g}-{n}": ProductCard(f"{g}-{n}", g, f"f/w/{g}") for g in ("tops", "shoes", "bags") for n in range(2)}
    cards["shirt"] = ProductCard("shirt", "shirt", "f/m/tops")
    events = [Event(f"e{i}", f"s{i}", pid, "purchase", NOW - (10 - i) * DAY, "vera")
              for i, pid in enumerate(["tops-0", "shoes-0", "bags-0", "tops-1"])]
    events.append(Event("e9", "s9", "shirt", "view", NOW, "vera"))
    config = PolicyConfig()
    state = policies.shopper_state("vera", None, events, cards, tree, config, NOW + 60)
    assert [e.id for e in state.profile_events if e.session_id != "s9"] == ["e0", "e1", "e2", "e3"]
    assert state.current.id == "s9" and not state.current.off_profile
    assert policies.session_weight(state, config) == pytest.approx(1 / config.session_full_events)


def test_without_a_ranker_a_feed_shows_more_of_a_category_shoppers_keep_coming_back_to(shop):
    """Under the hand-set weights a feed leaves out the categories of what the shopper had,
    unless shoppers keep coming back to a category for another product (a jeans buyer is shown
    more jeans once buyers of jeans buy a second pair); a product page still completes the look."""
    store, engine, clock = shop
    store.append_events([event(1, "jeans-1", "purchase", session="bob-jeans", ts=NOW - 3 * DAY, shopper="bob",
                               location=None)])
    feed = lambda: ids(engine.for_shopper("bob", Ask(k=12, explore=False)).items)  # noqa: E731
    assert "jeans-2" not in feed()  # nobody comes back to jeans yet
    store.append_events([event(10 + 2 * n + i, pid, "purchase", session=f"crowd-jeans-{n}", shopper=f"crowd-{n}",
                               ts=NOW - 2 * DAY + n, location=None)
                         for n in range(4) for i, pid in enumerate(("jeans-1", "jeans-2"))])
    engine.graph = store.traversal()  # the crowd's counts and statistics now hold those baskets
    engine.graph.refresh_statistics()
    assert engine.graph.repurchase()["women/bottoms/jeans"].return_rate >= 0.5
    assert "jeans-2" in feed()
    assert "jeans-2" not in ids(engine.for_shopper("bob", Ask(k=12, product_id="jeans-1")).items)


def test_travel_is_context_for_the_trip_only(shop):
    store, engine, clock = shop
    store.append_events([Event("p/1", "bob-paris", "tote-1", "purchase", NOW - 100, "bob", "Paris")])
    engine.graph = store.traversal()  # the crowd now knows what sells in Paris
    store.append_events([event(1, "jeans-2", session="ann-paris", location="Paris")])
    trip = engine.for_shopper("ann", Ask(k=10)).items
    assert any("popular with shoppers in Paris" in p.sentence for r in trip for p in r.paths)
    assert store.get("shoppers", "ann").home_location == "London"
    clock.now = NOW + 25 * 3600
    later = engine.for_shopper("ann", Ask(k=10)).items
    assert not any("Paris" in p.sentence for r in later for p in r.paths)


def test_exploration_stays_near_what_the_shopper_touched_and_differs_between_shoppers(shop):
    store, _, clock = shop
    engine = Engine(store, store.traversal(), None, PolicyConfig(explore_share=0.3), clock)
    tree = engine.graph.categories
    # Ann has only ever looked at women's jeans: exploring goes to other women's groups, never
    # to men's shirts or coffee.
    store.append_events([event(n, "boots-2", "purchase", session=f"crowd-boots-{n}", shopper=f"crowd-{n}",
                               ts=NOW - DAY + n) for n in range(3)])
    state = shopper_request(engine, "ann", Ask(k=10)).state
    trending = engine.graph.trending()
    near = lambda group: tree.department(group) == "women"  # noqa: E731
    drawn = policies.explore_groups(state, trending, 10, 0, Counter(), near)
    assert drawn and all(tree.department(g) == "women" for g in drawn) and "women/bottoms" not in drawn
    assert {"men/tops", "men/shoes"} <= set(policies.explore_groups(state, trending, 10, 0, Counter()))
    for shopper in ("ann", "crowd-0", "crowd-1"):
        touched_departments = {tree.department(g) for g in shopper_request(engine, shopper, Ask(k=10)).state.touched_groups}
        for r in engine.for_shopper(shopper, Ask(k=10)).items:
            if r.exploration:
                assert tree.department(r.category) in touched_departments, (shopper, r.product_id)
                assert "something different" in r.paths[0].sentence
    lists = {tuple(ids(engine.for_shopper(s, Ask(k=3)).items)) for s in ("bob", "cat", "crowd-0", "crowd-1", "crowd-2")}
    assert len(lists) > 1  # cold starts too: not one list for everybody


def test_outbound_respects_quiet_periods_and_frequency_caps(shop):
    store, engine, clock = shop
    first = engine.outbound("ann", "email", 3)
    assert first["contact"] and first["items"]
    clock.now = NOW + 3600
    assert engine.outbound("ann", "push", 3) | {"items": []} == {
        "contact": False, "reason": "quiet period", "retry_after": NOW + 24 * 3600, "items": []}
    clock.now = NOW + 2 * DAY
    assert engine.outbound("ann", "email", 3)["contact"]
    clock.now = NOW + 4 * DAY
    capped = engine.outbound("ann", "email", 3)
    assert not capped["contact"] and capped["reason"] == "frequency cap"
    assert len(store.contacts("ann", 0)) == 2
    clock.now = NOW + 8 * DAY
    assert engine.outbound("ann", "email", 3)["contact"]


def test_evidence_from_beyond_the_walks_counts_when_the_walks_found_nothing():
    # LookGNN neighbours, restocks, trips and trending add fractions of evidence; a cold start
    # has nothing else, and must still rank by them.
    offers = Offers(NO_WALKS, np.zeros(0))
    for n, evidence in enumerate((0.2, 0.1, 0.05)):
        offers.add(ProductCard(f"p{n}", f"P{n}", None), "trending", evidence, None, ())
    offers.add(ProductCard("p0", "P0", None), "embedding", 0.5, None, ())
    assert offers.evidence().sum(1).tolist() == pytest.approx([0.7, 0.1, 0.05])
    # Each in its source's column, and each offer one reason more.
    assert offers.evidence()[0, COLUMN["trending"]] == pytest.approx(0.2) and offers.evidence()[0, COLUMN["embedding"]] == 0.5
    assert offers.reasons().tolist() == [2, 1, 1]


def test_only_the_bag_comes_back_and_what_was_merely_viewed_never_does(shop):
    store, engine, clock = shop
    store.append_events([event(1, "boots-2", "cart", session="ann-bag", ts=NOW - 2 * DAY),
                         event(2, "tote-1", "view", session="ann-look", ts=NOW - 3 * DAY),
                         event(3, "tote-1", "view", session="ann-look2", ts=NOW - 1 * DAY),
                         event(4, "belt-1", "view", session="ann-once", ts=NOW - 1 * DAY),
                         event(5, "boots-1", "purchase", session="ann-bought", ts=NOW - 1 * DAY)])
    recs = engine.for_shopper("ann", Ask(k=10, explore=False)).items
    first = {r.product_id: r for r in recs[:3]}
    assert "still in your bag from 2 days ago" in [p.sentence for p in first["boots-2"].paths]  # a visible slot
    # Viewed twice, viewed once, bought: none is offered again (a view can be research).
    assert {"tote-1", "belt-1", "boots-1"}.isdisjoint(ids(recs))
    clock.now = NOW + 8 * DAY  # a week later: the views are still no reason to show them again
    later = ids(engine.for_shopper("ann", Ask(k=20, explore=False)).items)
    assert {"tote-1", "belt-1", "boots-1"}.isdisjoint(later) and "boots-2" not in later[:1]
    _, coming_back = touched(shopper_request(engine, "ann", Ask()).state, engine.config, clock.now)
    assert coming_back == []  # the bag is over a week old: nothing is pushed back
