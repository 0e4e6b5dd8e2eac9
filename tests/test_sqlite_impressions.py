"""The embedded store keeps served lists in codes (graph/sqlite_impressions.py): what goes in
comes back, whichever process wrote it, from stores written before the codes too."""

from __future__ import annotations

import json
import sqlite3

import pytest

from lookgraph.graph.model import Impression, Shopper, ShownItem
from lookgraph.graph.sqlite_schema import SCHEMA_VERSION
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.graph.store import impression_items_json


def shown(n: int, start: int = 0, exploring: int | None = None) -> tuple[ShownItem, ...]:
    return tuple(ShownItem(f"p{start + i:05d}", ("look", "crowd", "")[i % 3], ("INCLUDES>INCLUDES", "", "BOUGHT_WITH")[i % 3],
                           i == exploring) for i in range(n))


def with_ann(store) -> None:
    with store.bulk_load() as writer:
        writer.write("shoppers", [Shopper("ann", "London")])


def impression(n: int, items, **fields) -> Impression:
    base = dict(shopper_id="ann", session_id=None, product_id=None, model="m1", ranker="lambdarank", variant=None,
                context={"k": len(items), "explore": True, "items": [], "explore_slots": 1})
    return Impression(f"{n:032x}", "feed", 1_000.0 + n, tuple(items), **{**base, **fields})


def test_lists_come_back_as_they_were_kept(tmp_path):
    store = SQLiteGraphStore(tmp_path / "graph.db")
    with_ann(store)
    kept = [impression(1, shown(20, exploring=19)),
            impression(2, shown(3, 7), model=None, ranker=None, variant="exp/b", session_id="s1"),
            impression(3, (), context={"k": 0}),
            Impression("not-hex-r4", "complete_the_look", 1_004.0, shown(2), None, "s9", "p00001", "m1", "hand-set",
                       None, {"k": 2, "items": ["p00002"]})]
    assert store.append_impressions(kept) == 4
    assert store.append_impressions(kept[:1]) == 0  # the same recommendation id is kept once
    assert store.impressions(limit=None) == kept
    assert store.impressions(experiment="exp", limit=None) == [kept[1]]
    assert store.shopper_history("ann", 10, 2)[2] == kept[1:3]


def test_codes_given_by_one_worker_are_read_by_another(tmp_path):
    one, other = SQLiteGraphStore(tmp_path / "graph.db"), SQLiteGraphStore(tmp_path / "graph.db")
    with_ann(one)
    one.append_impressions([impression(1, shown(5))])
    assert other.impressions(limit=None)[0].items == shown(5)  # codes `other` never gave
    other.append_impressions([impression(2, shown(5, 3))])  # p00003..p00007: two codes new to `one`
    one.append_impressions([impression(3, shown(4, 6))])
    assert [i.items for i in one.impressions(limit=None)] == [shown(5), shown(5, 3), shown(4, 6)]
    assert [i.items for i in other.impressions(limit=None)] == [shown(5), shown(5, 3), shown(4, 6)]


def test_a_list_of_twenty_takes_a_few_hundred_bytes(tmp_path):
    store = SQLiteGraphStore(tmp_path / "graph.db")
    with_ann(store)
    store.append_impressions([impression(n, shown(20, n % 50)) for n in range(2_000)])
    with sqlite3.connect(tmp_path / "graph.db") as conn:
        row = conn.execute("SELECT sum(length(id) + length(products) + length(slots)) FROM impression").fetchone()
    assert row[0] / 2_000 == 16 + 40 + 20  # id, 20 products of 2 bytes, 20 slots of 1
    store.append_impressions([impression(n, shown(3), context={"k": 3, "items": [f"p{n:05d}"]})
                              for n in range(2_000, 2_100)])  # product pages' chosen items: kept in the row
    with sqlite3.connect(tmp_path / "graph.db") as conn:
        assert conn.execute("SELECT count(*) FROM impression_term").fetchone()[0] < 10
    assert store.impressions(limit=None)[-1].context == {"k": 3, "items": ["p02099"]}


# The version 3 layouts, as they were written: first keyed by id WITHOUT ROWID, then a rowid table.
VERSION_3_IMPRESSIONS = {
    "keyed by id": "CREATE TABLE impression (id TEXT PRIMARY KEY, list TEXT NOT NULL, at REAL NOT NULL,"
                   " shopper_id TEXT, session_id TEXT, product_id TEXT, model TEXT, ranker TEXT, variant TEXT,"
                   " context TEXT NOT NULL, items TEXT NOT NULL) WITHOUT ROWID",
    "rowid": "CREATE TABLE impression (id TEXT NOT NULL UNIQUE, list TEXT NOT NULL, at REAL NOT NULL,"
             " shopper_id TEXT, session_id TEXT, product_id TEXT, model TEXT, ranker TEXT, variant TEXT,"
             " context TEXT NOT NULL, items TEXT NOT NULL)",
}


@pytest.mark.parametrize("layout", list(VERSION_3_IMPRESSIONS))
def test_a_store_that_kept_lists_as_json_is_brought_to_codes(tmp_path, layout):
    path = tmp_path / "graph.db"
    store = SQLiteGraphStore(path)
    with_ann(store)
    store.close()
    kept = [impression(1, shown(20, exploring=2)), impression(2, shown(4), variant="exp/a", model=None)]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE impression")
        conn.execute(VERSION_3_IMPRESSIONS[layout])
        conn.execute("CREATE INDEX impression_shopper ON impression(shopper_id, at)")
        conn.execute("CREATE INDEX impression_variant ON impression(variant, at)")
        conn.executemany("INSERT INTO impression VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [(i.id, i.list, i.at, i.shopper_id, i.session_id, i.product_id, i.model, i.ranker, i.variant,
                           json.dumps(i.context), impression_items_json(i.items)) for i in kept])
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    reopened = SQLiteGraphStore(path)
    assert reopened.impressions(limit=None) == kept
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'impression_json'").fetchall()
