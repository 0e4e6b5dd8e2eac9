"""How the embedded store keeps served lists small and reads a million of them back quickly.

A served list of 20 items kept as JSON took 1,486 bytes; a store that logs every list would
outgrow the catalogue within days. So each list is one row of codes (`IMPRESSION_SCHEMA`):

- every product that was ever shown gets a small integer, once (`impression_product`), and a
  list's products are those integers packed little-endian, 2 bytes each while the shop has shown
  fewer than 65,536 products and 4 bytes after that;
- every other repeated string gets one too (`impression_term`): a slot's description (source,
  path kind, whether it explored; "look INCLUDES>INCLUDES no"), the list kind, the model and
  ranker versions and the request's context (unless it names items: a product page's chosen
  items vary without end, so such a context is kept as text in its row, and the codes stay few).
  A list's slots are packed like its products, 1 byte each while there are fewer than 256 kinds
  of slot;
- a recommendation id that is 32 hex digits (`impressions.new_recommendation_id`) is kept as its
  16 bytes.

The widths need no marker: `shown` holds the list's length, and a blob's length over it is the
width. Codes are given inside the writing transaction (`INSERT OR IGNORE`, then read back) and
cached only once it commits, so two workers writing at once agree on every code. Read back, one
`ShownItem` stands for every slot showing the same product the same way, so a million lists of
20 hold a million tuples, not twenty million.
"""

from __future__ import annotations

import json
import re
import struct
import threading
from functools import lru_cache

from .model import Impression, ShownItem

IMPRESSION_SCHEMA = """
-- What the API showed (recommend/impressions.py): one row per served list, in codes
-- (graph/sqlite_impressions.py). A rowid table: lists arrive in time order and are appended,
-- where a random id as the key would split pages.
CREATE TABLE IF NOT EXISTS impression (
    id NOT NULL UNIQUE,                 -- 16 bytes for a 32-hex-digit recommendation id, else text
    list INTEGER NOT NULL,              -- impression_term
    at REAL NOT NULL,
    shopper_id TEXT,
    session_id TEXT,
    product_id TEXT,
    model INTEGER,                      -- impression_term
    ranker INTEGER,                     -- impression_term
    variant TEXT,
    context NOT NULL,                   -- impression_term code of the request's context as JSON, or the JSON
    shown INTEGER NOT NULL,             -- how many items the list held
    products BLOB NOT NULL,             -- impression_product codes, in position
    slots BLOB NOT NULL                 -- impression_term codes of each slot, in position
);
CREATE INDEX IF NOT EXISTS impression_shopper ON impression(shopper_id, at) WHERE shopper_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS impression_session ON impression(session_id, at) WHERE session_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS impression_at ON impression(at);
CREATE INDEX IF NOT EXISTS impression_variant ON impression(variant, at) WHERE variant IS NOT NULL;
CREATE TABLE IF NOT EXISTS impression_product (
    code INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS impression_term (
    code INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE
)
"""

COLUMNS = "id, list, at, shopper_id, session_id, product_id, model, ranker, variant, context, shown, products, slots"
_HEX_ID = re.compile(r"[0-9a-f]{32}")


def stored_id(recommendation_id: str):
    """How `recommendation_id` is kept and looked up."""
    return bytes.fromhex(recommendation_id) if _HEX_ID.fullmatch(recommendation_id) else recommendation_id


@lru_cache(maxsize=256)
def _packing(count: int, width: int) -> struct.Struct:
    return struct.Struct("<" + {1: "B", 2: "H", 4: "I"}[width] * count)


def _pack(codes: list[int], small: int) -> bytes:
    """`codes` in the narrowest of `small` bytes, 2 or 4 that holds them all."""
    top = max(codes, default=0)
    width = small if top < 1 << (8 * small) else 2 if top < 1 << 16 else 4
    return _packing(len(codes), width).pack(*codes)


def _unpack(blob: bytes, count: int) -> tuple[int, ...]:
    return _packing(count, len(blob) // count).unpack(blob) if count else ()


def _slot_text(item: ShownItem) -> str:
    return f"{item.source}\t{item.path}\t{int(item.exploration)}"


class ImpressionCodec:
    """The codes of one store, cached; `rows` codes impressions for writing, `impressions` reads
    them back."""

    def __init__(self):
        self._lock = threading.Lock()
        self._product_code: dict[str, int] = {}
        self._product: dict[int, str] = {}
        self._term_code: dict[str, int] = {}
        self._term: dict[int, str] = {}
        self._items = _SharedItems(self)
        self._contexts: dict[int, dict] = {}
        self._products_read = self._terms_read = 0
        """The highest codes read from the store (`learn` may know higher ones, not every lower one)."""

    # -- writing -------------------------------------------------------------------------
    def rows(self, conn, impressions, known_shoppers: set) -> tuple[list[tuple], dict]:
        """The rows for `impressions` inside the caller's write transaction on `conn`, and the
        codes it gave, to `learn` once that transaction commits."""
        products = {item.product_id for i in impressions for item in i.items}
        terms = {text for i in impressions for text in self._texts_of(i)}
        new = {"product": self._codes(conn, "impression_product", "id", products, self._product_code),
               "term": self._codes(conn, "impression_term", "text", terms, self._term_code)}
        product_code = _Either(new["product"], self._product_code)
        term_code = _Either(new["term"], self._term_code)

        def term(text):
            return None if text is None else term_code[text]

        rows = [(stored_id(i.id), term_code[i.list], i.at, i.shopper_id if i.shopper_id in known_shoppers else None,
                 i.session_id, i.product_id, term(i.model), term(i.ranker), i.variant,
                 _context_text(i.context) if i.context.get("items") else term_code[_context_text(i.context)],
                 len(i.items),
                 _pack([product_code[item.product_id] for item in i.items], 2),
                 _pack([term_code[_slot_text(item)] for item in i.items], 1))
                for i in impressions]
        return rows, new

    def learn(self, new: dict) -> None:
        with self._lock:
            for text, code in new["product"].items():
                self._product_code[text], self._product[code] = code, text
            for text, code in new["term"].items():
                self._term_code[text], self._term[code] = code, text

    @staticmethod
    def _texts_of(impression: Impression):
        yield impression.list
        if not impression.context.get("items"):
            yield _context_text(impression.context)
        yield from (text for text in (impression.model, impression.ranker) if text is not None)
        yield from map(_slot_text, impression.items)

    @staticmethod
    def _codes(conn, table: str, column: str, texts: set, cached: dict) -> dict[str, int]:
        missing = sorted(texts - cached.keys())
        if not missing:
            return {}
        conn.executemany(f"INSERT OR IGNORE INTO {table} ({column}) VALUES (?)", [(t,) for t in missing])
        found = {}
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            found.update(conn.execute(f"SELECT {column}, code FROM {table} WHERE {column} IN"
                                      f" ({', '.join('?' * len(chunk))})", chunk))
        return found

    # -- reading -------------------------------------------------------------------------
    def impressions(self, conn, rows) -> list[Impression]:
        """`Impression`s from rows of `COLUMNS`."""
        rows = rows if isinstance(rows, list) else list(rows)
        try:
            return self._decoded(rows)
        except KeyError:  # a code another writer gave since this codec last looked
            self._read_codes(conn)
            return self._decoded(rows)

    def _decoded(self, rows: list) -> list[Impression]:
        term, items, contexts = self._term, self._items, self._contexts
        found = []
        for (key, kind, at, shopper, session, product, model, ranker, variant, context, shown, products,
             slots) in rows:
            if isinstance(context, str):
                context = json.loads(context)
            elif context in contexts:
                context = contexts[context]
            else:
                contexts[context] = json.loads(term[context])
                context = contexts[context]
            found.append(Impression(
                key.hex() if isinstance(key, bytes) else key, term[kind], at,
                tuple(map(items.__getitem__, zip(_unpack(products, shown), _unpack(slots, shown)))),
                shopper, session, product, _or_none(term, model), _or_none(term, ranker), variant, dict(context)))
        return found

    def _read_codes(self, conn) -> None:
        """The codes given since this codec last read them: each is one more than the last, given
        by one writer at a time, so none appears below a code already read."""
        with self._lock:
            for code, text in conn.execute("SELECT code, id FROM impression_product WHERE code > ? ORDER BY code",
                                           (self._products_read,)).fetchall():
                self._product_code[text], self._product[code] = code, text
                self._products_read = code
            for code, text in conn.execute("SELECT code, text FROM impression_term WHERE code > ? ORDER BY code",
                                           (self._terms_read,)).fetchall():
                self._term_code[text], self._term[code] = code, text
                self._terms_read = code


class _Either:
    """Look a text up in the codes just given, then in the cached ones."""

    def __init__(self, new: dict, cached: dict):
        self.new, self.cached = new, cached

    def __getitem__(self, text: str) -> int:
        return self.new.get(text) or self.cached[text]


class _SharedItems(dict):
    """(product code, slot code) -> its `ShownItem`, made once."""

    def __init__(self, codec: ImpressionCodec):
        super().__init__()
        self.codec = codec

    def __missing__(self, key: tuple[int, int]) -> ShownItem:
        source, path, exploration = self.codec._term[key[1]].split("\t")
        item = self[key] = ShownItem(self.codec._product[key[0]], source, path, exploration == "1")
        return item


def _or_none(term: dict, code: int | None) -> str | None:
    return None if code is None else term[code]


def _context_text(context: dict) -> str:
    return json.dumps(context, sort_keys=True, separators=(",", ":"))
