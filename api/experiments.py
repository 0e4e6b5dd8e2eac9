"""The experiments' routes: define an A/B test, end it, read its results. The logic is in
`recommend/experiments.py` (assignment), `recommend/experiment_report.py` (the figures) and
`recommend/sequential.py` (the test)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated

from fastapi import FastAPI, HTTPException, Path

from ..graph.model import Experiment, Variant
from ..graph.store import UnknownNode
from ..recommend.experiments import clash
from . import schemas


def experiment_out(experiment: Experiment, now: float) -> schemas.ExperimentOut:
    when = lambda t: datetime.fromtimestamp(t, timezone.utc) if t is not None else None  # noqa: E731
    status = "scheduled" if now < experiment.starts_at else "running" if experiment.active(now) else "ended"
    return schemas.ExperimentOut(
        id=experiment.id, name=experiment.name, unit=experiment.unit, lists=list(experiment.lists),
        variants=[schemas.VariantIn(name=v.name, share=v.share, policy=v.policy, ranker=v.ranker, model=v.model,
                                    rules=v.rules) for v in experiment.variants],
        holdout=experiment.holdout, starts_at=when(experiment.starts_at), ends_at=when(experiment.ends_at),
        metric=experiment.metric, minimum_effect=experiment.minimum_effect, created_at=when(experiment.created_at),
        status=status)


def add_experiments(app: FastAPI, store, clock: Callable[[], float], caught_up: Callable[[], object],
                    results: Callable[[str], dict], end: Callable[[str], Experiment], guarded: Callable[..., dict],
                    invalid, versions: Callable[[], list[str]]) -> None:
    """The routes on `app`. `caught_up()`: this process applies the store's changes (its own
    write included) before answering, every other within `LOOKGRAPH_FRESHNESS_SECONDS`;
    `results` and `end` are what the console's pages call too; `versions()`: the trained
    versions a variant may name."""

    def known(experiment_id: str) -> Experiment:
        found = next((e for e in store.experiments() if e.id == experiment_id), None)
        if found is None:
            raise UnknownNode("Experiment", experiment_id)
        return found

    @app.post("/experiments", response_model=schemas.ExperimentOut, status_code=201, **guarded("admin", 409, 413),
              tags=["experiments"], summary="Start an A/B test")
    def post_experiment(body: schemas.ExperimentIn) -> schemas.ExperimentOut:
        """Split the units (shoppers, or sessions) served the lists named between variants, by a
        hash of the experiment and the unit: the same in every worker, for the whole experiment.
        Every answer inside it names its variant (`variant`), and every list kept records it.
        Two experiments may not serve the same list kind at the same time (409). An experiment
        is not changed once made; end it (`POST /experiments/{id}/end`) and start another."""
        now = clock()
        starts = body.starts_at.timestamp() if body.starts_at else now
        ends = body.ends_at.timestamp() if body.ends_at else None
        if ends is not None and ends <= now:
            raise invalid(["ends_at"], "ends_at is not in the future")
        trained = None
        for i, variant in enumerate(body.variants):
            if variant.model not in ("served", "none") and variant.model not in (trained := trained or versions()):
                raise invalid(["variants", i, "model"], f"no trained version {variant.model!r} under models/; the "
                              f"versions are {', '.join(trained) or 'none yet (run lookgraph train)'}")
        experiment = Experiment(
            body.id, body.name, tuple(Variant(v.name, v.share, dict(v.policy), v.ranker if v.model != "none" else "hand-set",
                                              v.model, v.rules) for v in body.variants),
            body.unit, tuple(body.lists), body.holdout, starts, ends, body.metric, body.minimum_effect, now)
        existing = store.experiments()
        if any(e.id == experiment.id for e in existing):
            raise HTTPException(409, f"Experiment {experiment.id!r} already exists; experiments are not replaced: "
                                     "give the new one another id")
        other = clash(experiment, [e for e in existing if e.ends_at is None or e.ends_at > now])
        if other is not None:
            lists = ", ".join(sorted(set(other.lists) & set(experiment.lists)))
            raise HTTPException(409, f"experiment {other.id!r} serves {lists} lists in that time; end it first "
                                     f"(POST /experiments/{other.id}/end) or pick other lists or times")
        store.create_experiment(experiment)
        caught_up()
        return experiment_out(experiment, now)

    @app.get("/experiments", response_model=list[schemas.ExperimentOut], **guarded("admin"), tags=["experiments"],
             summary="Every experiment")
    def list_experiments() -> list[schemas.ExperimentOut]:
        now = clock()
        return [experiment_out(e, now) for e in store.experiments()]

    @app.get("/experiments/{experiment_id}", response_model=schemas.ExperimentOut, **guarded("admin", 404),
             tags=["experiments"], summary="One experiment")
    def get_experiment(experiment_id: Annotated[str, Path(**schemas.SLUG)]) -> schemas.ExperimentOut:
        return experiment_out(known(experiment_id), clock())

    @app.post("/experiments/{experiment_id}/end", response_model=schemas.ExperimentOut, **guarded("admin", 404),
              tags=["experiments"], summary="End an experiment now")
    def end_experiment(experiment_id: Annotated[str, Path(**schemas.SLUG)]) -> schemas.ExperimentOut:
        """From the next request on, its units are served as without it; its results stay."""
        return experiment_out(end(experiment_id), clock())

    @app.get("/experiments/{experiment_id}/report", response_model=schemas.ExperimentReport, **guarded("admin", 404),
             tags=["experiments"], summary="An experiment's results")
    def report(experiment_id: Annotated[str, Path(**schemas.SLUG)]) -> schemas.ExperimentReport:
        """Per variant: units, lists, and the per-unit metrics; each variant against the first
        by a mixture sequential test (valid however often it is looked at: README,
        "Experiments"), with its interval, p-value and decision; the chosen metric at every
        daily look."""
        return schemas.ExperimentReport(**results(experiment_id))
