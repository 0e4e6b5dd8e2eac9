"""The GraphStore contract: every test runs against the embedded store and, when NEO4J_URI is
set, against Neo4j, with the same assertions."""

from __future__ import annotations

import pytest

from lookgraph.graph.model import Attribute, Category, Event, Look, Product, SavedLook, Shopper
from lookgraph.graph.store import UnknownNode
from lookgraph.loaders.native import NativeSource, NativeWriter
from lookgraph.loaders.pipeline import load


def write_native(folder, **records):
    out = NativeWriter(folder)
    for kind, rows in records.items():
        out.write(kind, rows)
    return NativeSource(folder)


CATALOGUE = dict(
    categories=[Category("fashion", "Fashion"), Category("shoes", "Shoes", "fashion"),
                Category("boots", "Boots", "shoes"), Category("jeans", "Jeans", "fashion")],
    products=[
        Product("jeans-1", "Slim jeans", "jeans", 59.0, (Attribute("colour", "blue"), Attribute("style", "casual"))),
        Product("boots-1", "Chelsea boots", "boots", 120.0, (Attribute("style", "casual"),)),
        Product("belt-1", "Leather belt", None, 25.0, ()),
    ],
    shoppers=[Shopper("ann", "London"), Shopper("bob", "Paris")],
    events=[
        Event("e1", "s1", "jeans-1", "view", 1000.0, "ann", "London"),
        Event("e2", "s1", "boots-1", "cart", 1010.0, "ann", "London"),
        Event("e3", "s2", "belt-1", "purchase", 2000.0, "ann", "Rome", True),
        Event("e4", "s3", "jeans-1", "view", 1500.0, "bob", "Paris"),
        Event("e5", "anon-1", "boots-1", "view", 1600.0, None, None),
    ],
    looks=[Look("weekend", "weekend denim", ("jeans-1", "boots-1", "belt-1"), "s1")],
    saved_looks=[SavedLook("ann", "weekend", 3000.0), SavedLook("bob", "weekend", 3100.0)],
)


@pytest.fixture
def loaded(store, tmp_path):
    load(write_native(tmp_path / "in", **CATALOGUE), store)
    return store


def test_load_counts_every_label_and_relationship(loaded):
    stats = loaded.stats()
    assert stats.nodes == {"Shopper": 2, "Session": 4, "Product": 3, "Category": 4, "Attribute": 2, "Look": 1}
    assert stats.relationships == {
        "HAD_SESSION": 3, "INTERACTED": 5, "IN_CATEGORY": 2, "CHILD_OF": 3,
        "HAS_ATTRIBUTE": 3, "INCLUDES": 3, "FOUND_IN": 1, "SAVED": 2,
        "BOUGHT_WITH": 2,  # jeans-1 and boots-1, together in s1, each way
        "GOES_WITH": 2,  # jeans and boots, together in the weekend look, each way (the belt has no category)
    }
    # Fashion holds all categorised products (jeans directly, boots through shoes).
    assert stats.top_categories[0] == ("fashion", "Fashion", 2)


def test_reloading_the_same_files_changes_nothing(loaded, tmp_path):
    before = loaded.stats()
    report = load(NativeSource(tmp_path / "in"), loaded)
    assert report.new_events == 0
    assert loaded.stats() == before


def test_upsert_replaces_a_products_fields_and_attributes(loaded, tmp_path):
    changed = Product("jeans-1", "Straight jeans", "fashion", 49.0, (Attribute("colour", "black"),))
    load(write_native(tmp_path / "again", products=[changed]), loaded)
    assert loaded.get("products", "jeans-1") == changed
    assert loaded.stats().nodes["Product"] == 3
    # The looks' category complements follow the product's new category.
    assert list(loaded.iter_goes_with()) == [("boots", "fashion", 1, 1.0), ("fashion", "boots", 1, 1.0)]


def test_upsert_replaces_a_looks_items_in_order(loaded, tmp_path):
    assert list(loaded.iter_goes_with()) == [("boots", "jeans", 1, 1.0), ("jeans", "boots", 1, 1.0)]
    load(write_native(tmp_path / "again", looks=[Look("weekend", "weekend", ("belt-1", "jeans-1"), None)]), loaded)
    assert loaded.get("looks", "weekend") == Look("weekend", "weekend", ("belt-1", "jeans-1"), None)
    assert list(loaded.iter_goes_with()) == []  # the look no longer puts two categories together
    loaded.create("looks", Look("denim", "denim day", ("boots-1", "belt-1", "jeans-1"), None))
    assert list(loaded.iter_goes_with()) == [("boots", "jeans", 1, 1.0), ("jeans", "boots", 1, 1.0)]
    partners = {(n.direction, n.id, n.props["looks"]) for n in loaded.neighbours("Category", "jeans", rel="GOES_WITH")}
    assert partners == {("out", "boots", 1), ("in", "boots", 1)}


def test_mined_looks_are_replaced_as_a_set_and_curated_looks_stay(loaded):
    first = [Look("mined:a", "often bought together: Jeans + Boots", ("jeans-1", "boots-1"), None, True, 4, 3.5),
             Look("mined:b", "often bought together: Boots + Jeans", ("boots-1", "jeans-1"), None, True, 2, 2.0)]
    assert loaded.replace_mined_looks(first) == 0
    assert loaded.get("looks", "mined:a") == first[0]  # mined, support and lift read back
    second = [Look("mined:b", "often bought together: Boots + Jeans", ("boots-1", "jeans-1"), None, True, 5, 2.5)]
    assert loaded.replace_mined_looks(second) == 1
    with pytest.raises(UnknownNode):
        loaded.get("looks", "mined:a")
    looks = {look.id: look for look in loaded.iter_records("looks")}
    assert looks == {"weekend": CATALOGUE["looks"][0], "mined:b": second[0]}
    assert not looks["weekend"].mined
    assert list(loaded.iter_goes_with()) == [("boots", "jeans", 2, 1.0), ("jeans", "boots", 2, 1.0)]  # weekend and mined:b
    loaded.replace_mined_looks([])
    assert list(loaded.iter_goes_with()) == [("boots", "jeans", 1, 1.0), ("jeans", "boots", 1, 1.0)]


def test_events_append_idempotently_and_read_back_in_time_order(loaded):
    new = [Event("e6", "s1", "belt-1", "view", 1020.0, "ann", "London"),
           Event("e1", "s1", "jeans-1", "view", 1000.0, "ann", "London")]  # e1 is already stored
    assert loaded.append_events(new) == 1
    assert loaded.append_events(new) == 0
    ann = loaded.events(shopper_id="ann")
    assert [e.id for e in ann] == ["e1", "e2", "e6", "e3"]
    assert ann[-1] == Event("e3", "s2", "belt-1", "purchase", 2000.0, "ann", "Rome", True)
    assert [e.id for e in loaded.events(shopper_id="ann", limit=2)] == ["e6", "e3"]
    assert [e.id for e in loaded.events(shopper_id="ann", since=1010.0)] == ["e2", "e6", "e3"]
    assert [e.id for e in loaded.events(session_id="anon-1")] == ["e5"]
    assert loaded.events(session_id="anon-1")[0].shopper_id is None
    # The same new event twice in one batch is one event: the first delivery's.
    twice = [Event("e7", "s1", "boots-1", "cart", 1030.0, "ann"), Event("e7", "s1", "belt-1", "view", 1031.0, "ann")]
    assert loaded.append_events(twice) == 1
    assert [(e.id, e.product_id) for e in loaded.events(session_id="s1")][-1] == ("e7", "boots-1")


def test_a_shoppers_history_is_read_at_once_oldest_first(loaded):
    """`shopper_history`: what a feed reads of a shopper (one statement on Neo4j)."""
    from lookgraph.graph.model import Impression, ShownItem

    lists = [Impression(f"{n:032x}", "feed", 5_000.0 + n, (ShownItem("boots-1", "look", "INCLUDES>INCLUDES", n == 2),),
                        "ann", "s1", None, "m1", "hand-set", None, {"k": 1}) for n in range(3)]
    loaded.append_impressions(lists)
    shopper, events, shown = loaded.shopper_history("ann", 2, 2)
    assert shopper == Shopper("ann", "London")
    assert [e.id for e in events] == ["e2", "e3"] and events[-1].gift is True
    assert shown == lists[1:]
    assert loaded.shopper_history("bob", 10, 10)[1:] == ([loaded.events(shopper_id="bob")[0]], [])
    with pytest.raises(UnknownNode):
        loaded.shopper_history("nobody", 10, 10)


def test_appending_creates_sessions_and_shoppers_on_first_sight(loaded):
    loaded.append_events([Event("n1", "s-new", "boots-1", "view", 5000.0, "cara", "Oslo")])
    assert loaded.get("shoppers", "cara") == Shopper("cara", None)
    assert loaded.session_owners(["s-new", "anon-1", "missing"]) == {"s-new": "cara", "anon-1": None}
    assert "s-new" in loaded.known_ids("sessions")


def test_neighbourhood_covers_every_relationship_of_a_node(loaded):
    around = {(n.rel, n.direction, n.label, n.id) for n in loaded.neighbours("Product", "jeans-1")}
    assert around == {
        ("IN_CATEGORY", "out", "Category", "jeans"),
        ("HAS_ATTRIBUTE", "out", "Attribute", "colour:blue"),
        ("HAS_ATTRIBUTE", "out", "Attribute", "style:casual"),
        ("INCLUDES", "in", "Look", "weekend"),
        ("INTERACTED", "in", "Session", "s1"),
        ("INTERACTED", "in", "Session", "s3"),
        ("BOUGHT_WITH", "out", "Product", "boots-1"),
        ("BOUGHT_WITH", "in", "Product", "boots-1"),
    }
    together = next(n for n in loaded.neighbours("Product", "jeans-1", rel="BOUGHT_WITH") if n.direction == "out")
    assert (together.props["sessions"], together.props["lift"]) == (1, 1.0) and together.props["updated_at"] > 0
    shoes = {(n.direction, n.id) for n in loaded.neighbours("Category", "shoes", rel="CHILD_OF")}
    assert shoes == {("out", "fashion"), ("in", "boots")}
    items = [n for n in loaded.neighbours("Look", "weekend", rel="INCLUDES")]
    assert sorted((n.props["position"], n.id) for n in items) == [(0, "jeans-1"), (1, "boots-1"), (2, "belt-1")]
    casual = {n.id for n in loaded.neighbours("Attribute", "style:casual")}
    assert casual == {"jeans-1", "boots-1"}
    ann = {(n.rel, n.direction, n.id) for n in loaded.neighbours("Shopper", "ann")}
    assert ann == {("HAD_SESSION", "out", "s1"), ("HAD_SESSION", "out", "s2"), ("SAVED", "out", "weekend")}
    visit = sorted((n.rel, n.direction, n.id, n.props.get("event_id")) for n in loaded.neighbours("Session", "s1"))
    assert visit == [("FOUND_IN", "in", "weekend", None), ("HAD_SESSION", "in", "ann", None),
                     ("INTERACTED", "out", "boots-1", "e2"),
                     ("INTERACTED", "out", "jeans-1", "e1")]


def test_records_stream_back_as_loaded(loaded):
    assert list(loaded.iter_records("categories")) == sorted(CATALOGUE["categories"], key=lambda c: c.id)
    assert list(loaded.iter_records("products", batch_size=2)) == sorted(CATALOGUE["products"], key=lambda p: p.id)
    assert list(loaded.iter_records("looks")) == CATALOGUE["looks"]
    assert sorted(e.id for e in loaded.iter_records("events", batch_size=2)) == ["e1", "e2", "e3", "e4", "e5"]
    assert list(loaded.iter_records("saved_looks")) == CATALOGUE["saved_looks"]


def test_unknown_ids_raise_unknown_node(loaded):
    with pytest.raises(UnknownNode):
        loaded.get("products", "nope")
    with pytest.raises(UnknownNode):
        loaded.delete_shopper("nope")


def test_deleting_a_shopper_erases_all_their_personal_data(loaded):
    removed = loaded.delete_shopper("ann")
    assert removed["shoppers"] == 1 and removed["sessions"] == 2 and removed["events"] == 3
    assert removed["saved_looks"] == 1
    assert "ann" not in loaded.known_ids("shoppers")
    assert loaded.events(shopper_id="ann") == []
    assert loaded.events(session_id="s1") == [] and loaded.events(session_id="s2") == []
    assert not {"s1", "s2"} & loaded.known_ids("sessions")
    assert all(s.shopper_id != "ann" for s in loaded.iter_records("saved_looks"))
    # Not theirs: the curated look (without its link to ann's session), bob, the anonymous visit.
    assert loaded.get("looks", "weekend").session_id is None
    assert [e.id for e in loaded.events(shopper_id="bob")] == ["e4"]
    assert [e.id for e in loaded.events(session_id="anon-1")] == ["e5"]
    assert loaded.stats().relationships["SAVED"] == 1


def test_an_embedded_store_from_before_goes_with_gets_it_from_its_looks_when_opened(tmp_path):
    """Schema version 5 brought GOES_WITH: a version-4 store holds looks but no such rows, and
    opening it computes them from the looks it holds."""
    import sqlite3

    from lookgraph.graph.sqlite_schema import SCHEMA_VERSION
    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    path = tmp_path / "graph.db"
    store = SQLiteGraphStore(path)
    load(write_native(tmp_path / "in", **CATALOGUE), store)
    store.close()
    with sqlite3.connect(path) as conn:  # as version 4 left it
        conn.execute("DROP TABLE goes_with")
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    reopened = SQLiteGraphStore(path)
    assert list(reopened.iter_goes_with()) == [("boots", "jeans", 1, 1.0), ("jeans", "boots", 1, 1.0)]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    reopened.close()
