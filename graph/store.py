"""`GraphStore`: the one interface that loaders, training and the API use.

Two implementations: `SQLiteGraphStore` (embedded, the default) and `Neo4jGraphStore`.
Both pass the same contract tests in `tests/test_store_contract.py`.
"""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from itertools import repeat
from typing import TypeVar

from pydantic_core import from_json

from .model import Event, Experiment, GraphStats, Impression, Neighbour, Shopper, ShownItem, Variant

T = TypeVar("T")

IMPRESSION_COLUMNS = ("id", "list", "at", "shopper_id", "session_id", "product_id", "model", "ranker", "variant",
                      "context", "items")
"""An impression as both stores keep it: its fields, context and items as JSON text."""


def impression_items_json(items: Sequence[ShownItem]) -> str:
    """The shown items in position, compactly: [[product, source, path, exploration], ...]."""
    return json.dumps([[i.product_id, i.source, i.path, int(i.exploration)] for i in items], separators=(",", ":"))


def impression_of_row(row: dict) -> Impression:
    """An `Impression` from a stored row (`IMPRESSION_COLUMNS`). Every feed reads the shopper's
    latest 50 back, and attribution a million: pydantic-core's JSON parser and `tuple.__new__`
    mapped in C take a third less time than `json.loads` and `ShownItem._make` per item."""
    items = tuple(map(tuple.__new__, repeat(ShownItem), from_json(row["items"])))  # exploration kept as 0 or 1
    return Impression(row["id"], row["list"], row["at"], items, row["shopper_id"], row["session_id"],
                      row["product_id"], row["model"], row["ranker"], row["variant"], from_json(row["context"]))


def experiment_json(experiment: Experiment) -> str:
    """An experiment as both stores keep it: one JSON document."""
    fields = {name: getattr(experiment, name) for name in Experiment.__dataclass_fields__}
    fields["variants"] = [{name: getattr(v, name) for name in Variant.__dataclass_fields__} for v in experiment.variants]
    return json.dumps(fields, sort_keys=True)


def experiment_of_json(text: str) -> Experiment:
    fields = json.loads(text)
    return Experiment(**{**fields, "variants": tuple(Variant(**v) for v in fields["variants"]),
                         "lists": tuple(fields["lists"])})


CHANGE_KIND = {"products": "product", "looks": "look", "categories": "category"}
"""What a write of these records tells serving processes changed (`changes_since`); rules and
erasures are recorded as "rule" and "shopper"."""
CHANGES_PER_WRITE = 100
"""A write of more records than this is recorded as one change of every record of its kind
(key `*`): a bulk load is re-read whole rather than record by record."""
CHANGE_RETENTION_SECONDS = 7 * 86_400
"""How long changes are kept; a process further behind than that reloads everything."""


def erasure_key(shopper_id: str) -> str:
    """How an erasure is recorded in the change log: a digest, never the erased id itself."""
    return hashlib.sha256(shopper_id.encode()).hexdigest()


class UnknownNode(LookupError):
    """A request named a node that is not in the store."""

    def __init__(self, label: str, node_id: str):
        super().__init__(f"unknown {label} {node_id!r}")
        self.label = label
        self.node_id = node_id


class SessionConflict(ValueError):
    """An event names a session that belongs to someone else (or is anonymous while the
    event names a shopper, or the reverse). Decided inside the write transaction, so two
    shoppers' first events for one new session cannot both be stored."""

    def __init__(self, position: int, session_id: str, owner: str | None, shopper_id: str | None):
        who = repr(owner) if owner is not None else "an anonymous visitor"
        super().__init__(f"session {session_id!r} belongs to {who}, not {shopper_id!r}")
        self.position, self.session_id, self.owner, self.shopper_id = position, session_id, owner, shopper_id


class AlreadyExists(LookupError):
    """A create named an id the store already holds."""

    def __init__(self, label: str, node_id: str):
        super().__init__(f"{label} {node_id!r} already exists")
        self.label, self.node_id = label, node_id


class BulkWriter(abc.ABC):
    """Writes validated records of one load. Obtained from `GraphStore.bulk_load()`."""

    @abc.abstractmethod
    def write(self, kind: str, records: Sequence) -> int:
        """Upsert one batch of records of `kind` (one of `model.RECORD_KINDS`).
        Returns how many events were new (0 for other kinds)."""


class GraphStore(abc.ABC):
    name: str = "abstract"
    atomic_loads: bool = True
    """True when a whole load commits or rolls back as one; False when it commits in
    batches and is resumable instead (re-running the same load completes it)."""

    # -- lifecycle ---------------------------------------------------------------------
    @abc.abstractmethod
    def ensure_schema(self) -> None:
        """Create constraints, indexes and tables if missing (idempotent)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read_together(self, work: Callable[[], T]) -> T:
        """`work()`, with every read it makes on this thread in one read transaction where the
        store is a server (Neo4j: a request is one transaction and sees one snapshot); the
        embedded store reads its own file in process and just runs it."""
        return work()

    # -- writes ------------------------------------------------------------------------
    @abc.abstractmethod
    def bulk_load(self) -> AbstractContextManager[BulkWriter]:
        """A writer for one load. Leaving the block with an exception undoes the load on an
        atomic store; on a resumable store, batches already written stay (and are idempotent)."""

    @abc.abstractmethod
    def append_events(self, events: Sequence[Event]) -> int:
        """Durably append events; returns how many were new. Idempotent by event id: an event
        whose id is stored (or repeats an earlier one of the batch) changes nothing, whatever
        else it says. Sessions and shoppers the new events name are created on first sight.
        A session belongs to the shopper (or anonymous visitor) of its first event: an event
        that says otherwise raises `SessionConflict` and nothing of the batch is written; the
        owner is read inside the write transaction. When this returns, the events survive a
        crash of the process."""

    @abc.abstractmethod
    def create(self, kind: str, record) -> None:
        """Add one product or look (`kind` "products" or "looks") that must be new: raises
        `AlreadyExists`, writing nothing, when its id is taken (checked and written in one
        transaction). `bulk_load` replaces instead."""

    @abc.abstractmethod
    def delete_shopper(self, shopper_id: str) -> dict[str, int]:
        """Erase the shopper and every trace of their personal data (sessions, events,
        saved looks, embeddings). Returns what was removed, by kind."""

    @abc.abstractmethod
    def replace_mined_looks(self, looks: Sequence) -> int:
        """Make `looks` (mined `Look` records) the store's mined looks: upsert them and delete
        every other mined look. Curated looks are never touched. Returns how many were deleted."""

    @abc.abstractmethod
    def write_embeddings(self, label: str, ids: Sequence[str], vectors, model: str) -> None:
        """Store one vector per node of `label` (Product, Shopper or Look), replacing any
        earlier one, tagged with the artifact version `model`."""

    @abc.abstractmethod
    def read_embeddings(self, label: str, ids: Iterable[str]) -> dict[str, tuple[list[float], str]]:
        """The stored (vector, model version) of each node of `ids` that has one."""

    @abc.abstractmethod
    def claim_contact(self, shopper_id: str, channel: str, now: float, since: float, decide) -> tuple:
        """Decide and log an outbound contact (email, push...) as one step: `decide(times)`
        gets the times of the shopper's contacts at or after `since` and returns
        (allowed, reason, retry_after); when allowed, the contact at `now` is logged in the same
        transaction, so parallel claims cannot exceed a cap. Raises `UnknownNode` for an
        unknown shopper. The log is erased with the shopper."""

    @abc.abstractmethod
    def contacts(self, shopper_id: str, since: float) -> list[tuple[str, float]]:
        """(channel, time) of the shopper's contacts at or after `since`, oldest first."""

    # -- the console's sign-in sessions (in the store, so every worker agrees) -----------
    @abc.abstractmethod
    def open_console_session(self, token_hash: str, key_fingerprint: str, csrf: str, expires_at: float,
                             now: float) -> None:
        """Record a signed-in console session (and forget sessions expired by `now`)."""

    @abc.abstractmethod
    def console_session(self, token_hash: str, now: float) -> tuple[str, str] | None:
        """(key fingerprint, CSRF token) of the open session of `token_hash` unexpired at `now`."""

    @abc.abstractmethod
    def close_console_session(self, token_hash: str) -> None:
        """Forget a session (signing out); nothing happens when there is none."""

    # -- reads -------------------------------------------------------------------------
    @abc.abstractmethod
    def changes_since(self, seq: int, limit: int = 1_000) -> list[tuple[int, str, str]]:
        """What changed after change `seq`, in commit order, as (seq, kind, key): kind one of
        "product", "availability" (a product's alone), "look", "category", "rule", "shopper"
        (key: `erasure_key`); key `*` for every record of the kind. Written in the transaction
        of the change itself."""

    @abc.abstractmethod
    def latest_change(self) -> int:
        """The newest change's seq (0 for none)."""

    @abc.abstractmethod
    def append_impressions(self, impressions: Sequence[Impression]) -> int:
        """Keep served lists (`recommend/impressions.py`); returns how many were new (an id
        already kept is not written again). A shopper the store does not hold (not yet known, or
        erased while the impression was queued) is not named: the impression is kept anonymous."""

    @abc.abstractmethod
    def impressions(self, shopper_id: str | None = None, since: float | None = None, until: float | None = None,
                    limit: int | None = 1_000, experiment: str | None = None) -> list[Impression]:
        """Kept impressions (of one shopper, from `since` until before `until`, served in one
        of `experiment`'s variants), oldest first; `limit` None: all of them."""

    @abc.abstractmethod
    def delete_impressions_before(self, before: float) -> int:
        """Drop impressions older than `before` (the retention); returns how many."""

    @abc.abstractmethod
    def record_attributions(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Keep which recommendation each event was sent back with: (event id, recommendation
        id) pairs; an event already attributed keeps its first. Returns how many were new."""

    @abc.abstractmethod
    def outcomes_between(self, since: float, until: float) -> list[tuple[Event, str | None]]:
        """Every view, cart and purchase from `since` until before `until`, oldest first, each
        with the recommendation id it was sent back with (None when none)."""

    @abc.abstractmethod
    def engagements(self) -> Iterator[tuple[str, str, float]]:
        """(session, product, time) of every event but dismissals, in no particular order: what
        the crowd's co-engagement is counted from (`graph/crowd.py`)."""

    @abc.abstractmethod
    def replace_bought_with(self, rows: Sequence[tuple[str, str, int, float]], state: dict) -> None:
        """Replace every (:Product)-[:BOUGHT_WITH]->(:Product) with `rows` (product, companion,
        sessions, lift; `graph/crowd.py`), stamped `state["at"]`, and keep `state` (the events
        watermark and change seq they were computed from) for `bought_with_state`."""

    @abc.abstractmethod
    def claim_crowd_refresh(self, now: float, seconds: float) -> bool:
        """Take the store-wide lease on recomputing BOUGHT_WITH for `seconds` from `now`; False
        when another process holds it (one refresh at a time, however many workers)."""

    @abc.abstractmethod
    def release_crowd_refresh(self) -> None:
        """Give the lease back (a process that died holding it loses it when it runs out)."""

    @abc.abstractmethod
    def bought_with_state(self) -> dict | None:
        """What the stored BOUGHT_WITH was computed from ({"events", "changes", "at"}), or None."""

    @abc.abstractmethod
    def iter_bought_with(self) -> Iterator[tuple[str, str, int, float]]:
        """Every BOUGHT_WITH as (product, companion, sessions, lift): by product id, each
        product's companions most sessions first, then by id."""

    @abc.abstractmethod
    def iter_goes_with(self) -> Iterator[tuple[str, str, int, float]]:
        """Every (:Category)-[:GOES_WITH]->(:Category) as (category, partner, looks, lift), as
        `graph/crowd.py`'s `goes_with` computed it from the store's looks when they last
        changed: by category id, each category's partners most looks first, then by id."""

    @abc.abstractmethod
    def events_watermark(self) -> int:
        """A number that changes when events are added or erased (read in constant time): how a
        serving process learns that the crowd's statistics are due, whoever wrote the events."""

    @abc.abstractmethod
    def traversal(self, vectors=None):
        """What the recommendation engine walks (`graph/traversal.py`): an index in memory
        streamed from the store (`MemoryTraversal`), or walks in place (Neo4j's Cypher);
        `vectors` (a `LookVectors`) answers nearest-neighbour walks."""

    @abc.abstractmethod
    def known_ids(self, kind: str) -> set[str]:
        """All ids of `kind` ("categories", "products", "shoppers", "looks", "sessions")."""

    @abc.abstractmethod
    def session_owners(self, session_ids: Iterable[str]) -> dict[str, str | None]:
        """For each session id that exists, its shopper (None for anonymous sessions)."""

    @abc.abstractmethod
    def iter_records(self, kind: str, batch_size: int = 10_000) -> Iterator:
        """Stream every record of `kind` as model dataclasses, in a stable order."""

    @abc.abstractmethod
    def get(self, kind: str, node_id: str):
        """One record of `kind` by id, or raise `UnknownNode`."""

    @abc.abstractmethod
    def shopper_history(self, shopper_id: str, events: int, lists: int) -> tuple[Shopper, list[Event], list[Impression]]:
        """What a feed reads of a shopper, at once: the shopper, their latest `events` events
        and the latest `lists` lists they were shown (what fading reads), each oldest first;
        raises `UnknownNode` for a shopper the store does not hold. One read: on Neo4j one
        statement, a round trip, where three cost three."""

    @abc.abstractmethod
    def events(
        self,
        *,
        shopper_id: str | None = None,
        session_id: str | None = None,
        since: float | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events of one shopper or one session, oldest first."""

    # -- merchandising ---------------------------------------------------------------------
    @abc.abstractmethod
    def unavailable_products(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Each product not plainly in stock: (availability, locations out of stock)."""

    @abc.abstractmethod
    def set_availability(self, product_id: str, availability: str, unavailable_in: Sequence[str]) -> None:
        """Change only a product's availability (the rest of it, and its relationships, stay);
        `UnknownNode` when there is no such product."""

    @abc.abstractmethod
    def products_matching(self, categories: Sequence[str] | None, attribute: str | None,
                          price_min: float | None, price_max: float | None) -> set[str]:
        """Ids of the products in one of `categories` (when given), with the attribute key
        `attribute` (when given), priced within the bounds (when given)."""

    @abc.abstractmethod
    def rules(self, ids: Sequence[str] | None = None) -> list:
        """Every business rule (`model.Rule`), or those of `ids` that exist, by id."""

    @abc.abstractmethod
    def create_rule(self, rule) -> None:
        """Store a new rule; `AlreadyExists` when its id is taken, `UnknownNode` when it names
        a shopper or look that does not exist."""

    @abc.abstractmethod
    def replace_rule(self, rule) -> None:
        """Store `rule` in place of the rule of its id, or as a new one, in one transaction;
        `UnknownNode` as `create_rule`."""

    @abc.abstractmethod
    def delete_rule(self, rule_id: str) -> None:
        """Delete a rule; `UnknownNode` when there is none of that id."""

    @abc.abstractmethod
    def exploration_state(self) -> dict | None:
        """What exploration earned (`recommend/exploration.py`), as last saved; None before."""

    @abc.abstractmethod
    def save_exploration_state(self, state: dict, expected: float | None) -> bool:
        """Save `state` if the saved one still counts impressions through `expected` (its
        "through"; None: nothing saved yet), in one transaction; False, writing nothing, when
        another process saved first (so that no impression is counted twice)."""

    @abc.abstractmethod
    def experiments(self) -> list[Experiment]:
        """Every experiment (`model.Experiment`), ended ones included, by id."""

    @abc.abstractmethod
    def create_experiment(self, experiment: Experiment) -> None:
        """Store a new experiment; `AlreadyExists` when its id is taken. An experiment is
        never changed afterwards, only ended (`end_experiment`): what its units were served
        must stay what its report reads."""

    @abc.abstractmethod
    def end_experiment(self, experiment_id: str, at: float) -> Experiment:
        """End an experiment at `at` (or leave it as it is when it ended earlier); returns it;
        `UnknownNode` when there is none of that id."""

    @abc.abstractmethod
    def look_ids(self, product_id: str | None = None, limit: int = 50, offset: int = 0) -> list[str]:
        """Look ids in id order, `limit` from `offset`; only those including `product_id` if given."""

    @abc.abstractmethod
    def stored_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        """The stored event of each id of `event_ids` that has one."""

    @abc.abstractmethod
    def neighbours(
        self, label: str, node_id: str, rel: str | None = None, limit: int = 1000
    ) -> list[Neighbour]:
        """One hop from a node, over every relationship of the model (or only `rel`)."""

    @abc.abstractmethod
    def stats(self, top: int = 10) -> GraphStats:
        """Counts per label and relationship type, and the largest categories."""
