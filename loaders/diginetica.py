"""Diginetica (CIKM Cup 2016): anonymous and logged-in e-commerce sessions.

Semicolon-separated files in one folder:

- `product-categories.csv` (itemId;categoryId) -> Product in a flat Category;
- `*item-views.csv` (session_id;user_id;item_id;timeframe;eventdate) -> `view` events;
- `train-purchases.csv` (sessionId;userId;timeframe;eventdate;ordernumber;itemId) -> `purchase`s.

An event's time is its `eventdate` (UTC midnight) plus `timeframe` milliseconds. A user id of
`NA` means anonymous; a session that is `NA` in one row and known in another belongs to the
known user (the files disagree for some sessions). Ids are prefixed `diginetica/`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from ..graph.model import Category, Event, Product, Shopper
from .source import EncodingProblem, LoadProblem, Source, csv_rows

PRODUCTS = ("product-categories.csv", ("itemId", "categoryId"))
PURCHASES = ("train-purchases.csv", ("sessionId", "userId", "timeframe", "eventdate", "ordernumber", "itemId"))
VIEW_COLUMNS = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
NS = "diginetica"


class DigineticaSource(Source):
    name = "diginetica"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not (self.folder / PRODUCTS[0]).is_file():
            raise FileNotFoundError(f"{self.folder}: not a Diginetica folder; missing {PRODUCTS[0]}")
        self.view_files = sorted(self.folder.glob("*item-views.csv"))
        self._owners: dict[str, str] | None = None

    def _rows(self, name: str, required: tuple[str, ...]):
        path = self.folder / name
        if not path.is_file():
            return
        try:
            for line, row in csv_rows(path, required, delimiter=";"):
                yield str(path), line, row
        except EncodingProblem as err:
            yield str(path), err.problem.line, err.problem

    def _interactions(self):
        """(file, line, session, user or None, item, ts, kind, event id) or a LoadProblem."""
        for path in self.view_files:
            for file, line, row in self._rows(path.name, VIEW_COLUMNS):
                if isinstance(row, LoadProblem):
                    yield row
                    continue
                yield self._interaction(file, line, row, "session_id", "user_id", "item_id", "view", "")
        for file, line, row in self._rows(*PURCHASES):
            if isinstance(row, LoadProblem):
                yield row
                continue
            yield self._interaction(file, line, row, "sessionId", "userId", "itemId", "purchase", row["ordernumber"].strip())

    @staticmethod
    def _interaction(file, line, row, session_col, user_col, item_col, kind, order):
        try:
            day = datetime.strptime(row["eventdate"].strip(), "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            return LoadProblem(file, line, "eventdate", f"expected YYYY-MM-DD, got {row['eventdate']!r}")
        try:
            offset = int(row["timeframe"]) / 1000
        except ValueError:
            return LoadProblem(file, line, "timeframe", f"expected milliseconds, got {row['timeframe']!r}")
        user = row[user_col].strip()
        session, item = row[session_col].strip(), row[item_col].strip()
        event_id = f"{NS}/session/{session}/{kind}/{item}/{row['timeframe'].strip()}{'/' + order if order else ''}"
        return file, line, session, None if user in ("", "NA") else user, item, day.timestamp() + offset, kind, event_id

    def _session_owners(self) -> dict[str, str]:
        if self._owners is None:
            self._owners = {}
            for it in self._interactions():
                if not isinstance(it, LoadProblem) and it[3] is not None:
                    self._owners.setdefault(it[2], it[3])
        return self._owners

    def records(self, kind: str):
        if kind == "categories":
            seen = set()
            for file, line, row in self._rows(*PRODUCTS):
                if isinstance(row, LoadProblem):
                    yield row
                elif (cid := row["categoryId"].strip()) not in seen:
                    seen.add(cid)
                    yield file, line, Category(f"{NS}/category/{cid}", f"category {cid}")
        elif kind == "products":
            for file, line, row in self._rows(*PRODUCTS):
                if not isinstance(row, LoadProblem):
                    item = row["itemId"].strip()
                    yield file, line, Product(f"{NS}/item/{item}", f"item {item}", f"{NS}/category/{row['categoryId'].strip()}")
        elif kind == "shoppers":
            for user in sorted(set(self._session_owners().values())):
                yield str(self.folder), 0, Shopper(f"{NS}/user/{user}")
        elif kind == "events":
            owners = self._session_owners()
            repeats: dict[str, int] = {}  # an item bought twice in one order is listed twice
            for it in self._interactions():
                if isinstance(it, LoadProblem):
                    yield it
                    continue
                file, line, session, _, item, ts, event_kind, event_id = it
                seen = repeats[event_id] = repeats.get(event_id, 0) + 1
                if seen > 1:
                    event_id = f"{event_id}#{seen}"
                owner = owners.get(session)
                yield file, line, Event(event_id, f"{NS}/session/{session}", f"{NS}/item/{item}", event_kind, ts,
                                        f"{NS}/user/{owner}" if owner else None)
