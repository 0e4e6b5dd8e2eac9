"""Loading: bad input is reported with file, line and field, and never half-written."""

from __future__ import annotations

import json
import shutil

import pytest

from lookgraph.graph.model import Event
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.loaders.native import NativeSource, NativeWriter, parse_timestamp
from lookgraph.loaders.pipeline import load
from lookgraph.loaders.source import FieldError, LoadError

HEADERS = {
    "categories": "id,name,parent_id",
    "products": "id,name,category_id,price,attributes",
    "events": "event_id,ts,session_id,product_id,type,shopper_id,location,gift",
    "looks": "id,name,product_ids,session_id",
}


def native(tmp_path, **files: str):
    """A native folder from literal CSV bodies (header added)."""
    folder = tmp_path / "in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lookgraph.json").write_text('{"format": "lookgraph-native", "version": 1}')
    for kind, body in files.items():
        (folder / f"{kind}.csv").write_text(HEADERS[kind] + "\n" + body, encoding="utf-8")
    return NativeSource(folder)


GOOD = dict(
    categories="tops,Tops,\n",
    products="p1,Tee,tops,10,style:casual\np2,Shirt,tops,,\n",
    events="e1,2026-05-01T10:00:00Z,s1,p1,view,u1,London,false\n",
)


def problems(source, store):
    with pytest.raises(LoadError) as caught:
        load(source, store)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    "files, expected",
    [
        (dict(GOOD, events="e1,2026-05-01T10:00:00Z,s1,p9,view,u1,,\n"), "events.csv:2: product_id: unknown product 'p9'"),
        (dict(GOOD, events="e1,yesterday,s1,p1,view,u1,,\n"), "events.csv:2: ts: not an ISO 8601 time or epoch seconds: 'yesterday'"),
        (dict(GOOD, events="e1,2026-05-01,s1,p1,stare,u1,,\n"), "events.csv:2: type: unknown event type 'stare'"),
        (dict(GOOD, events="e1,2026-05-01,,p1,view,u1,,\n"), "events.csv:2: session_id: required field is missing or empty"),
        (dict(GOOD, events="e1,2026-05-01,s1,p1,view\n"), "events.csv:2: 5 fields, the header has 8"),
        (dict(GOOD, events="e1,2026-05-01,s1,p1,view,u1,,maybe\n"), "events.csv:2: gift: expected true/false, got 'maybe'"),
        (dict(GOOD, products="p1,Tee,shoes,10,\n"), "products.csv:2: category_id: unknown category 'shoes'"),
        (dict(GOOD, products="p1,Tee,tops,-3,\n"), "products.csv:2: price: expected a non-negative number, got '-3'"),
        (dict(GOOD, products="p1,Tee,tops,10,stylecasual\n"), "products.csv:2: attributes: expected kind:value, got 'stylecasual'"),
        (dict(GOOD, products="p1,Tee,tops,,\np1,Tee again,tops,,\n"), "products.csv:3: id: duplicate id 'p1' in this input"),
        (dict(GOOD, looks="l1,Look,p1|p7,\n"), "looks.csv:2: product_ids: unknown product 'p7'"),
        (dict(GOOD, looks="l1,Look,p1|p1,\n"), "looks.csv:2: product_ids: a product appears twice in the look"),
        (dict(GOOD, categories="tops,Tops,wear\n"), "categories.csv:2: parent_id: unknown category 'wear'"),
        (dict(GOOD, categories="a,A,b\nb,B,a\ntops,Tops,\n"), "categories.csv:2: parent_id: category 'a' is its own ancestor"),
        (dict(GOOD, events="e1,2026-05-01,s1,p1,view,u1,,\ne2,2026-05-01,s1,p1,view,u2,,\n"),
         "events.csv:3: shopper_id: session 's1' belongs to 'u1'"),
        (dict(GOOD, events='e1,2026-05-01,s1,"p1,view\n'), "events.csv:2: malformed CSV"),
    ],
)
def test_bad_rows_are_reported_with_file_line_and_field(tmp_path, embedded, files, expected):
    found = problems(native(tmp_path, **files), embedded)
    assert any(expected in p for p in found), found


def test_a_header_without_a_required_column_is_reported(tmp_path, embedded):
    source = native(tmp_path, **GOOD)
    (source.folder / "looks.csv").write_text("id,name\nl1,Look\n")
    assert any("looks.csv:1: header lacks required column(s) product_ids" in p for p in problems(source, embedded))


def test_wrong_encoding_names_the_line(tmp_path, embedded):
    source = native(tmp_path, **GOOD)
    (source.folder / "products.csv").write_bytes(b"id,name,category_id,price,attributes\np1,Tee,tops,,\np2,Caf\xe9,tops,,\n")
    assert any("products.csv:3: not valid UTF-8 (byte 0xe9" in p for p in problems(source, embedded))


def test_every_problem_is_reported_and_nothing_is_written(tmp_path, embedded):
    body = "".join(f"e{i},2026-05-01,s{i},{'p1' if i % 2 else 'bad'},view,u{i},,\n" for i in range(20_000))
    with pytest.raises(LoadError) as caught:
        load(native(tmp_path, **dict(GOOD, events=body)), embedded, batch_size=100)
    assert caught.value.total == 10_000
    assert "and 9950 more" in str(caught.value)
    assert embedded.stats().nodes == dict.fromkeys(embedded.stats().nodes, 0)


def test_a_load_that_fails_while_writing_leaves_the_store_as_it_was(tmp_path, embedded, monkeypatch):
    load(native(tmp_path, **GOOD), embedded)
    before = embedded.stats()
    more = native(tmp_path / "2", categories="shoes,Shoes,\n", products="p3,Boot,shoes,,\n",
                  events="e2,2026-05-02,s2,p3,view,u2,,\ne3,2026-05-02,s2,p3,cart,u2,,\n")
    from lookgraph.graph import sqlite_writes

    original = sqlite_writes.Writer.write

    def crash_on_events(self, kind, records):
        if kind == "events":
            raise OSError("disk full")
        return original(self, kind, records)

    monkeypatch.setattr(sqlite_writes.Writer, "write", crash_on_events)
    with pytest.raises(OSError):
        load(more, embedded)
    assert embedded.stats() == before  # the categories and products of that load were rolled back too


def test_manifest_is_required_and_versioned(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    with pytest.raises(ValueError, match="lookgraph.json: missing"):
        NativeSource(folder)
    (folder / "lookgraph.json").write_text('{"format": "lookgraph-native", "version": 99}')
    with pytest.raises(ValueError, match="'version' is 99; this lookgraph reads version 1"):
        NativeSource(folder)


def test_csv_and_jsonl_load_to_the_same_graph(demo_folder, tmp_path):
    as_jsonl = tmp_path / "jsonl"
    source = NativeSource(demo_folder)
    writer = NativeWriter(as_jsonl, "jsonl")
    for kind in ("categories", "products", "shoppers", "events", "looks", "saved_looks"):
        writer.write(kind, (item[2] for item in source.records(kind)))
    a, b = SQLiteGraphStore(tmp_path / "a.db"), SQLiteGraphStore(tmp_path / "b.db")
    load(source, a)
    load(NativeSource(as_jsonl), b)
    assert a.stats() == b.stats()
    for kind in ("products", "looks", "events"):
        assert list(a.iter_records(kind)) == list(b.iter_records(kind))


def test_jsonl_rows_are_checked_too(tmp_path, embedded):
    folder = tmp_path / "j"
    NativeWriter(folder, "jsonl")
    (folder / "products.jsonl").write_text(
        json.dumps({"id": "p1", "name": "Tee", "attributes": {"colour": ["red", "blue"]}}) + "\n"
        + "not json\n" + json.dumps({"id": 5, "name": ["x"]}) + "\n"
    )
    found = problems(NativeSource(folder), embedded)
    assert any("products.jsonl:2: not valid JSON" in p for p in found)
    assert any("products.jsonl:3: name: expected text, got ['x']" in p for p in found)


def test_loading_an_extra_file_later_references_what_the_store_has(tmp_path, embedded):
    load(native(tmp_path, **GOOD), embedded)
    later = native(tmp_path / "later", events="e9,2026-06-01,s9,p2,purchase,u1,,\n")
    assert load(later, embedded).new_events == 1
    bad_owner = native(tmp_path / "again", events="e10,2026-06-01,s1,p2,view,u7,,\n")
    assert any("session 's1' already belongs to 'u1' in the store" in p for p in problems(bad_owner, embedded))


def test_timestamps_accept_iso_8601_and_epoch_seconds():
    assert parse_timestamp("2026-05-01T10:00:00Z") == parse_timestamp("2026-05-01T12:00:00+02:00") == 1777629600.0
    assert parse_timestamp("2026-05-01T10:00:00") == 1777629600.0  # no offset: UTC
    assert parse_timestamp("1777629600") == parse_timestamp(1777629600) == 1777629600.0
    for bad in ("", "-5", "1e30", "nan", "2026-13-01"):
        with pytest.raises(FieldError):
            parse_timestamp(bad)


def test_demo_folder_copies_load_identically(demo_folder, tmp_path, embedded):
    shutil.copytree(demo_folder, tmp_path / "copy")
    first = load(NativeSource(demo_folder), embedded)
    second = load(NativeSource(tmp_path / "copy"), embedded)
    assert first.new_events == first.rows["events"] and second.new_events == 0
    assert embedded.events(session_id=next(embedded.iter_records("events")).session_id)
    assert isinstance(next(embedded.iter_records("events")), Event)


def _indexes(store) -> set[str]:
    return {r[0] for r in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_first_load_rebuilds_the_deferred_indexes_whether_it_succeeds_or_fails(tmp_path, embedded, monkeypatch):
    expected = _indexes(embedded)
    assert {"event_session", "event_product", "product_attribute_by_key"} <= expected
    from lookgraph.graph import sqlite_writes

    original = sqlite_writes.Writer.write
    monkeypatch.setattr(sqlite_writes.Writer, "write", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        load(native(tmp_path, **GOOD), embedded)
    assert _indexes(embedded) == expected
    monkeypatch.setattr(sqlite_writes.Writer, "write", original)
    load(native(tmp_path, **GOOD), embedded)
    assert _indexes(embedded) == expected
    plan = embedded._conn().execute("EXPLAIN QUERY PLAN SELECT * FROM event WHERE product_id = 'p1'").fetchall()
    assert "event_product" in str(plan)
