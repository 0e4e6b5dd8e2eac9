"""BundleRec (Sun et al., SIGIR'23): real Amazon shoppers, sessions and human-made bundles.

One domain folder (e.g. `bundlerec/clothing`) becomes:

- Category: each prefix of every Amazon category path (`Clothing, Shoes & Jewelry > Women > ...`);
- Product: every item any file names; its category is the leaf of its first path, its title is
  its name; its title terms, other paths' leaves and Amazon's brand paths (`<root> > T > Tommy
  Hilfiger`) become attributes (`term:`, `category:`, `brand:`), which is what cold items are
  recognised by;
- Shopper: every user; Session: every session, owned by its `user_session` user (sessions with
  no user are anonymous, dated at the dataset's first timestamp);
- events: the items of a session, as purchases (BundleRec derives sessions from reviews, i.e.
  from bought items), one second apart in file order; user-item rows no session covers become
  purchases in a per-user history session;
- Look: each bundle, named by its annotated intent, found in its session; SAVED: user_bundle.

Titles and intents are names: their line breaks and tabs become single spaces.

Ids are namespaced by domain (`clothing/item/62`) so several domains share one store.
The files are small (thousands of rows), so they are read whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..graph.model import Attribute, Category, Event, Look, Product, SavedLook, Shopper
from .source import LoadProblem, Source, csv_rows, EncodingProblem

FILES = {
    "item_categories.csv": ("item ID", "categories"),
    "item_titles.csv": ("item ID", "titles"),
    "user_session.csv": ("user ID", "session ID", "timestamp"),
    "session_item.csv": ("session ID", "item ID"),
    "user_item.csv": ("user ID", "item ID", "timestamp"),
    "bundle_item.csv": ("bundle ID", "item ID"),
    "bundle_intent.csv": ("bundle ID", "intent"),
    "session_bundle.csv": ("session ID", "bundle ID"),
    "user_bundle.csv": ("user ID", "bundle ID", "timestamp"),
}
_PATH_SEPARATOR = re.compile(r",(?! )")  # "Clothing, Shoes & Jewelry,Women": names hold ", "
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOPWORDS = frozenset("the and for with from this that you your are all new pack set size inch of in on to by".split())
MAX_TERMS = 12


def category_paths(cell: str) -> list[list[str]]:
    """`[[A, B,C],[A, B,D]]` -> [["A, B", "C"], ["A, B", "D"]] (names may contain ', ')."""
    body = cell.strip()
    if not (body.startswith("[[") and body.endswith("]]")):
        raise ValueError(f"expected [[...],[...]], got {cell[:60]!r}")
    return [[p.strip() for p in _PATH_SEPARATOR.split(path) if p.strip()] for path in body[2:-2].split("],[")]


def one_line(text: str) -> str:
    """A title or intent as a name: annotators' line breaks and tabs become single spaces (a name
    holds no control character, as the API requires)."""
    return " ".join(text.split())


def title_terms(title: str) -> list[str]:
    terms = []
    for word in _WORD.findall(title.lower()):
        word = word.removesuffix("'s")
        if len(word) >= 3 and not word.isdigit() and word not in _STOPWORDS and word not in terms:
            terms.append(word)
    return terms[:MAX_TERMS]


class BundleRecSource(Source):
    name = "bundlerec"

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        missing = [f for f in FILES if not (self.folder / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{self.folder}: not a BundleRec domain folder; missing {', '.join(missing)}")
        self.domain = self.folder.name
        self._records: dict[str, list] | None = None
        self.problems: list[LoadProblem] = []

    def _id(self, kind: str, raw: str) -> str:
        return f"{self.domain}/{kind}/{raw}"

    def _rows(self, name: str):
        path = self.folder / name
        try:
            for line, row in csv_rows(path, FILES[name]):
                if isinstance(row, LoadProblem):
                    self.problems.append(row)
                else:
                    yield str(path), line, row
        except EncodingProblem as err:
            self.problems.append(err.problem)

    def records(self, kind: str):
        if self._records is None:
            self._records = self._read()
        if kind == "categories":
            yield from self.problems
        yield from self._records[kind]

    def _read(self) -> dict[str, list]:
        out: dict[str, list] = {k: [] for k in ("categories", "products", "shoppers", "events", "looks", "saved_looks")}
        categories: dict[str, tuple] = {}
        primary: dict[str, str] = {}
        extra: dict[str, list[Attribute]] = {}
        for file, line, row in self._rows("item_categories.csv"):
            try:
                paths = category_paths(row["categories"])
            except ValueError as err:
                self.problems.append(LoadProblem(file, line, "categories", str(err)))
                continue
            item = row["item ID"].strip()
            for path in paths:
                if len(path) >= 3 and len(path[1]) == 1:  # Amazon's "<root> > T > Tommy Hilfiger"
                    extra.setdefault(item, []).append(Attribute("brand", path[2]))
                    continue
                parent = None
                for depth in range(len(path)):
                    cid = f"{self.domain}/category/" + " > ".join(path[: depth + 1])
                    if cid not in categories:
                        categories[cid] = (file, line, Category(cid, path[depth], parent))
                    parent = cid
                if item not in primary:
                    primary[item] = parent
                elif path:
                    extra.setdefault(item, []).append(Attribute("category", path[-1]))
        out["categories"] = list(categories.values())

        titles = {row["item ID"].strip(): (one_line(row["titles"]), file, line) for file, line, row in self._rows("item_titles.csv")}
        products: dict[str, tuple] = {}

        def product(raw: str, file: str, line: int) -> str:
            pid = self._id("item", raw)
            if pid not in products:
                title = titles.get(raw, ("", file, line))[0]
                attrs = {Attribute("term", t) for t in title_terms(title)} | set(extra.get(raw, ()))
                products[pid] = (file, line, Product(pid, title or f"item {raw}", primary.get(raw), None,
                                                     tuple(sorted(attrs, key=lambda a: a.key))))
            return pid

        for raw, (_, file, line) in titles.items():
            product(raw, file, line)
        for raw in primary:
            product(raw, str(self.folder / "item_categories.csv"), 0)

        owners: dict[str, tuple[str, float]] = {}
        for file, line, row in self._rows("user_session.csv"):
            owners[row["session ID"].strip()] = (row["user ID"].strip(), float(row["timestamp"]))
        first_ts = min((ts for _, ts in owners.values()), default=0.0)
        shoppers: dict[str, tuple] = {}

        def shopper(raw: str, file: str, line: int) -> str:
            sid = self._id("user", raw)
            shoppers.setdefault(sid, (file, line, Shopper(sid)))
            return sid

        covered: set[tuple[str, str]] = set()
        position: dict[str, int] = {}
        for file, line, row in self._rows("session_item.csv"):
            raw_session, raw_item = row["session ID"].strip(), row["item ID"].strip()
            owner, ts = owners.get(raw_session, (None, first_ts))
            session = self._id("session", raw_session)
            n = position[session] = position.get(session, -1) + 1
            out["events"].append((file, line, Event(
                f"{session}/item/{raw_item}", session, product(raw_item, file, line), "purchase", ts + n,
                shopper(owner, file, line) if owner else None,
            )))
            if owner:
                covered.add((owner, raw_item))
        for file, line, row in self._rows("user_item.csv"):
            raw_user, raw_item = row["user ID"].strip(), row["item ID"].strip()
            if (raw_user, raw_item) in covered:
                continue
            user = shopper(raw_user, file, line)
            out["events"].append((file, line, Event(
                f"{user}/item/{raw_item}", f"{user}/history", product(raw_item, file, line), "purchase",
                float(row["timestamp"]), user,
            )))

        intents = {row["bundle ID"].strip(): one_line(row["intent"]) for _, _, row in self._rows("bundle_intent.csv")}
        found_in = {}
        for _, _, row in self._rows("session_bundle.csv"):
            found_in.setdefault(row["bundle ID"].strip(), self._id("session", row["session ID"].strip()))
        items: dict[str, tuple[str, int, list[str]]] = {}
        for file, line, row in self._rows("bundle_item.csv"):
            raw_bundle = row["bundle ID"].strip()
            entry = items.setdefault(raw_bundle, (file, line, []))
            entry[2].append(product(row["item ID"].strip(), file, line))
        for raw_bundle, (file, line, pids) in items.items():
            session = found_in.get(raw_bundle)
            out["looks"].append((file, line, Look(
                self._id("bundle", raw_bundle), intents.get(raw_bundle) or f"bundle {raw_bundle}",
                tuple(dict.fromkeys(pids)), session if session and session in position else None,
            )))
        for file, line, row in self._rows("user_bundle.csv"):
            out["saved_looks"].append((file, line, SavedLook(
                shopper(row["user ID"].strip(), file, line), self._id("bundle", row["bundle ID"].strip()),
                float(row["timestamp"]),
            )))
        out["products"] = list(products.values())
        out["shoppers"] = list(shoppers.values())
        return out
