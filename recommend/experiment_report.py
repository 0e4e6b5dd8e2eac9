"""An experiment's results as the console and `GET /experiments/{id}/report` show them.

The unit of analysis is the unit of assignment (a shopper, or a session): units are
independent, lists and items are not (one shopper's twenty slots rise and fall together). A
unit counts from its first list served in the experiment; its outcomes are the events credited
to the experiment's lists (`attribution.py`, within the attribution window), plus whether it
bought anything at all afterwards (so that a variant that only moves purchases into the
recommendations, without selling more, shows as such). Per unit:

    click_through     1 if it viewed an item it was shown, else 0
    add_to_cart       1 if it carted one
    conversion        1 if it bought one
    revenue_per_unit  the price of what it bought of them
    any_purchase      1 if it bought anything after its first list

Each variant against the first (the control), on the experiment's `metric`, by the mSPRT
(`sequential.py`) at alpha / (variants - 1), looked at once per `bucket` (a day): a p-value and a
confidence interval that stay valid however often anyone looks, and a decision only when the
p-value falls below alpha. The series of looks is what the console plots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..graph.model import Experiment
from ..graph.store import UnknownNode
from . import sequential
from .attribution import attribute
from .experiments import HOLDOUT, unit_of

METRICS = ("click_through", "add_to_cart", "conversion", "revenue_per_unit", "any_purchase")
_CREDITED = {"view": "click_through", "cart": "add_to_cart", "purchase": "conversion"}
ALPHA = 0.05


@dataclass
class _Unit:
    variant: str
    first: float
    lists: int = 0
    shown: int = 0
    outcomes: dict = field(default_factory=lambda: defaultdict(list))
    """metric -> [(when, value)]: a 0/1 metric's first time only."""


def experiment_report(store, experiment: Experiment, now: float, window: float, bucket: float = 86_400.0) -> dict:
    """The experiment's units, outcomes, comparisons and daily looks, as of `now`."""
    until = min(now, experiment.ends_at) if experiment.ends_at is not None else now
    impressions = store.impressions(since=experiment.starts_at, until=until, limit=None, experiment=experiment.id)
    outcomes = store.outcomes_between(experiment.starts_at, until + window)
    units: dict[str, _Unit] = {}
    for impression in impressions:
        unit = unit_of(experiment, impression.shopper_id, impression.session_id)
        if unit is None:
            continue
        found = units.setdefault(unit, _Unit(impression.variant.split("/", 1)[1], impression.at))
        found.lists += 1
        found.shown += len(impression.items)
    prices: dict[str, float] = {}

    def price(product_id: str) -> float:
        if product_id not in prices:
            try:
                prices[product_id] = store.get("products", product_id).price or 0.0
            except UnknownNode:
                prices[product_id] = 0.0
        return prices[product_id]

    for credit in attribute(impressions, outcomes, window):
        unit = units.get(unit_of(experiment, credit.impression.shopper_id, credit.impression.session_id))
        if unit is None:
            continue
        metric = _CREDITED[credit.event.type]
        unit.outcomes[metric].append((credit.event.ts, 1.0))
        if metric == "conversion":
            unit.outcomes["revenue_per_unit"].append((credit.event.ts, price(credit.event.product_id)))
    for event, _ in outcomes:
        unit = units.get(unit_of(experiment, event.shopper_id, event.session_id))
        if unit is not None and event.type == "purchase" and event.ts >= unit.first:
            unit.outcomes["any_purchase"].append((event.ts, 1.0))
    looks = _look_times(experiment.starts_at, until, bucket)
    variants = [v.name for v in experiment.variants] + ([HOLDOUT] if experiment.holdout > 0 else [])
    return {
        "experiment": experiment.id, "status": _status(experiment, now), "since": experiment.starts_at, "until": until,
        "metric": experiment.metric, "alpha": ALPHA, "window_seconds": window,
        "variants": {name: _figures([u for u in units.values() if u.variant == name], until + window) for name in variants},
        **_comparisons(experiment, units, looks, window),
    }


def _status(experiment: Experiment, now: float) -> str:
    return "scheduled" if now < experiment.starts_at else "running" if experiment.active(now) else "ended"


def _look_times(start: float, until: float, bucket: float) -> list[float]:
    """The end of each bucket since the start, and `until` itself."""
    times = list(np.arange(start + bucket, until, bucket)) if until > start else []
    return [float(t) for t in times] + [until]


class _Arm:
    """One variant's units as arrays, for counting at many looks: each unit's first list, the
    first time of each 0/1 outcome (inf: never), and the revenue's (unit, time, amount)."""

    def __init__(self, units: list[_Unit]):
        self.first = np.array([u.first for u in units], dtype=np.float64)
        self.earliest = {m: np.array([min((t for t, _ in u.outcomes.get(m, ())), default=np.inf) for u in units])
                         for m in METRICS if m != "revenue_per_unit"}
        paid = [(i, t, v) for i, u in enumerate(units) for t, v in u.outcomes.get("revenue_per_unit", ())]
        self.paid = np.array(paid, dtype=np.float64).reshape(-1, 3)

    def values(self, metric: str, at: float) -> np.ndarray:
        """Each unit exposed by `at`: its metric counted up to `at`."""
        exposed = self.first <= at
        if metric == "revenue_per_unit":
            counted = self.paid[self.paid[:, 1] <= at]
            totals = np.bincount(counted[:, 0].astype(np.int64), weights=counted[:, 2], minlength=len(self.first))
            return totals[exposed]
        return (self.earliest[metric][exposed] <= at).astype(np.float64)


def _figures(units: list[_Unit], at: float) -> dict:
    figures = {"units": len(units), "lists": sum(u.lists for u in units), "shown": sum(u.shown for u in units)}
    arm = _Arm(units)
    for metric in METRICS:
        values = arm.values(metric, at)
        figures[metric] = round(float(values.mean()), 6) if len(values) else 0.0
    return figures


def _comparisons(experiment: Experiment, units: dict[str, _Unit], looks: list[float], window: float) -> dict:
    """Each variant against the control at every look: the running always-valid p-value, the
    interval at the latest look, and the series the console plots."""
    metric, names = experiment.metric, [v.name for v in experiment.variants]
    alpha = ALPHA / max(len(names) - 1, 1)
    by_variant = {name: _Arm([u for u in units.values() if u.variant == name]) for name in names}
    series, running = [], {name: 1.0 for name in names[1:]}
    latest: dict[str, dict] = {}
    for i, at in enumerate(looks):
        moment = at + (window if i == len(looks) - 1 else 0.0)  # the last look waits for the window's outcomes
        stats = {}
        for name in names:
            values = by_variant[name].values(metric, moment)
            stats[name] = sequential.Arm(len(values), float(values.mean()) if len(values) else 0.0,
                                         float(values.var(ddof=1)) if len(values) > 1 else 0.0, int((values > 0).sum()))
        tau = sequential.scale(list(stats.values()), experiment.minimum_effect)
        for name, arm in stats.items():
            low, high = sequential.mean_interval(arm.n, arm.mean, arm.var, tau, alpha) if arm.n > 1 and tau > 0 else (None, None)
            series.append({"at": at, "variant": name, "units": arm.n, "mean": arm.mean, "low": low, "high": high})
        control = stats[names[0]]
        for name in names[1:]:
            c = sequential.decide(control, stats[name], tau, alpha)
            if c is None:
                latest[name] = {"variant": name, "against": names[0], "ready": False}
                continue
            running[name] = min(running[name], c.p_value)
            relative = (lambda d: d / control.mean) if control.mean else (lambda d: None)
            latest[name] = {"variant": name, "against": names[0], "ready": True, "difference": c.difference,
                            "low": c.low, "high": c.high, "uplift": relative(c.difference),
                            "uplift_low": relative(c.low), "uplift_high": relative(c.high)}
    comparisons = []
    for name in names[1:]:
        found = latest.get(name, {"variant": name, "against": names[0], "ready": False})
        p = running[name]
        found["p_value"] = p
        found["decision"] = ("better" if found.get("difference", 0) > 0 else "worse") if found["ready"] and p < alpha \
            else "too few units yet" if not found["ready"] else "no difference found yet"
        comparisons.append(found)
    return {"comparisons": comparisons, "looks": series, "alpha_per_comparison": alpha}
