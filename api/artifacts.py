"""Which trained artifact a running server serves, and swapping in a newer one without a restart.

`lookgraph train` writes a new version folder under `<home>/models/`, then points
`models/LATEST` at it. A server looks at `LATEST` every `check_seconds` in the background (and
at once on `POST /admin/reload`). A newer version is loaded in a worker thread (the files, the
vector index, the sources over them) while the old one goes on answering, then installed
between two requests: no request is dropped or answered by half of each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from ..embeddings.vectors import LookVectors
from ..recommend.engine import Engine
from ..recommend.ranker import LearnedRanker
from .background import off_the_loop

log = logging.getLogger("lookgraph.api")


def load_version(home: Path, version: str) -> tuple[LookVectors, LearnedRanker | None]:
    """A trained version's vectors and ranker, from `<home>/models/<version>/`."""
    folder = home / "models" / version
    return LookVectors.load(folder), LearnedRanker.load(folder)


def versions(home: Path) -> list[str]:
    """Every trained version kept under `<home>/models/`, oldest first."""
    return sorted(p.name for p in (home / "models").glob("*") if (p / "ids.json").is_file())


def _pointer(home: Path) -> str | None:
    try:
        return (home / "models" / "LATEST").read_text().strip() or None
    except FileNotFoundError:
        return None


class ServedModel:
    def __init__(self, engine: Engine, home: Path, version: str | None, clock=time.time):
        self.engine, self.home, self.version, self.clock = engine, home, version, clock
        self.loaded_at = clock()
        self._swap = asyncio.Lock()

    @classmethod
    def load_latest(cls, home: Path) -> tuple[LookVectors | None, LearnedRanker | None]:
        version = _pointer(home)
        if version is None:
            return None, None
        return load_version(home, version)

    def _prepare(self, version: str) -> tuple:
        vectors, ranker = load_version(self.home, version)
        self.engine.graph.use_vectors(vectors)
        return self.engine.prepare(vectors, ranker)

    async def refresh(self) -> bool:
        """Install the artifact `LATEST` names if it is not the one served; True if it was swapped."""
        latest = _pointer(self.home)
        if latest is None or latest == self.version:
            return False
        async with self._swap:
            if latest == self.version:
                return False
            prepared = await off_the_loop(self._prepare, latest)
            self.engine.install(prepared)
            log.warning("now serving model %s (was %s)", latest, self.version)
            self.version, self.loaded_at = latest, self.clock()
        return True

    async def watch(self, every: float) -> None:
        """Refresh every `every` seconds until cancelled; a failed load is logged and retried."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
            except Exception:  # a half-written or broken artifact must not stop the server
                log.exception("could not load the model %s; still serving %s", _pointer(self.home), self.version)

    def describe(self) -> dict:
        """The version served, when it was trained (from its name) and how long ago."""
        if self.version is None:
            return {"model": None, "model_trained_at": None, "model_age_seconds": None}
        trained = datetime.strptime(self.version.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        return {"model": self.version, "model_trained_at": trained,
                "model_age_seconds": round(max(0.0, self.clock() - trained.timestamp()), 1)}
