"""Writes inside a transaction the embedded store opened: the rows of a load or an API write
(`Writer`), the change log every write adds to (`record_changes`), and the crowd's BOUGHT_WITH
and the looks' GOES_WITH recomputed (`graph/crowd.py` counts them)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import time
from collections.abc import Sequence

from .crowd import goes_with
from .model import Category, Event, Look, Product, SavedLook, Shopper
from .store import CHANGE_KIND, CHANGE_RETENTION_SECONDS, CHANGES_PER_WRITE, BulkWriter, SessionConflict


def record_changes(conn: sqlite3.Connection, kind: str, keys: Sequence[str]) -> None:
    """In the write's own transaction: one change per key, or one for all (`*`) past
    `CHANGES_PER_WRITE`; changes older than `CHANGE_RETENTION_SECONDS` are dropped."""
    now = time.time()
    keys = ["*"] if len(keys) > CHANGES_PER_WRITE else list(keys)
    conn.executemany("INSERT INTO change_log (kind, key, at) VALUES (?, ?, ?)", [(kind, key, now) for key in keys])
    conn.execute("DELETE FROM change_log WHERE at < ?", (now - CHANGE_RETENTION_SECONDS,))


ENGAGEMENTS = "SELECT session_id, product_id, ts FROM event WHERE type != 'dismiss'"


def replace_bought_with(conn: sqlite3.Connection, rows, at: float, state: dict | None = None) -> None:
    """Every BOUGHT_WITH row replaced, and what it was computed from (`graph/crowd.py`)."""
    rows = list(rows)
    if state is None:
        state = {"events": conn.execute("SELECT coalesce(max(rowid), 0) FROM event").fetchone()[0],
                 "changes": conn.execute("SELECT coalesce(max(seq), 0) FROM change_log").fetchone()[0], "at": at}
    conn.execute("DELETE FROM bought_with")
    # The companion index built once after the rows (a sort) rather than row by row: 3 s, not 6, at 1M events.
    conn.execute("DROP INDEX IF EXISTS bought_with_other")
    conn.executemany("INSERT INTO bought_with VALUES (?, ?, ?, ?, ?)", [(*row, at) for row in rows])
    conn.execute("CREATE INDEX bought_with_other ON bought_with(other_id)")
    conn.execute("INSERT INTO meta (key, value) VALUES ('bought_with', ?)"
                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (json.dumps(state),))


def replace_goes_with(conn: sqlite3.Connection) -> None:
    """Every GOES_WITH row recomputed from the looks as stored now (`graph/crowd.py`)."""
    items = conn.execute("SELECT li.look_id, p.category_id FROM look_item li JOIN product p ON p.id = li.product_id"
                         " ORDER BY li.look_id")
    looks = ([category for _, category in rows] for _, rows in itertools.groupby(items, key=lambda row: row[0]))
    at = time.time()
    conn.execute("DELETE FROM goes_with")
    conn.executemany("INSERT INTO goes_with VALUES (?, ?, ?, ?, ?)", [(*row, at) for row in goes_with(looks)])


class Writer(BulkWriter):
    """The rows of one kind written in the caller's transaction (a load's, or one API write's)."""

    def __init__(self, conn: sqlite3.Connection, bulk: bool = False):
        self.conn, self.bulk = conn, bulk
        self.wrote_events = self.wrote_looks = False

    def write(self, kind: str, records: Sequence) -> int:
        written = getattr(self, f"_write_{kind}")(records) or 0
        self.wrote_events |= kind == "events" and written > 0  # a reload of stored events changes nothing
        # GOES_WITH follows the looks in the same transaction: at the end of a load (where an
        # upserted product may change category too), at once otherwise (a new product is in no look).
        self.wrote_looks |= bool(records) and (kind == "looks" or (self.bulk and kind == "products"))
        if self.wrote_looks and not self.bulk:
            replace_goes_with(self.conn)
        if kind in CHANGE_KIND and records:
            record_changes(self.conn, CHANGE_KIND[kind], [r.id for r in records])
        return written

    def _write_categories(self, rows: Sequence[Category]):
        self.conn.executemany(
            "INSERT INTO category (id, name, parent_id) VALUES (?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET name = excluded.name, parent_id = excluded.parent_id",
            [(c.id, c.name, c.parent_id) for c in rows],
        )

    def _write_products(self, rows: Sequence[Product]):
        conn = self.conn
        conn.executemany(
            "INSERT INTO product (id, name, category_id, price, availability, unavailable_in) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET name = excluded.name, category_id = excluded.category_id,"
            " price = excluded.price, availability = excluded.availability, unavailable_in = excluded.unavailable_in",
            [(p.id, p.name, p.category_id, p.price, p.availability,
              json.dumps(list(p.unavailable_in)) if p.unavailable_in else None) for p in rows],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO attribute (key, kind, value) VALUES (?, ?, ?)",
            {(a.key, a.kind, a.value) for p in rows for a in p.attributes},
        )
        # A product's attributes are replaced, not accumulated: re-loading is idempotent.
        conn.executemany("DELETE FROM product_attribute WHERE product_id = ?", [(p.id,) for p in rows])
        conn.executemany(
            "INSERT OR IGNORE INTO product_attribute (product_id, attribute_key) VALUES (?, ?)",
            [(p.id, a.key) for p in rows for a in p.attributes],
        )

    def _write_shoppers(self, rows: Sequence[Shopper]):
        self.conn.executemany(
            "INSERT INTO shopper (id, home_location) VALUES (?, ?)"
            " ON CONFLICT(id) DO UPDATE SET home_location = coalesce(excluded.home_location, home_location)",
            [(s.id, s.home_location) for s in rows],
        )

    def _write_looks(self, rows: Sequence[Look]):
        conn = self.conn
        conn.executemany(
            "INSERT INTO look (id, name, session_id, mined, support, lift) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET name = excluded.name, session_id = excluded.session_id,"
            " mined = excluded.mined, support = excluded.support, lift = excluded.lift",
            [(lk.id, lk.name, lk.session_id, int(lk.mined), lk.support, lk.lift) for lk in rows],
        )
        conn.executemany("DELETE FROM look_item WHERE look_id = ?", [(lk.id,) for lk in rows])
        conn.executemany(
            "INSERT INTO look_item (look_id, product_id, position) VALUES (?, ?, ?)",
            [(lk.id, pid, pos) for lk in rows for pos, pid in enumerate(lk.product_ids)],
        )

    def _write_events(self, delivered: Sequence[Event]):
        conn = self.conn
        rows = self._new_events(delivered)
        self._check_owners(delivered, rows)
        shoppers = {e.shopper_id for e in rows if e.shopper_id is not None}
        conn.executemany("INSERT OR IGNORE INTO shopper (id) VALUES (?)", [(s,) for s in shoppers])
        sessions: dict[str, list] = {}
        for e in rows:
            s = sessions.get(e.session_id)
            if s is None:
                sessions[e.session_id] = [e.session_id, e.shopper_id, e.ts, e.location, int(e.gift)]
            else:
                if e.ts < s[2]:
                    s[2], s[3] = e.ts, e.location  # a session is where it started
                s[4] |= int(e.gift)
        conn.executemany(
            "INSERT INTO session (id, shopper_id, started_at, location, gift) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO UPDATE SET"
            " location = CASE WHEN excluded.started_at < started_at THEN excluded.location ELSE location END,"
            " started_at = min(started_at, excluded.started_at), gift = max(gift, excluded.gift)",
            sessions.values(),
        )
        # total_changes, not rowcount: executemany's rowcount is unreliable for OR IGNORE.
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO event (id, session_id, product_id, type, ts, location, gift)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(e.id, e.session_id, e.product_id, e.type, e.ts, e.location, int(e.gift)) for e in rows],
        )
        return conn.total_changes - before

    def _new_events(self, delivered: Sequence[Event]) -> list[Event]:
        """The events of `delivered` not stored yet, each id once (its first delivery): a
        replay must not touch the session or shopper rows either."""
        firsts = {e.id: e for e in reversed(delivered)}
        ids = list(firsts)
        stored: set[str] = set()
        for start in range(0, len(ids), 900):  # SQLite caps bound parameters per statement
            chunk = ids[start : start + 900]
            stored.update(r[0] for r in self.conn.execute(
                f"SELECT id FROM event WHERE id IN ({','.join('?' * len(chunk))})", chunk))
        return [e for e in delivered if e.id not in stored and firsts[e.id] is e]

    def _check_owners(self, delivered: Sequence[Event], new: list[Event]) -> None:
        """Raise `SessionConflict` when a new event's session belongs to someone else: its
        stored owner, or the shopper of the batch's first event in it."""
        owners: dict[str, str | None] = {}
        ids = list({e.session_id for e in new})
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            for session_id, owner in self.conn.execute(
                    f"SELECT id, shopper_id FROM session WHERE id IN ({','.join('?' * len(chunk))})", chunk):
                owners[session_id] = owner
        position = {id(e): i for i, e in enumerate(delivered)}
        for e in new:
            owner = owners.setdefault(e.session_id, e.shopper_id)
            if owner != e.shopper_id:
                raise SessionConflict(position[id(e)], e.session_id, owner, e.shopper_id)

    def _write_saved_looks(self, rows: Sequence[SavedLook]):
        self.conn.executemany(
            "INSERT INTO saved_look (shopper_id, look_id, ts) VALUES (?, ?, ?)"
            " ON CONFLICT(shopper_id, look_id) DO UPDATE SET ts = max(ts, excluded.ts)",
            [(s.shopper_id, s.look_id, s.ts) for s in rows],
        )
