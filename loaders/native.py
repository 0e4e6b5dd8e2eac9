"""The lookgraph native format: a folder with a manifest and one file per entity.

    my-store/
      lookgraph.json        {"format": "lookgraph-native", "version": 1}
      categories.csv | categories.jsonl
      products.csv   | products.jsonl
      shoppers.csv   | shoppers.jsonl
      events.csv     | events.jsonl
      looks.csv      | looks.jsonl
      saved_looks.csv| saved_looks.jsonl

Every entity file is optional; `COLUMNS` lists each one's fields (required ones first) and the
README has the full spec. CSV files have a header row; list-valued fields are `|`-separated
in CSV (`attributes` as `kind:value|kind:value`) and JSON arrays/objects in JSON Lines.
Timestamps are ISO 8601 (no offset means UTC) or epoch seconds.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from ..graph.limits import time_problem
from ..graph.model import AVAILABILITY, EVENT_TYPES, RECORD_KINDS, Attribute, Category, Event, Look, Product, SavedLook, Shopper
from .source import EncodingProblem, FieldError, LoadProblem, LoadWarning, Source, csv_rows, utf8_lines

FORMAT = "lookgraph-native"
VERSION = 1
MANIFEST = "lookgraph.json"

COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required fields, optional fields)
    "categories": (("id", "name"), ("parent_id",)),
    "products": (("id", "name"), ("category_id", "price", "attributes", "availability", "unavailable_in")),
    "shoppers": (("id",), ("home_location",)),
    "events": (("event_id", "ts", "session_id", "product_id", "type"), ("shopper_id", "location", "gift")),
    "looks": (("id", "name", "product_ids"), ("session_id",)),
    "saved_looks": (("shopper_id", "look_id", "ts"), ()),
}

_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"", "0", "false", "no", "n", "f"}


# -- field parsers: each raises FieldError naming the field -------------------------------
def _text(row: dict, name: str, required: bool = False) -> str | None:
    value = row.get(name)
    if value.__class__ is str:  # the hot path: a CSV cell
        value = value.strip() or None
    elif isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # JSON Lines may carry numeric ids
    elif value is not None:
        raise FieldError(name, f"expected text, got {value!r}")
    if value is None and required:
        raise FieldError(name, "required field is missing or empty")
    return value


def parse_timestamp(value, name: str = "ts") -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if "-" in text[1:] or ":" in text:
                moment = datetime.fromisoformat(text)
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=timezone.utc)
                seconds = moment.timestamp()
            else:
                seconds = float(text)
        except ValueError:
            raise FieldError(name, f"not an ISO 8601 time or epoch seconds: {value!r}") from None
    else:
        raise FieldError(name, "required timestamp is missing or empty")
    problem = time_problem(seconds)
    if problem:
        raise FieldError(name, f"{value!r} is {problem}")
    return seconds


def _bool(row: dict, name: str) -> bool:
    value = row.get(name)
    if value is None or value.__class__ is bool:
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise FieldError(name, f"expected true/false, got {value!r}")


def _float(row: dict, name: str) -> float | None:
    value = row.get(name)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError(name, f"expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise FieldError(name, f"expected a non-negative number, got {value!r}")
    return number


def _list(row: dict, name: str) -> list[str]:
    value = row.get(name)
    if value is None or value == "":
        return []
    items = value.split("|") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise FieldError(name, f"expected a list of ids, got {value!r}")
    return [i.strip() for i in items if i.strip()]


def _attributes(row: dict) -> tuple[Attribute, ...]:
    value = row.get("attributes")
    if value is None or value == "":
        return ()
    pairs: list[tuple[str, str]] = []
    if isinstance(value, str):
        for part in value.split("|"):
            kind, sep, val = part.partition(":")
            if not sep or not kind.strip() or not val.strip():
                raise FieldError("attributes", f"expected kind:value, got {part!r}")
            pairs.append((kind, val))
    elif isinstance(value, dict):
        for kind, vals in value.items():
            for val in vals if isinstance(vals, list) else [vals]:
                if not isinstance(val, str) or not val.strip():
                    raise FieldError("attributes", f"attribute {kind!r} needs text values, got {val!r}")
                pairs.append((kind, val))
    else:
        raise FieldError("attributes", f"expected kind:value|... or an object, got {value!r}")
    return tuple(sorted({Attribute(k.strip().lower(), v.strip()) for k, v in pairs}, key=lambda a: a.key))


def _parse_category(row):
    return Category(_text(row, "id", True), _text(row, "name", True), _text(row, "parent_id"))


def _parse_product(row):
    availability = (_text(row, "availability") or "in_stock").lower()
    if availability not in AVAILABILITY:
        raise FieldError("availability", f"unknown availability {availability!r}; expected one of {', '.join(AVAILABILITY)}")
    return Product(
        _text(row, "id", True), _text(row, "name", True), _text(row, "category_id"),
        _float(row, "price"), _attributes(row), availability, tuple(_list(row, "unavailable_in")),
    )


def _parse_shopper(row):
    return Shopper(_text(row, "id", True), _text(row, "home_location"))


def _parse_event(row):
    kind = _text(row, "type", True).lower()
    if kind not in EVENT_TYPES:
        raise FieldError("type", f"unknown event type {kind!r}; expected one of {', '.join(EVENT_TYPES)}")
    return Event(
        _text(row, "event_id", True), _text(row, "session_id", True), _text(row, "product_id", True),
        kind, parse_timestamp(row.get("ts")), _text(row, "shopper_id"), _text(row, "location"),
        _bool(row, "gift"),
    )


def _parse_look(row):
    items = _list(row, "product_ids")
    if not items:
        raise FieldError("product_ids", "a look needs at least one product")
    if len(set(items)) != len(items):
        raise FieldError("product_ids", "a product appears twice in the look")
    return Look(_text(row, "id", True), _text(row, "name", True), tuple(items), _text(row, "session_id"))


def _parse_saved_look(row):
    return SavedLook(_text(row, "shopper_id", True), _text(row, "look_id", True), parse_timestamp(row.get("ts")))


PARSERS = {
    "categories": _parse_category,
    "products": _parse_product,
    "shoppers": _parse_shopper,
    "events": _parse_event,
    "looks": _parse_look,
    "saved_looks": _parse_saved_look,
}


class NativeSource(Source):
    """Reads a native-format folder (see the module docstring)."""

    name = "native"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: not a folder")
        if not manifest.is_file():
            raise ValueError(f"{manifest}: missing; a native-format folder starts with {{\"format\": \"{FORMAT}\", \"version\": {VERSION}}}")
        try:
            meta = json.loads(manifest.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{manifest}: not valid JSON: {err}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{manifest}: field 'format' must be {FORMAT!r}")
        if meta.get("version") != VERSION:
            raise ValueError(f"{manifest}: field 'version' is {meta.get('version')!r}; this lookgraph reads version {VERSION}")
        for kind in RECORD_KINDS:  # two files for one kind: said before anything is read
            self.file_for(kind)

    def file_for(self, kind: str) -> Path | None:
        csv_path, jsonl_path = self.folder / f"{kind}.csv", self.folder / f"{kind}.jsonl"
        if csv_path.exists() and jsonl_path.exists():
            raise ValueError(f"{self.folder}: both {csv_path.name} and {jsonl_path.name} hold {kind}; keep one of them")
        return csv_path if csv_path.exists() else jsonl_path if jsonl_path.exists() else None

    def records(self, kind: str) -> Iterator:
        path = self.file_for(kind)
        if path is None:
            return
        rows = csv_rows(path, COLUMNS[kind][0]) if path.suffix == ".csv" else _jsonl_rows(path)
        parse = PARSERS[kind]
        name = str(path)
        read = 0
        try:
            for line, row in rows:
                read += 1
                if isinstance(row, LoadProblem):
                    yield row
                    continue
                try:
                    yield name, line, parse(row)
                except FieldError as err:
                    yield LoadProblem(name, line, err.field, err.reason)
        except EncodingProblem as err:
            yield err.problem
        if not read:
            yield LoadWarning(name, 0, None, "empty (no rows): nothing was loaded from it")


def _jsonl_rows(path: Path) -> Iterator:
    for line, text in enumerate(utf8_lines(path), 1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except ValueError as err:
            yield line, LoadProblem(str(path), line, None, f"not valid JSON: {err}")
            continue
        if not isinstance(row, dict):
            yield line, LoadProblem(str(path), line, None, "expected a JSON object per line")
            continue
        yield line, row


# -- writing (the demo generator and exports produce native folders) ----------------------
def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_row(kind: str, record) -> dict:
    """A record as a native-format row (JSON-friendly values)."""
    if kind == "products":
        attrs: dict[str, list[str]] = {}
        for a in record.attributes:
            attrs.setdefault(a.kind, []).append(a.value)
        return {"id": record.id, "name": record.name, "category_id": record.category_id,
                "price": record.price, "attributes": attrs, "availability": record.availability,
                "unavailable_in": list(record.unavailable_in)}
    if kind == "events":
        return {"event_id": record.id, "ts": _iso(record.ts), "session_id": record.session_id,
                "shopper_id": record.shopper_id, "product_id": record.product_id, "type": record.type,
                "location": record.location, "gift": record.gift}
    if kind == "looks":
        return {"id": record.id, "name": record.name, "product_ids": list(record.product_ids),
                "session_id": record.session_id}
    if kind == "saved_looks":
        return {"shopper_id": record.shopper_id, "look_id": record.look_id, "ts": _iso(record.ts)}
    if kind == "categories":
        return {"id": record.id, "name": record.name, "parent_id": record.parent_id}
    return {"id": record.id, "home_location": record.home_location}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class NativeWriter:
    """Writes records into a native-format folder, as CSV (default) or JSON Lines."""

    def __init__(self, folder: str | Path, fmt: str = "csv"):
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be csv or jsonl, not {fmt!r}")
        self.folder = Path(folder)
        self.fmt = fmt
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / MANIFEST).write_text(json.dumps({"format": FORMAT, "version": VERSION}) + "\n", "utf-8")

    def write(self, kind: str, records: Iterable) -> int:
        assert kind in RECORD_KINDS
        path = self.folder / f"{kind}.{self.fmt}"
        other = self.folder / f"{kind}.{'jsonl' if self.fmt == 'csv' else 'csv'}"
        other.unlink(missing_ok=True)
        count = 0
        with open(path, "w", encoding="utf-8", newline="") as out:
            if self.fmt == "jsonl":
                for record in records:
                    out.write(json.dumps(to_row(kind, record), ensure_ascii=False) + "\n")
                    count += 1
                return count
            required, optional = COLUMNS[kind]
            writer = csv.writer(out)
            writer.writerow(required + optional)
            for record in records:
                row = to_row(kind, record)
                if kind == "products":
                    row["attributes"] = "|".join(f"{k}:{v}" for k, vals in row["attributes"].items() for v in vals)
                    row["unavailable_in"] = "|".join(row["unavailable_in"])
                elif kind == "looks":
                    row["product_ids"] = "|".join(row["product_ids"])
                writer.writerow([_csv_value(row[c]) for c in required + optional])
                count += 1
        return count
