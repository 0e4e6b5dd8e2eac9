"""The limits every input meets, whichever way it comes in (the API or a loader) and whichever
store keeps it: written once, here. The README's limits table lists the same numbers.

Why these numbers: Neo4j indexes every id and attribute key, and an indexed string over about
8 KB cannot be stored there; 200 characters of an id and 1,100 of an attribute key stay far
below that in any script (4 bytes a character at most), so both stores accept the same records.
Timestamps are bounded so that every stored time can be shown as a date, and an event cannot be
dated into the future (one event of the year 2099 would make every other event look decades
old to recency weights and trending).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

ID_MAX = 200
"""Characters of an id (shopper, product, session, event, look, category, rule)."""
NAME_MAX = 1_000
"""Characters of a product's, look's or category's name (BundleRec's longest title has 748)."""
TEXT_MAX = 200
"""Characters of a location or a rule's name."""
ATTRIBUTE_KIND_MAX = 100
ATTRIBUTE_VALUE_MAX = 1_000
ATTRIBUTES_MAX = 200
"""Attribute values of one product, all kinds together."""
LOOK_ITEMS_MAX = 50
LOCATIONS_MAX = 200
"""Locations a product can be out of stock in."""
JSON_DEPTH_MAX = 32
"""Nesting of arrays and objects in a request body (the deepest body the API takes has 4)."""

EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)
"""Every stored time is at or after EARLIEST and before LATEST."""
EARLIEST_TS, LATEST_TS = EARLIEST.timestamp(), LATEST.timestamp()
FUTURE_SLACK_SECONDS = 86_400.0
"""An event may be dated at most this far after the receiving clock (clocks disagree a little)."""

RESERVED_PRODUCT_SUFFIX = "/complete-the-look"
"""No product id ends so: `GET /products/{id}/complete-the-look` could not be told from
`GET /products/{id}` of that id (ids may hold `/`)."""

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters (NUL, tab, newline, DEL...): in no id, name or location."""
ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"


def time_problem(ts: float, now: float | None = None) -> str | None:
    """Why `ts` (epoch seconds) cannot be stored, or None; `now` bounds an event's time."""
    if not math.isfinite(ts) or not EARLIEST_TS <= ts < LATEST_TS:
        return f"outside {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d} (UTC)"
    if now is not None and ts > now + FUTURE_SLACK_SECONDS:
        return "more than a day after now: an event cannot have happened yet"
    return None


def date_problem(moment: datetime) -> str | None:
    """Why a datetime (naive means UTC) cannot be stored, or None. Checked before converting:
    `9999-12-31T23:59:59-05:00` is past the last datetime Python can represent in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return time_problem(moment.timestamp())
    except (OverflowError, ValueError):
        return f"outside {EARLIEST:%Y-%m-%d} .. {LATEST:%Y-%m-%d} (UTC)"


def text_problem(value: str | None, most: int, required: bool = False) -> str | None:
    """Why an id, name or location cannot be stored, or None."""
    if value is None:
        return "required" if required else None
    if not value or value.isspace():
        return "blank"
    if len(value) > most:
        return f"{len(value)} characters, at most {most}"
    if CONTROL.search(value):
        return "a control character (newline, tab, NUL...)"
    return None


def shown_time(ts: float | None) -> datetime | float | None:
    """A stored time as a datetime, or as the number it is when no datetime can hold it (a
    value stored before these limits): shown as what it is, never an error."""
    if ts is None:
        return None
    try:
        return datetime.fromtimestamp(ts, timezone.utc)
    except (OverflowError, ValueError, OSError):
        return ts


def record_problem(kind: str, record, now: float) -> tuple[str, str] | None:
    """The first (field, reason) that keeps a model record of `kind` out of the store, or None;
    `now` bounds events' times. The load pipeline asks this of every record."""
    if kind == "events":
        if CONTROL.search(f"{record.id} {record.session_id} {record.product_id} {record.shopper_id} {record.location}"):
            checks = (("event_id", record.id, ID_MAX), ("session_id", record.session_id, ID_MAX),
                      ("product_id", record.product_id, ID_MAX), ("shopper_id", record.shopper_id, ID_MAX),
                      ("location", record.location, TEXT_MAX))
        else:  # the usual case, 1M times a load: lengths only
            checks = ()
            for name, value, most in (("event_id", record.id, ID_MAX), ("session_id", record.session_id, ID_MAX),
                                      ("product_id", record.product_id, ID_MAX)):
                if len(value) > most:
                    return name, f"{len(value)} characters, at most {most}"
            for name, value, most in (("shopper_id", record.shopper_id, ID_MAX), ("location", record.location, TEXT_MAX)):
                if value is not None and len(value) > most:
                    return name, f"{len(value)} characters, at most {most}"
        for name, value, most in checks:
            problem = text_problem(value, most)
            if problem:
                return name, problem
        problem = time_problem(record.ts, now)
        return ("ts", problem) if problem else None
    if kind == "saved_looks":
        problem = time_problem(record.ts, now)
        return ("ts", problem) if problem else None
    checks = [("id", record.id, ID_MAX, True)]
    if kind in ("categories", "products", "looks"):
        checks.append(("name", record.name, NAME_MAX, True))
    if kind == "categories":
        checks.append(("parent_id", record.parent_id, ID_MAX, False))
    elif kind == "products":
        checks.append(("category_id", record.category_id, ID_MAX, False))
        checks += [("unavailable_in", where, TEXT_MAX, True) for where in record.unavailable_in]
    elif kind == "shoppers":
        checks.append(("home_location", record.home_location, TEXT_MAX, False))
    elif kind == "looks":
        checks.append(("session_id", record.session_id, ID_MAX, False))
        checks += [("product_ids", pid, ID_MAX, True) for pid in record.product_ids]
    for name, value, most, required in checks:
        problem = text_problem(value, most, required)
        if problem:
            return name, f"{problem}: {value[:60]!r}" if value else problem
    if kind == "products":
        if record.id.endswith(RESERVED_PRODUCT_SUFFIX):
            return "id", f"a product id cannot end in {RESERVED_PRODUCT_SUFFIX!r} (the route of that name)"
        return attributes_problem([(a.kind, a.value) for a in record.attributes], len(record.unavailable_in))
    if kind == "looks" and len(record.product_ids) > LOOK_ITEMS_MAX:
        return "product_ids", f"{len(record.product_ids)} items, at most {LOOK_ITEMS_MAX}"
    return None


def attributes_problem(pairs: list[tuple[str, str]], locations: int = 0) -> tuple[str, str] | None:
    """(field, reason) for a product's attributes (kind, value) or its count of locations."""
    if len(pairs) > ATTRIBUTES_MAX:
        return "attributes", f"{len(pairs)} values, at most {ATTRIBUTES_MAX}"
    for kind, value in pairs:
        problem = text_problem(kind, ATTRIBUTE_KIND_MAX, True) or (":" in kind and "a ':' in an attribute kind")
        if problem:
            return "attributes", f"kind {kind[:60]!r}: {problem}"
        problem = text_problem(value, ATTRIBUTE_VALUE_MAX, True)
        if problem:
            return "attributes", f"{kind[:60]!r} value: {problem}"
    if locations > LOCATIONS_MAX:
        return "unavailable_in", f"{locations} locations, at most {LOCATIONS_MAX}"
    return None
