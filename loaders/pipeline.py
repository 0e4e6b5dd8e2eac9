"""Load a `Source` into a `GraphStore`: validate everything, then write everything.

Every row is parsed and every reference checked (an event's product, a look's items, a
category's parent...) against the store and the input itself; every problem is collected with
its file, line and field, and if there is any, nothing is written.

On the embedded store the whole load is one transaction (all or nothing, even on a crash),
so checking and writing share one pass. Neo4j commits in batches of idempotent MERGEs, so
its loads get a checking pass first, and an interrupted load is completed by running it again.

Memory stays bounded by the number of ids (products, categories, looks, sessions), never
by the number of events.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from ..graph.limits import record_problem
from ..graph.model import RECORD_KINDS
from ..graph.store import GraphStore, SessionConflict
from .source import LoadError, LoadProblem, LoadWarning, Source

MAX_REPORTED = 50


@dataclass
class LoadReport:
    source: str
    rows: dict[str, int] = field(default_factory=dict)
    new_events: int = 0
    seconds: float = 0.0
    atomic: bool = True
    warnings: list[str] = field(default_factory=list)
    """What loaded but deserves a look: an empty file, an event id re-delivered with other content."""


class _Checker:
    """Reference checks over the whole input, plus what the store already has."""

    def __init__(self, store: GraphStore, strict: bool = False):
        self.store, self.strict = store, strict
        self.now = time.time()  # events dated after it (and a day's slack) have not happened yet
        self.problems: list[LoadProblem] = []
        self.total_problems = 0
        self.warnings: list[str] = []
        self.ids: dict[str, set[str]] = {}
        self.seen: dict[str, set[str]] = {k: set() for k in RECORD_KINDS}
        self.session_owner: dict[str, tuple[str | None, str, int]] = {}
        self.category_parents: dict[str, tuple[str | None, str, int]] = {}

    def known(self, kind: str) -> set[str]:
        if kind not in self.ids:
            self.ids[kind] = self.store.known_ids(kind)
        return self.ids[kind]

    def report(self, problem: LoadProblem) -> None:
        self.total_problems += 1
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(problem)

    def warn(self, problem: LoadProblem) -> None:
        if len(self.warnings) < MAX_REPORTED:
            self.warnings.append(str(problem))

    def compare_stored(self, located: list[tuple[str, int, object]]) -> None:
        """Events whose id is stored with other content: the stored one is kept (an event id
        is idempotent), which is worth a warning, or a problem with `strict`."""
        stored = self.store.stored_events(record.id for _, _, record in located)
        for file, line, event in located:
            before = stored.get(event.id)
            if before is None:
                continue
            changed = [name for name in ("session_id", "product_id", "type", "ts", "shopper_id")
                       if getattr(before, name) != getattr(event, name)]
            if changed:
                said = ", ".join(f"{name} {getattr(before, name)!r} -> {getattr(event, name)!r}" for name in changed)
                problem = LoadProblem(file, line, "event_id", f"event {event.id!r} is stored with other content ({said}); "
                                      "the stored event is kept")
                (self.report if self.strict else self.warn)(problem)

    def check(self, kind: str, file: str, line: int, record) -> None:
        problem = record_problem(kind, record, self.now)  # the limits the API keeps too
        if problem is not None:
            self.report(LoadProblem(file, line, *problem))
        key = (record.shopper_id, record.look_id) if kind == "saved_looks" else record.id
        seen = self.seen[kind]
        if key in seen:
            field_name = "event_id" if kind == "events" else "id"
            return self.report(LoadProblem(file, line, field_name, f"duplicate id {key!r} in this input"))
        seen.add(key)
        getattr(self, f"_check_{kind}")(file, line, record)

    def _check_categories(self, file, line, category) -> None:
        self.category_parents[category.id] = (category.parent_id, file, line)
        self.known("categories").add(category.id)

    def _check_products(self, file, line, product) -> None:
        if product.category_id is not None and product.category_id not in self.known("categories"):
            self.report(LoadProblem(file, line, "category_id", f"unknown category {product.category_id!r}"))
        self.known("products").add(product.id)

    def _check_shoppers(self, file, line, shopper) -> None:
        self.known("shoppers").add(shopper.id)

    def _check_events(self, file, line, event) -> None:
        if event.product_id not in self.known("products"):
            self.report(LoadProblem(file, line, "product_id", f"unknown product {event.product_id!r}"))
        owner = self.session_owner.get(event.session_id)
        if owner is None:
            self.session_owner[event.session_id] = (event.shopper_id, file, line)
        elif owner[0] != event.shopper_id:
            self.report(LoadProblem(file, line, "shopper_id",
                                    f"session {event.session_id!r} belongs to {owner[0]!r} ({owner[1]}:{owner[2]})"))
        if event.shopper_id is not None:
            self.known("shoppers").add(event.shopper_id)

    def _check_looks(self, file, line, look) -> None:
        for pid in look.product_ids:
            if pid not in self.known("products"):
                self.report(LoadProblem(file, line, "product_ids", f"unknown product {pid!r}"))
        if look.session_id is not None and look.session_id not in self.session_owner \
                and look.session_id not in self.known("sessions"):
            self.report(LoadProblem(file, line, "session_id", f"unknown session {look.session_id!r}"))
        self.known("looks").add(look.id)

    def _check_saved_looks(self, file, line, saved) -> None:
        if saved.shopper_id not in self.known("shoppers"):
            self.report(LoadProblem(file, line, "shopper_id", f"unknown shopper {saved.shopper_id!r}"))
        if saved.look_id not in self.known("looks"):
            self.report(LoadProblem(file, line, "look_id", f"unknown look {saved.look_id!r}"))

    def finish(self) -> None:
        """Checks that need the whole input: category parents, sessions' stored owners."""
        categories = self.known("categories")
        for cid, (parent, file, line) in self.category_parents.items():
            if parent is not None and parent not in categories:
                self.report(LoadProblem(file, line, "parent_id", f"unknown category {parent!r}"))
        for cid, (parent, file, line) in self.category_parents.items():
            visited, node = {cid}, parent
            while node is not None and node in self.category_parents:
                if node in visited:
                    self.report(LoadProblem(file, line, "parent_id", f"category {cid!r} is its own ancestor"))
                    break
                visited.add(node)
                node = self.category_parents[node][0]
        stored = self.store.session_owners(self.session_owner)
        for sid, owner in stored.items():
            shopper, file, line = self.session_owner[sid]
            if owner != shopper:
                self.report(LoadProblem(file, line, "shopper_id", f"session {sid!r} already belongs to {owner!r} in the store"))


def load(
    source: Source,
    store: GraphStore,
    batch_size: int = 5_000,
    progress: bool | None = None,
    strict: bool = False,
) -> LoadReport:
    """Load `source` into `store`, all or nothing. Raises `LoadError` listing the problems
    (file, line, field, reason) if any row is bad; then nothing was written.

    On an atomic store one pass checks and writes inside one transaction, rolled back on
    any problem. A store that commits in batches gets a checking pass first that writes
    nothing. `progress=None` shows progress bars only on a terminal. `strict`: an event id
    already stored with other content is a problem, not a warning (`LoadReport.warnings`)."""
    started = time.perf_counter()
    show = sys.stderr.isatty() if progress is None else progress
    if not store.atomic_loads:
        _run(source, _Checker(store, strict), None, batch_size, show, "check")
    report = LoadReport(source.name, atomic=store.atomic_loads)
    with store.bulk_load() as writer:
        report.rows, report.new_events, report.warnings = _run(source, _Checker(store, strict), writer, batch_size,
                                                               show, "load")
    report.seconds = time.perf_counter() - started
    return report


def _run(source, checker: _Checker, writer, batch_size: int, show: bool, verb: str):
    """One pass over every record kind: check each record, write batches if given a writer.
    Raises `LoadError` at the end of the pass if anything was wrong."""
    rows: dict[str, int] = {}
    new_events = 0
    conflicts: list[SessionConflict] = []

    def write(kind: str, batch: list) -> int:
        # The store decides a session's owner inside its transaction; a conflict it finds
        # (with what it holds) is reported below with the file and line, like every problem.
        try:
            return writer.write(kind, batch)
        except SessionConflict as conflict:
            conflicts.append(conflict)
            return 0

    for kind in RECORD_KINDS:
        pending: list = []  # this batch's (file, line, record)
        n = 0

        def flush() -> None:
            nonlocal new_events
            if kind == "events":
                checker.compare_stored(pending)
            if writer is not None and not checker.total_problems and not conflicts:
                new_events += write(kind, [record for _, _, record in pending])
            pending.clear()

        for item in tqdm(source.records(kind), desc=f"{verb} {kind}", unit=" rows", disable=not show, leave=False):
            if isinstance(item, LoadWarning):
                checker.warn(item)
                continue
            if isinstance(item, LoadProblem):
                checker.report(item)
                continue
            checker.check(kind, *item)
            n += 1
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
        rows[kind] = n
    checker.finish()
    if conflicts and not checker.total_problems:
        conflict = conflicts[0]
        _, file, line = checker.session_owner[conflict.session_id]
        checker.report(LoadProblem(file, line, "shopper_id", str(conflict)))
    if checker.total_problems:
        raise LoadError(checker.problems, checker.total_problems)
    return rows, new_events, checker.warnings
