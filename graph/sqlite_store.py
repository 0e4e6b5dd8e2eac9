"""The embedded store: one SQLite database file in WAL mode.

Why SQLite: it ships with Python (zero configuration), its WAL journal lets any number of
readers run while one writer appends, and a committed transaction survives `kill -9`
(and power loss with `synchronous=FULL`). Graph traversals the engine runs often are answered
from an in-memory index built from these tables (`graph/memory_traversal.py`). The tables
and their migrations are in `sqlite_schema.py`, the writes inside a transaction in
`sqlite_writes.py`.

Nodes are tables, relationships are foreign keys or link tables; `_NEIGHBOURS` maps every
relationship of the model to the SQL that walks it, so `neighbours()` covers the whole model.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .crowd import co_engagement
from .memory_traversal import MemoryTraversal
from .model import (
    Attribute,
    Category,
    Event,
    GraphStats,
    Look,
    Neighbour,
    Product,
    Rule,
    SavedLook,
    Shopper,
)
from .store import AlreadyExists, GraphStore, UnknownNode, erasure_key, experiment_json, experiment_of_json
from .sqlite_impressions import COLUMNS as IMPRESSION_CODED, ImpressionCodec
from .sqlite_schema import DEFERRABLE_INDEXES, ensure
from .sqlite_writes import ENGAGEMENTS, Writer, record_changes, replace_bought_with, replace_goes_with

_TABLE_OF_KIND = {
    "categories": "category",
    "products": "product",
    "shoppers": "shopper",
    "looks": "look",
    "sessions": "session",
}
_LABEL_OF_KIND = {"products": "Product", "looks": "Look"}

# (label, relationship) -> [(direction, far label, SQL selecting (far id, props json))]
_NEIGHBOURS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("Shopper", "HAD_SESSION"): [
        ("out", "Session", "SELECT id, json_object('started_at', started_at) FROM session WHERE shopper_id = ?"),
    ],
    ("Shopper", "SAVED"): [
        ("out", "Look", "SELECT look_id, json_object('ts', ts) FROM saved_look WHERE shopper_id = ?"),
    ],
    ("Session", "HAD_SESSION"): [
        ("in", "Shopper", "SELECT shopper_id, '{}' FROM session WHERE id = ? AND shopper_id IS NOT NULL"),
    ],
    ("Session", "INTERACTED"): [
        ("out", "Product", "SELECT product_id, json_object('event_id', id, 'type', type, 'ts', ts) FROM event WHERE session_id = ? ORDER BY ts"),
    ],
    ("Session", "FOUND_IN"): [
        ("in", "Look", "SELECT id, '{}' FROM look WHERE session_id = ?"),
    ],
    ("Product", "INTERACTED"): [
        ("in", "Session", "SELECT session_id, json_object('event_id', id, 'type', type, 'ts', ts) FROM event WHERE product_id = ? ORDER BY ts"),
    ],
    ("Product", "IN_CATEGORY"): [
        ("out", "Category", "SELECT category_id, '{}' FROM product WHERE id = ? AND category_id IS NOT NULL"),
    ],
    ("Product", "HAS_ATTRIBUTE"): [
        ("out", "Attribute", "SELECT attribute_key, '{}' FROM product_attribute WHERE product_id = ?"),
    ],
    ("Product", "BOUGHT_WITH"): [
        ("out", "Product", "SELECT other_id, json_object('sessions', sessions, 'lift', lift, 'updated_at', updated_at)"
                           " FROM bought_with WHERE product_id = ? ORDER BY sessions DESC, other_id"),
        ("in", "Product", "SELECT product_id, json_object('sessions', sessions, 'lift', lift, 'updated_at', updated_at)"
                          " FROM bought_with WHERE other_id = ? ORDER BY sessions DESC, product_id"),
    ],
    ("Product", "INCLUDES"): [
        ("in", "Look", "SELECT look_id, json_object('position', position) FROM look_item WHERE product_id = ?"),
    ],
    ("Category", "IN_CATEGORY"): [
        ("in", "Product", "SELECT id, '{}' FROM product WHERE category_id = ?"),
    ],
    ("Category", "GOES_WITH"): [
        ("out", "Category", "SELECT other_id, json_object('looks', looks, 'lift', lift, 'updated_at', updated_at)"
                            " FROM goes_with WHERE category_id = ? ORDER BY looks DESC, other_id"),
        ("in", "Category", "SELECT category_id, json_object('looks', looks, 'lift', lift, 'updated_at', updated_at)"
                           " FROM goes_with WHERE other_id = ? ORDER BY looks DESC, category_id"),
    ],
    ("Category", "CHILD_OF"): [
        ("out", "Category", "SELECT parent_id, '{}' FROM category WHERE id = ? AND parent_id IS NOT NULL"),
        ("in", "Category", "SELECT id, '{}' FROM category WHERE parent_id = ?"),
    ],
    ("Attribute", "HAS_ATTRIBUTE"): [
        ("in", "Product", "SELECT product_id, '{}' FROM product_attribute WHERE attribute_key = ?"),
    ],
    ("Look", "INCLUDES"): [
        ("out", "Product", "SELECT product_id, json_object('position', position) FROM look_item WHERE look_id = ? ORDER BY position"),
    ],
    ("Look", "FOUND_IN"): [
        ("out", "Session", "SELECT session_id, '{}' FROM look WHERE id = ? AND session_id IS NOT NULL"),
    ],
    ("Look", "SAVED"): [
        ("in", "Shopper", "SELECT shopper_id, json_object('ts', ts) FROM saved_look WHERE look_id = ?"),
    ],
}

_EVENT_SELECT = (
    "SELECT e.id, e.session_id, e.product_id, e.type, e.ts, s.shopper_id, e.location, e.gift"
    " FROM event e JOIN session s ON s.id = e.session_id"
)


def _event(row) -> Event:
    return Event(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]))


class SQLiteGraphStore(GraphStore):
    name = "embedded"
    atomic_loads = True

    def __init__(self, path: str | Path, synchronous: str = "FULL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        self._impressions = ImpressionCodec()
        self.ensure_schema()

    # -- connections: one per thread; one writer at a time ----------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self._close_orphans()
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # deleted rows are zeroed, not left in free pages
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append((threading.current_thread(), conn))
        return conn

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended: a server's thread pool keeps its
        threads, but a client that starts a thread per request (a test client without its
        context) would otherwise leave a connection, and three open files, behind each."""
        with self._connections_lock:
            ended = [(thread, conn) for thread, conn in self._connections if not thread.is_alive()]
            self._connections = [(thread, conn) for thread, conn in self._connections if thread.is_alive()]
        for _, conn in ended:
            conn.close()

    @contextmanager
    def _transaction(self, check_references: bool = True):
        """The one place write transactions begin, commit and roll back."""
        with self._write_lock:
            conn = self._conn()
            if not check_references:
                conn.execute("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction: set first
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            finally:
                if not check_references:
                    conn.execute("PRAGMA foreign_keys=ON")

    def ensure_schema(self) -> None:
        with self._transaction() as conn:
            ensure(conn, self.path)

    def close(self) -> None:
        with self._connections_lock:
            for _, conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- writes ------------------------------------------------------------------------
    @contextmanager
    def bulk_load(self):
        # The load pipeline has checked every reference of the input against the store and
        # itself; per-row foreign-key lookups would repeat that work a million times.
        with self._transaction(check_references=False) as conn:
            # Into an empty store, building the big secondary indexes once at the end (a sort)
            # is cheaper than updating them row by row. DDL is transactional in SQLite, so a
            # failed load rolls the dropped indexes back too.
            deferred = [] if conn.execute("SELECT 1 FROM event LIMIT 1").fetchone() else DEFERRABLE_INDEXES
            for name, _ in deferred:
                conn.execute(f"DROP INDEX {name}")
            writer = Writer(conn, bulk=True)
            yield writer
            for _, ddl in deferred:
                conn.execute(ddl)
            if writer.wrote_events:  # served counted whole, in the load's own transaction
                replace_bought_with(conn, co_engagement(conn.execute(ENGAGEMENTS)), time.time())
            if writer.wrote_looks:
                replace_goes_with(conn)

    def append_events(self, events: Sequence[Event]) -> int:
        with self._transaction() as conn:
            return Writer(conn).write("events", events)

    def replace_mined_looks(self, looks: Sequence[Look]) -> int:
        with self._transaction() as conn:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS keep_look (id TEXT PRIMARY KEY)")
            conn.execute("DELETE FROM keep_look")
            conn.executemany("INSERT OR IGNORE INTO keep_look VALUES (?)", [(lk.id,) for lk in looks])
            deleted = conn.execute("DELETE FROM look WHERE mined = 1 AND id NOT IN (SELECT id FROM keep_look)").rowcount
            Writer(conn).write("looks", looks)
            if not looks:  # only deletions: the writer saw no looks to follow
                replace_goes_with(conn)
            record_changes(conn, "look", ["*"])  # looks went away: every process re-reads them all
            return deleted

    def delete_shopper(self, shopper_id: str) -> dict[str, int]:
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM shopper WHERE id = ?", (shopper_id,)).fetchone() is None:
                raise UnknownNode("Shopper", shopper_id)
            sessions = "SELECT id FROM session WHERE shopper_id = ?"
            conn.execute(f"DELETE FROM attribution WHERE event_id IN (SELECT id FROM event WHERE session_id IN ({sessions}))",
                         (shopper_id,))
            removed = {
                "events": conn.execute(
                    f"DELETE FROM event WHERE session_id IN ({sessions})", (shopper_id,)
                ).rowcount,
                "saved_looks": conn.execute(
                    "DELETE FROM saved_look WHERE shopper_id = ?", (shopper_id,)
                ).rowcount,
            }
            # Curated looks stay; only their link to this shopper's session is personal.
            conn.execute(f"UPDATE look SET session_id = NULL WHERE session_id IN ({sessions})", (shopper_id,))
            removed["embeddings"] = conn.execute(
                "DELETE FROM node_embedding WHERE (label = 'Shopper' AND node_id = ?)"
                f" OR (label = 'Session' AND node_id IN ({sessions}))",
                (shopper_id, shopper_id),
            ).rowcount
            removed["impressions"] = conn.execute(
                f"DELETE FROM impression WHERE shopper_id = ? OR session_id IN ({sessions})", (shopper_id, shopper_id)
            ).rowcount
            removed["contacts"] = conn.execute("DELETE FROM contact WHERE shopper_id = ?", (shopper_id,)).rowcount
            removed["rules"] = conn.execute("DELETE FROM rule WHERE shopper_id = ?", (shopper_id,)).rowcount
            removed["sessions"] = conn.execute(
                "DELETE FROM session WHERE shopper_id = ?", (shopper_id,)
            ).rowcount
            removed["shoppers"] = conn.execute("DELETE FROM shopper WHERE id = ?", (shopper_id,)).rowcount
            record_changes(conn, "shopper", [erasure_key(shopper_id)])
        self._checkpoint()
        return removed

    def _checkpoint(self, tries: int = 50) -> None:
        """Copy the write-ahead log into the database file and empty it: after an erasure the
        log's older copies of the erased pages are gone too (`secure_delete` has zeroed them in
        the file). A reader in the middle of a read can hold the log; it is retried briefly."""
        for _ in range(tries):
            with self._write_lock:
                busy, _, _ = self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.path}: the write-ahead log stayed in use; the erased rows are deleted but "
                           "their older copies stay in the log until its next checkpoint")

    def write_embeddings(self, label, ids, vectors, model) -> None:
        rows = ((label, node_id, model, np.asarray(v, dtype=np.float32).tobytes()) for node_id, v in zip(ids, vectors))
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO node_embedding (label, node_id, model, vector) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(label, node_id) DO UPDATE SET model = excluded.model, vector = excluded.vector",
                rows,
            )

    def read_embeddings(self, label, ids) -> dict[str, tuple[list[float], str]]:
        out = {}
        conn = self._conn()
        ids = list(ids)
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for node_id, model, blob in conn.execute(
                f"SELECT node_id, model, vector FROM node_embedding WHERE label = ? AND node_id IN ({marks})",
                [label, *chunk],
            ):
                out[node_id] = (np.frombuffer(blob, dtype=np.float32).tolist(), model)
        return out

    def claim_contact(self, shopper_id, channel, now, since, decide) -> tuple:
        with self._transaction() as conn:  # BEGIN IMMEDIATE: one claim at a time, across processes too
            if conn.execute("SELECT 1 FROM shopper WHERE id = ?", (shopper_id,)).fetchone() is None:
                raise UnknownNode("Shopper", shopper_id)
            times = [t for (t,) in conn.execute(
                "SELECT ts FROM contact WHERE shopper_id = ? AND ts >= ? ORDER BY ts", (shopper_id, since))]
            decision = decide(times)
            if decision[0]:
                conn.execute("INSERT INTO contact (shopper_id, channel, ts) VALUES (?, ?, ?)", (shopper_id, channel, now))
            return decision

    def create(self, kind: str, record) -> None:
        table = _TABLE_OF_KIND[kind]
        with self._transaction() as conn:
            if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (record.id,)).fetchone() is not None:
                raise AlreadyExists(_LABEL_OF_KIND[kind], record.id)
            Writer(conn).write(kind, [record])

    def contacts(self, shopper_id, since) -> list[tuple[str, float]]:
        return self._conn().execute(
            "SELECT channel, ts FROM contact WHERE shopper_id = ? AND ts >= ? ORDER BY ts", (shopper_id, since)
        ).fetchall()

    # -- the console's sign-in sessions ------------------------------------------------------
    def open_console_session(self, token_hash, key_fingerprint, csrf, expires_at, now) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM console_session WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO console_session VALUES (?, ?, ?, ?)", (token_hash, key_fingerprint, csrf, expires_at))

    def console_session(self, token_hash, now) -> tuple[str, str] | None:
        return self._conn().execute("SELECT key_fingerprint, csrf FROM console_session WHERE token_hash = ?"
                                    " AND expires_at > ?", (token_hash, now)).fetchone()

    def close_console_session(self, token_hash) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM console_session WHERE token_hash = ?", (token_hash,))

    # -- reads -------------------------------------------------------------------------
    def changes_since(self, seq: int, limit: int = 1_000) -> list[tuple[int, str, str]]:
        return self._conn().execute("SELECT seq, kind, key FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def latest_change(self) -> int:
        return self._conn().execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0]

    def append_impressions(self, impressions) -> int:
        if not impressions:
            return 0
        with self._transaction() as conn:
            shoppers = list({i.shopper_id for i in impressions})
            known = {row[0] for row in conn.execute(
                f"SELECT id FROM shopper WHERE id IN ({', '.join('?' * len(shoppers))})", shoppers)}
            rows, new = self._impressions.rows(conn, impressions, known)
            written = conn.executemany(
                f"INSERT OR IGNORE INTO impression ({IMPRESSION_CODED}) VALUES ({', '.join('?' * 13)})", rows).rowcount
        self._impressions.learn(new)
        return written

    def impressions(self, shopper_id=None, since=None, until=None, limit=1_000, experiment=None) -> list:
        where, params = ["at >= ?", "at < ?"], [since if since is not None else -1e18, until if until is not None else 1e18]
        if shopper_id is not None:
            where.append("shopper_id = ?")
            params.append(shopper_id)
        if experiment is not None:  # its variants are named "<experiment>/<variant>": a range of the index
            where.append("variant >= ? AND variant < ?")
            params.extend((f"{experiment}/", f"{experiment}0"))  # "0" is the character after "/"
        conn = self._conn()
        rows = conn.execute(f"SELECT {IMPRESSION_CODED} FROM impression WHERE {' AND '.join(where)}"
                            " ORDER BY at, id LIMIT ?", (*params, -1 if limit is None else limit)).fetchall()
        return self._impressions.impressions(conn, rows)

    def shopper_history(self, shopper_id: str, events: int, lists: int):
        shopper = self.get("shoppers", shopper_id)
        conn = self._conn()
        rows = conn.execute(f"SELECT {IMPRESSION_CODED} FROM impression WHERE shopper_id = ?"
                            " ORDER BY at DESC, id DESC LIMIT ?", (shopper_id, lists)).fetchall()
        return shopper, self.events(shopper_id=shopper_id, limit=events), self._impressions.impressions(conn, rows[::-1])

    def delete_impressions_before(self, before: float) -> int:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM impression WHERE at < ?", (before,)).rowcount

    def record_attributions(self, pairs) -> int:
        with self._transaction() as conn:
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO attribution (event_id, recommendation_id)"
                             " SELECT ?, ? WHERE EXISTS (SELECT 1 FROM event WHERE id = ?)",
                             [(event_id, rid, event_id) for event_id, rid in pairs])
            return conn.total_changes - before

    def outcomes_between(self, since: float, until: float) -> list:
        rows = self._conn().execute(
            "SELECT e.id, e.session_id, e.product_id, e.type, e.ts, s.shopper_id, e.location, e.gift, a.recommendation_id"
            " FROM event e JOIN session s ON s.id = e.session_id LEFT JOIN attribution a ON a.event_id = e.id"
            " WHERE e.ts >= ? AND e.ts < ? AND e.type != 'dismiss' ORDER BY e.ts, e.id", (since, until))
        return [(_event(row), row[8]) for row in rows]

    def engagements(self) -> Iterator[tuple[str, str, float]]:
        yield from self._conn().execute(ENGAGEMENTS)

    def replace_bought_with(self, rows, state: dict) -> None:
        with self._transaction() as conn:
            replace_bought_with(conn, rows, state["at"], state)

    def claim_crowd_refresh(self, now: float, seconds: float) -> bool:
        with self._transaction() as conn:  # BEGIN IMMEDIATE: one claimant at a time
            held = conn.execute("SELECT value FROM meta WHERE key = 'crowd_lease'").fetchone()
            if held is not None and float(held[0]) >= now:
                return False
            conn.execute("INSERT INTO meta (key, value) VALUES ('crowd_lease', ?)"
                         " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(now + seconds),))
            return True

    def release_crowd_refresh(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = 'crowd_lease'")

    def bought_with_state(self) -> dict | None:
        found = self._conn().execute("SELECT value FROM meta WHERE key = 'bought_with'").fetchone()
        return json.loads(found[0]) if found else None

    def iter_bought_with(self) -> Iterator[tuple[str, str, int, float]]:
        yield from self._conn().execute(
            "SELECT product_id, other_id, sessions, lift FROM bought_with ORDER BY product_id, sessions DESC, other_id")

    def iter_goes_with(self) -> Iterator[tuple[str, str, int, float]]:
        yield from self._conn().execute(
            "SELECT category_id, other_id, looks, lift FROM goes_with ORDER BY category_id, looks DESC, other_id")

    def events_watermark(self) -> int:
        # The newest event's row (an erasure is in the change log besides).
        return self._conn().execute("SELECT coalesce(max(rowid), 0) FROM event").fetchone()[0]

    def carts_and_purchases(self, days: float) -> list[tuple[str, int, float, str | None]]:
        """The crowd's carts and purchases of the last `days` before the newest one, as
        (product, weight: cart 2, purchase 3, time, location): what trending counts."""
        return self._conn().execute(
            "SELECT product_id, CASE type WHEN 'purchase' THEN 3 ELSE 2 END, ts, location FROM event"
            " WHERE type IN ('cart', 'purchase')"
            " AND ts >= (SELECT max(ts) FROM event WHERE type IN ('cart', 'purchase')) - ?", (days * 86_400,)).fetchall()

    def purchase_times(self) -> dict[tuple[str, str], list[float]]:
        """Each shopper's purchase times per product: what the repurchase statistics count."""
        times: dict[tuple[str, str], list[float]] = {}
        for shopper, product, ts in self._conn().execute(
                "SELECT s.shopper_id, e.product_id, e.ts FROM event e JOIN session s ON s.id = e.session_id"
                " WHERE e.type = 'purchase' AND s.shopper_id IS NOT NULL"):
            times.setdefault((shopper, product), []).append(ts)
        return times

    def traversal(self, vectors=None) -> MemoryTraversal:
        """The engine's walks over an index in memory, streamed from this store's tables."""
        return MemoryTraversal.build(self, vectors)

    def known_ids(self, kind: str) -> set[str]:
        table = _TABLE_OF_KIND[kind]
        return {row[0] for row in self._conn().execute(f"SELECT id FROM {table}")}

    def session_owners(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        ids = list(session_ids)
        owners: dict[str, str | None] = {}
        conn = self._conn()
        for start in range(0, len(ids), 900):  # SQLite caps bound parameters per statement
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            owners.update(conn.execute(f"SELECT id, shopper_id FROM session WHERE id IN ({marks})", chunk))
        return owners

    def iter_records(self, kind: str, batch_size: int = 10_000) -> Iterator:
        conn = self._conn()
        if kind == "products":
            yield from self._iter_products(conn, batch_size)
            return
        if kind == "looks":
            yield from self._iter_looks(conn)
            return
        query, make = {
            "categories": ("SELECT id, name, parent_id FROM category ORDER BY id", lambda r: Category(*r)),
            "shoppers": ("SELECT id, home_location FROM shopper ORDER BY id", lambda r: Shopper(*r)),
            "events": (f"{_EVENT_SELECT} ORDER BY e.ts, e.id", _event),
            "saved_looks": (
                "SELECT shopper_id, look_id, ts FROM saved_look ORDER BY shopper_id, look_id",
                lambda r: SavedLook(*r),
            ),
        }[kind]
        cursor = conn.execute(query)
        while rows := cursor.fetchmany(batch_size):
            yield from map(make, rows)

    def _iter_products(self, conn, batch_size):
        cursor = conn.execute("SELECT id, name, category_id, price, availability, unavailable_in FROM product ORDER BY id")
        while rows := cursor.fetchmany(batch_size):
            attributes: dict[str, list[Attribute]] = {}
            for start in range(0, len(rows), 900):
                chunk = [r[0] for r in rows[start : start + 900]]
                marks = ",".join("?" * len(chunk))
                for pid, kind, value in conn.execute(
                    "SELECT pa.product_id, a.kind, a.value FROM product_attribute pa"
                    f" JOIN attribute a ON a.key = pa.attribute_key WHERE pa.product_id IN ({marks})"
                    " ORDER BY a.kind, a.value",
                    chunk,
                ):
                    attributes.setdefault(pid, []).append(Attribute(kind, value))
            for row in rows:
                yield _product(row, tuple(attributes.get(row[0], ())))

    def _iter_looks(self, conn):
        current, items = None, []
        for *look, product_id in conn.execute(
            "SELECT l.id, l.name, l.session_id, l.mined, l.support, l.lift, li.product_id FROM look l"
            " JOIN look_item li ON li.look_id = l.id ORDER BY l.id, li.position"
        ):
            if current is not None and current[0] != look[0]:
                yield _look(current, items)
                items = []
            current = look
            items.append(product_id)
        if current is not None:
            yield _look(current, items)

    def get(self, kind: str, node_id: str):
        conn = self._conn()
        label = {"products": "Product", "looks": "Look", "shoppers": "Shopper", "categories": "Category"}[kind]
        if kind == "products":
            row = conn.execute("SELECT id, name, category_id, price, availability, unavailable_in FROM product"
                               " WHERE id = ?", (node_id,)).fetchone()
            if row is None:
                raise UnknownNode(label, node_id)
            attrs = conn.execute(
                "SELECT a.kind, a.value FROM product_attribute pa JOIN attribute a ON a.key = pa.attribute_key"
                " WHERE pa.product_id = ? ORDER BY a.kind, a.value",
                (node_id,),
            ).fetchall()
            return _product(row, tuple(Attribute(k, v) for k, v in attrs))
        if kind == "looks":
            row = conn.execute("SELECT id, name, session_id, mined, support, lift FROM look WHERE id = ?",
                               (node_id,)).fetchone()
            if row is None:
                raise UnknownNode(label, node_id)
            items = [r[0] for r in conn.execute(
                "SELECT product_id FROM look_item WHERE look_id = ? ORDER BY position", (node_id,)
            )]
            return _look(row, items)
        query = {
            "shoppers": ("SELECT id, home_location FROM shopper WHERE id = ?", Shopper),
            "categories": ("SELECT id, name, parent_id FROM category WHERE id = ?", Category),
        }[kind]
        row = conn.execute(query[0], (node_id,)).fetchone()
        if row is None:
            raise UnknownNode(label, node_id)
        return query[1](*row)

    def events(self, *, shopper_id=None, session_id=None, since=None, limit=None) -> list[Event]:
        if (shopper_id is None) == (session_id is None):
            raise ValueError("give exactly one of shopper_id, session_id")
        column, value = ("s.shopper_id", shopper_id) if shopper_id is not None else ("e.session_id", session_id)
        since = since if since is not None else float("-inf")
        # Newest first so that `limit` keeps the latest events; returned oldest first.
        query = f"{_EVENT_SELECT} WHERE {column} = ? AND e.ts >= ? ORDER BY e.ts DESC, e.id DESC LIMIT ?"
        rows = self._conn().execute(query, (value, since, -1 if limit is None else limit)).fetchall()
        return [_event(row) for row in reversed(rows)]

    def unavailable_products(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        rows = self._conn().execute("SELECT id, availability, unavailable_in FROM product"
                                    " WHERE availability != 'in_stock' OR unavailable_in IS NOT NULL")
        return {pid: (availability, tuple(json.loads(where)) if where else ()) for pid, availability, where in rows}

    def set_availability(self, product_id, availability, unavailable_in) -> None:
        with self._transaction() as conn:
            if not conn.execute("UPDATE product SET availability = ?, unavailable_in = ? WHERE id = ?",
                                (availability, json.dumps(list(unavailable_in)) if unavailable_in else None,
                                 product_id)).rowcount:
                raise UnknownNode("Product", product_id)
            record_changes(conn, "availability", [product_id])

    def products_matching(self, categories, attribute, price_min, price_max) -> set[str]:
        clauses, params = [], []
        if categories is not None:
            clauses.append(f"p.category_id IN ({','.join('?' * len(categories))})")
            params += list(categories)
        if attribute is not None:
            clauses.append("EXISTS (SELECT 1 FROM product_attribute pa WHERE pa.product_id = p.id AND pa.attribute_key = ?)")
            params.append(attribute)
        if price_min is not None:
            clauses.append("p.price >= ?")
            params.append(price_min)
        if price_max is not None:
            clauses.append("p.price <= ?")
            params.append(price_max)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return {r[0] for r in self._conn().execute(f"SELECT p.id FROM product p{where}", params)}

    def exploration_state(self) -> dict | None:
        found = self._conn().execute("SELECT value FROM meta WHERE key = 'exploration'").fetchone()
        return json.loads(found[0]) if found else None

    def save_exploration_state(self, state: dict, expected: float | None) -> bool:
        with self._transaction() as conn:  # BEGIN IMMEDIATE: read and written by one process at a time
            found = conn.execute("SELECT value FROM meta WHERE key = 'exploration'").fetchone()
            if (json.loads(found[0])["through"] if found else None) != expected:
                return False
            conn.execute("INSERT INTO meta (key, value) VALUES ('exploration', ?)"
                         " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(state),))
            return True

    def experiments(self) -> list:
        return [experiment_of_json(spec) for (spec,) in self._conn().execute("SELECT spec FROM experiment ORDER BY id")]

    def create_experiment(self, experiment) -> None:
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM experiment WHERE id = ?", (experiment.id,)).fetchone():
                raise AlreadyExists("Experiment", experiment.id)
            conn.execute("INSERT INTO experiment (id, spec) VALUES (?, ?)", (experiment.id, experiment_json(experiment)))
            record_changes(conn, "experiment", [experiment.id])

    def end_experiment(self, experiment_id: str, at: float):
        with self._transaction() as conn:
            found = conn.execute("SELECT spec FROM experiment WHERE id = ?", (experiment_id,)).fetchone()
            if found is None:
                raise UnknownNode("Experiment", experiment_id)
            experiment = experiment_of_json(found[0])
            if experiment.ends_at is None or experiment.ends_at > at:
                experiment = dataclasses.replace(experiment, ends_at=at)
                conn.execute("UPDATE experiment SET spec = ? WHERE id = ?", (experiment_json(experiment), experiment_id))
                record_changes(conn, "experiment", [experiment_id])
            return experiment

    def rules(self, ids=None) -> list[Rule]:
        if ids is None:
            rows = self._conn().execute("SELECT spec FROM rule ORDER BY id")
        else:
            rows = self._conn().execute("SELECT spec FROM rule WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                                        (json.dumps(list(ids)),))
        return [Rule(**json.loads(spec)) for (spec,) in rows]

    def create_rule(self, rule: Rule, replace: bool = False) -> None:
        with self._transaction() as conn:
            if replace:
                conn.execute("DELETE FROM rule WHERE id = ?", (rule.id,))
            elif conn.execute("SELECT 1 FROM rule WHERE id = ?", (rule.id,)).fetchone():
                raise AlreadyExists("Rule", rule.id)
            for label, table, node_id in (("Shopper", "shopper", rule.shopper_id), ("Look", "look", rule.look_id)):
                if node_id is not None and not conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (node_id,)).fetchone():
                    raise UnknownNode(label, node_id)
            spec = {name: getattr(rule, name) for name in Rule.__dataclass_fields__}
            conn.execute("INSERT INTO rule (id, spec, shopper_id, look_id) VALUES (?, ?, ?, ?)",
                         (rule.id, json.dumps(spec), rule.shopper_id, rule.look_id))
            record_changes(conn, "rule", [rule.id])

    def replace_rule(self, rule: Rule) -> None:
        self.create_rule(rule, replace=True)

    def delete_rule(self, rule_id: str) -> None:
        with self._transaction() as conn:
            if not conn.execute("DELETE FROM rule WHERE id = ?", (rule_id,)).rowcount:
                raise UnknownNode("Rule", rule_id)
            record_changes(conn, "rule", [rule_id])

    def look_ids(self, product_id=None, limit=50, offset=0) -> list[str]:
        if product_id is None:
            rows = self._conn().execute("SELECT id FROM look ORDER BY id LIMIT ? OFFSET ?", (limit, offset))
        else:
            rows = self._conn().execute("SELECT DISTINCT look_id FROM look_item WHERE product_id = ?"
                                        " ORDER BY look_id LIMIT ? OFFSET ?", (product_id, limit, offset))
        return [r[0] for r in rows]

    def stored_events(self, event_ids) -> dict[str, Event]:
        ids, found = list(event_ids), {}
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            for row in self._conn().execute(f"{_EVENT_SELECT} WHERE e.id IN ({','.join('?' * len(chunk))})", chunk):
                found[row[0]] = _event(row)
        return found

    def neighbours(self, label, node_id, rel=None, limit=1000) -> list[Neighbour]:
        found: list[Neighbour] = []
        conn = self._conn()
        for (node_label, rel_type), walks in _NEIGHBOURS.items():
            if node_label != label or (rel is not None and rel_type != rel):
                continue
            for direction, far_label, sql in walks:
                for far_id, props in conn.execute(f"{sql} LIMIT ?", (node_id, limit - len(found))):
                    found.append(Neighbour(rel_type, direction, far_label, far_id, json.loads(props)))
                if len(found) >= limit:
                    return found
        return found

    def stats(self, top: int = 10) -> GraphStats:
        conn = self._conn()
        count = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        nodes = {
            "Shopper": count("SELECT count(*) FROM shopper"),
            "Session": count("SELECT count(*) FROM session"),
            "Product": count("SELECT count(*) FROM product"),
            "Category": count("SELECT count(*) FROM category"),
            "Attribute": count("SELECT count(*) FROM attribute"),
            "Look": count("SELECT count(*) FROM look"),
        }
        relationships = {
            "HAD_SESSION": count("SELECT count(*) FROM session WHERE shopper_id IS NOT NULL"),
            "INTERACTED": count("SELECT count(*) FROM event"),
            "IN_CATEGORY": count("SELECT count(*) FROM product WHERE category_id IS NOT NULL"),
            "CHILD_OF": count("SELECT count(*) FROM category WHERE parent_id IS NOT NULL"),
            "HAS_ATTRIBUTE": count("SELECT count(*) FROM product_attribute"),
            "INCLUDES": count("SELECT count(*) FROM look_item"),
            "FOUND_IN": count("SELECT count(*) FROM look WHERE session_id IS NOT NULL"),
            "SAVED": count("SELECT count(*) FROM saved_look"),
            "BOUGHT_WITH": count("SELECT count(*) FROM bought_with"),
            "GOES_WITH": count("SELECT count(*) FROM goes_with"),
        }
        # Products per category including every descendant category.
        top_categories = conn.execute(
            """
            WITH RECURSIVE under(ancestor, id) AS (
                SELECT id, id FROM category
                UNION ALL
                SELECT under.ancestor, c.id FROM category c JOIN under ON c.parent_id = under.id
            )
            SELECT c.id, c.name, count(p.id) AS n
            FROM under JOIN category c ON c.id = under.ancestor
            JOIN product p ON p.category_id = under.id
            GROUP BY c.id ORDER BY n DESC, c.id LIMIT ?
            """,
            (top,),
        ).fetchall()
        return GraphStats(nodes, relationships, [tuple(r) for r in top_categories])


def _product(row, attributes: tuple) -> Product:
    pid, name, category_id, price, availability, unavailable_in = row
    return Product(pid, name, category_id, price, attributes, availability,
                   tuple(json.loads(unavailable_in)) if unavailable_in else ())


def _look(row, items: list[str]) -> Look:
    look_id, name, session_id, mined, support, lift = row
    return Look(look_id, name, tuple(items), session_id, bool(mined), support, lift)
