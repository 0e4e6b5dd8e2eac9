"""Experiments: which variant of the engine serves each list.

An experiment (`model.Experiment`, kept in the store, made by `POST /experiments`) splits the
units of its list kinds between its variants. The unit is the shopper (`unit="shopper"`) or the
session (`unit="session"`); a request that names only the other is assigned by that one, and a
request naming neither (a product page asked for no one) is outside every experiment.

Assignment is a hash, so every worker, every restart and the report agree without sharing
anything but the experiment's definition:

    u = int(sha256("<experiment id>|<unit>")[:16 hex], 16) / 2**64        uniform on [0, 1)

`u < holdout` is the holdout: served as if there were no experiment, its lists tagged
"<id>/holdout" so that they can be compared too. The rest is split by the variants' shares in
the order given: variant i when (u - holdout) / (1 - holdout) falls in its share's interval. A
unit keeps its variant for the whole experiment. Two running experiments never share a list
kind (`clash`), so a list has at most one variant.

A variant changes the policies (`PolicyConfig` fields, e.g. `explore_share`), the ranker
(hand-set weights instead of the artifact's), the model (another trained version, or graph walks
alone) or the business rules (off): `Engine.arm` builds the engine each variant serves from. A
version other than the served one is read by every worker when the experiment is seen
(`Engine.warm_versions`), not by the first request it serves; it takes its own memory.
"""

from __future__ import annotations

import hashlib
import threading

from ..graph.model import Experiment, Variant
from ..graph.store import GraphStore

HOLDOUT = "holdout"


def unit_of(experiment: Experiment, shopper_id: str | None, session_id: str | None) -> str | None:
    """The unit a request counts as: the one the experiment splits by, else the other one."""
    first, second = (shopper_id, session_id) if experiment.unit == "shopper" else (session_id, shopper_id)
    return first or second or None


def draw(experiment_id: str, unit: str) -> float:
    """The unit's uniform draw for this experiment, the same everywhere."""
    return int(hashlib.sha256(f"{experiment_id}|{unit}".encode()).hexdigest()[:16], 16) / 2.0 ** 64


def assign(experiment: Experiment, unit: str) -> str:
    """The variant's name for `unit`, or `HOLDOUT`."""
    u = draw(experiment.id, unit)
    if u < experiment.holdout:
        return HOLDOUT
    u = (u - experiment.holdout) / (1.0 - experiment.holdout)
    total, edge = sum(v.share for v in experiment.variants), 0.0
    for variant in experiment.variants:
        edge += variant.share / total
        if u < edge:
            return variant.name
    return experiment.variants[-1].name  # u within rounding of 1


def tag(experiment: Experiment, variant: str) -> str:
    """How a list records its variant (`Impression.variant`)."""
    return f"{experiment.id}/{variant}"


def clash(new: Experiment, existing: list[Experiment]) -> Experiment | None:
    """An experiment that would serve some of the same lists at the same time as `new`."""
    new_end = new.ends_at if new.ends_at is not None else float("inf")
    for other in existing:
        other_end = other.ends_at if other.ends_at is not None else float("inf")
        if set(other.lists) & set(new.lists) and other.starts_at < new_end and new.starts_at < other_end:
            return other
    return None


class Experiments:
    """The store's experiments as a serving process holds them, read again when the change log
    says one was made or ended (`freshness.py`)."""

    def __init__(self, store: GraphStore):
        self.store = store
        self._lock = threading.Lock()
        self._all: list[Experiment] = []
        self.changed()

    def changed(self) -> None:
        found = self.store.experiments()
        with self._lock:
            self._all = found

    def all(self) -> list[Experiment]:
        return list(self._all)

    def serving(self, kind: str, shopper_id: str | None, session_id: str | None,
                now: float) -> tuple[Experiment, str, Variant | None] | None:
        """(the experiment, the variant's name, the variant, None for the holdout) for a list
        of `kind` served now to this shopper or session; None outside every experiment."""
        for experiment in self._all:
            if kind in experiment.lists and experiment.active(now):
                unit = unit_of(experiment, shopper_id, session_id)
                if unit is None:
                    return None
                name = assign(experiment, unit)
                return experiment, name, next((v for v in experiment.variants if v.name == name), None)
        return None
