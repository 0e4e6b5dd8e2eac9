"""The embedded store's tables (`SCHEMA`), the indexes a first load builds after its rows
(`DEFERRABLE_INDEXES`), and the migrations that bring an older store file to this version
(`ensure`, run by `SQLiteGraphStore.ensure_schema` in one transaction)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from .model import EVENT_TYPES
from .sqlite_impressions import COLUMNS as IMPRESSION_CODED, IMPRESSION_SCHEMA, ImpressionCodec
from .sqlite_writes import replace_goes_with
from .store import IMPRESSION_COLUMNS, impression_of_row

SCHEMA_VERSION = 5


def _code_impressions(conn: sqlite3.Connection) -> None:
    """Version 3 kept each served list's items as JSON (1,486 bytes a list of 20); version 4
    keeps codes (graph/sqlite_impressions.py)."""
    conn.execute("ALTER TABLE impression RENAME TO impression_json")
    for index in ("impression_shopper", "impression_session", "impression_at", "impression_variant"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    for statement in IMPRESSION_SCHEMA.split(";"):
        conn.execute(statement)
    # By time, not rowid: the first version-3 stores kept impressions in a WITHOUT ROWID table.
    codec, rows = ImpressionCodec(), conn.execute("SELECT * FROM impression_json ORDER BY at, id")
    while batch := [impression_of_row(dict(zip(IMPRESSION_COLUMNS, row))) for row in rows.fetchmany(10_000)]:
        coded, new = codec.rows(conn, batch, {i.shopper_id for i in batch})
        conn.executemany(f"INSERT INTO impression ({IMPRESSION_CODED}) VALUES ({', '.join('?' * 13)})", coded)
        codec.learn(new)  # this transaction's own codes, seen by its own later batches
    conn.execute("DROP TABLE impression_json")


MIGRATIONS = {1: ("ALTER TABLE look ADD COLUMN mined INTEGER NOT NULL DEFAULT 0",
                  "ALTER TABLE look ADD COLUMN support INTEGER", "ALTER TABLE look ADD COLUMN lift REAL"),
              2: ("ALTER TABLE product ADD COLUMN availability TEXT NOT NULL DEFAULT 'in_stock'",
                  "ALTER TABLE product ADD COLUMN unavailable_in TEXT"),
              3: (_code_impressions,),
              4: (replace_goes_with,)}  # GOES_WITH came in version 5: from the looks already stored
"""Statements (or functions of the connection) that bring a store of the key's version to the
next one, all in one transaction."""

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS category (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    parent_id TEXT REFERENCES category(id) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX IF NOT EXISTS category_parent ON category(parent_id);
CREATE TABLE IF NOT EXISTS product (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category_id TEXT REFERENCES category(id),
    price REAL,
    availability TEXT NOT NULL DEFAULT 'in_stock',
    unavailable_in TEXT
);
CREATE INDEX IF NOT EXISTS product_category ON product(category_id);
CREATE TABLE IF NOT EXISTS attribute (
    key TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS product_attribute (
    product_id TEXT NOT NULL REFERENCES product(id) ON DELETE CASCADE,
    attribute_key TEXT NOT NULL REFERENCES attribute(key),
    PRIMARY KEY (product_id, attribute_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS shopper (id TEXT PRIMARY KEY, home_location TEXT);
CREATE TABLE IF NOT EXISTS session (
    id TEXT PRIMARY KEY,
    shopper_id TEXT REFERENCES shopper(id) ON DELETE CASCADE,
    started_at REAL NOT NULL,
    location TEXT,
    gift INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS session_shopper ON session(shopper_id);
CREATE TABLE IF NOT EXISTS event (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES session(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES product(id),
    type TEXT NOT NULL CHECK (type IN ({", ".join(repr(t) for t in EVENT_TYPES)})),
    ts REAL NOT NULL,
    location TEXT,
    gift INTEGER NOT NULL DEFAULT 0
);
-- An event's shopper is its session's: stored once, on the session.
CREATE TABLE IF NOT EXISTS look (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    session_id TEXT REFERENCES session(id) ON DELETE SET NULL,
    mined INTEGER NOT NULL DEFAULT 0,
    support INTEGER,
    lift REAL
);
CREATE INDEX IF NOT EXISTS look_session ON look(session_id);
CREATE TABLE IF NOT EXISTS look_item (
    look_id TEXT NOT NULL REFERENCES look(id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES product(id),
    position INTEGER NOT NULL,
    PRIMARY KEY (look_id, product_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS look_item_product ON look_item(product_id);
CREATE TABLE IF NOT EXISTS saved_look (
    shopper_id TEXT NOT NULL REFERENCES shopper(id) ON DELETE CASCADE,
    look_id TEXT NOT NULL REFERENCES look(id) ON DELETE CASCADE,
    ts REAL NOT NULL,
    PRIMARY KEY (shopper_id, look_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS saved_look_look ON saved_look(look_id);
CREATE TABLE IF NOT EXISTS contact (
    shopper_id TEXT NOT NULL REFERENCES shopper(id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS contact_shopper ON contact(shopper_id, ts);
CREATE TABLE IF NOT EXISTS rule (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    shopper_id TEXT REFERENCES shopper(id) ON DELETE CASCADE,
    look_id TEXT REFERENCES look(id) ON DELETE CASCADE
);
-- Every write other processes hold a copy of (products, looks, rules, categories, erasures), in
-- commit order: each serving process reads what came after the last it applied (`changes_since`).
CREATE TABLE IF NOT EXISTS change_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at REAL NOT NULL
);
{IMPRESSION_SCHEMA};
-- Experiments (recommend/experiments.py): each one JSON document, never changed but for its end.
CREATE TABLE IF NOT EXISTS experiment (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
-- Which recommendation an event was sent back with (`POST /events` with a recommendation_id).
CREATE TABLE IF NOT EXISTS attribution (
    event_id TEXT PRIMARY KEY REFERENCES event(id) ON DELETE CASCADE,
    recommendation_id TEXT NOT NULL
) WITHOUT ROWID;
-- The crowd's co-engagement (graph/crowd.py): each product's companions in sessions.
CREATE TABLE IF NOT EXISTS bought_with (
    product_id TEXT NOT NULL REFERENCES product(id),
    other_id TEXT NOT NULL REFERENCES product(id),
    sessions INTEGER NOT NULL,
    lift REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (product_id, other_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bought_with_other ON bought_with(other_id);
-- The looks' category complements (graph/crowd.py's goes_with), rewritten with the looks.
CREATE TABLE IF NOT EXISTS goes_with (
    category_id TEXT NOT NULL REFERENCES category(id),
    other_id TEXT NOT NULL REFERENCES category(id),
    looks INTEGER NOT NULL,
    lift REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (category_id, other_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS goes_with_other ON goes_with(other_id);
CREATE TABLE IF NOT EXISTS console_session (
    token_hash TEXT PRIMARY KEY,
    key_fingerprint TEXT NOT NULL,
    csrf TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS node_embedding (
    label TEXT NOT NULL,
    node_id TEXT NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (label, node_id)
) WITHOUT ROWID;
"""

# The largest secondary indexes; `bulk_load` builds them after the rows on a first load.
DEFERRABLE_INDEXES = [
    (ddl.split()[5], ddl) for ddl in (
        "CREATE INDEX IF NOT EXISTS event_session ON event(session_id, ts)",
        "CREATE INDEX IF NOT EXISTS event_product ON event(product_id)",
        "CREATE INDEX IF NOT EXISTS event_ts ON event(ts)",
        "CREATE INDEX IF NOT EXISTS product_attribute_by_key ON product_attribute(attribute_key)",
    )
]


def ensure(conn: sqlite3.Connection, path: Path) -> None:
    """Create what is missing, then migrate an older store to `SCHEMA_VERSION`, inside the
    caller's transaction."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    for _, ddl in DEFERRABLE_INDEXES:
        conn.execute(ddl)
    found = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if found is None:
        conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return
    version = int(found[0])
    while version in MIGRATIONS and version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            statement(conn) if callable(statement) else conn.execute(statement)
        version += 1
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    if version != SCHEMA_VERSION:
        raise RuntimeError(f"{path}: schema version {version}, this lookgraph expects {SCHEMA_VERSION}")
