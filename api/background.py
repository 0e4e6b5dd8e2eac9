"""The API's background jobs: loops that run a store job off the event loop every so many
seconds while the app runs (`running`, entered by the app's lifespan).

A thread cannot be stopped midway, so shutting down waits for each job in flight to finish
(`off_the_loop`): whoever closes the store after the app has stopped closes it after its last
query, never under one."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio

from ..graph import crowd
from ..graph.store import GraphStore
from ..recommend import exploration
from ..recommend.engine import Engine
from ..recommend.freshness import Freshness

log = logging.getLogger("lookgraph.api")

T = TypeVar("T")


async def off_the_loop(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` in a worker thread. Cancelled (shutting down), it waits for the thread to
    finish, then passes the cancel on."""
    job = asyncio.ensure_future(asyncio.to_thread(call, *args))
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.wait([job])
        raise


@asynccontextmanager
async def running(loops: list[Coroutine]) -> AsyncIterator[None]:
    """Run `loops` as tasks inside the block; on leaving it, cancel them and wait until every
    job in flight has finished."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def keep_fresh(fresh: Freshness, every: float) -> None:
    """Apply the store's changes every `every` seconds, off the event loop, until shut down."""
    while True:
        await asyncio.sleep(every)
        try:
            await off_the_loop(fresh.catch_up)
        except Exception:  # a store briefly away must not stop the loop: tried again next time
            log.exception("could not read the store's changes; trying again in %s s", every)


async def keep_impressions(store: GraphStore, retention: float, clock, every: float = 3_600.0) -> None:
    """Drop impressions older than `retention` seconds, every `every` seconds, until cancelled."""
    while True:
        try:
            dropped = await off_the_loop(store.delete_impressions_before, clock() - retention)
            if dropped:
                log.info("dropped %d impressions past their retention", dropped)
        except Exception:  # a store briefly away must not stop the loop: tried again next time
            log.exception("could not drop old impressions; trying again in %s s", every)
        await asyncio.sleep(every)


async def keep_crowd(store: GraphStore, every: float) -> None:
    """Recompute the crowd's BOUGHT_WITH every `every` seconds when events came in or shoppers
    were erased since (`graph/crowd.py`), off the event loop, until shut down. Every worker
    checks; one at a time recomputes (a lease in the store)."""
    while True:
        await asyncio.sleep(every)
        try:
            if done := await off_the_loop(crowd.refresh_when_due, store):
                log.info("the crowd's BOUGHT_WITH recomputed: %(rows)s rows for %(products)s products in %(seconds)s s", done)
        except Exception:  # a store briefly away must not stop the loop: tried again next time
            log.exception("could not recompute the crowd's BOUGHT_WITH; trying again in %s s", every)


async def keep_exploration(store: GraphStore, engine: Engine, every: float) -> None:
    """Count what exploration earned every `every` seconds (`recommend/exploration.py`), off
    the event loop, until cancelled; every worker counts, one saves (compare-and-set)."""
    def group_of(product_id: str) -> str | None:
        card = engine.graph.cards([product_id]).get(product_id)
        return engine.graph.categories.group(card.category) if card is not None else None

    while True:
        await asyncio.sleep(every)
        try:
            if counted := await off_the_loop(exploration.refresh, store, group_of, engine.clock()):
                log.info("exploration counted through %(through)s: %(lists)s feeds", counted)
        except Exception:  # a store briefly away must not stop the loop: tried again next time
            log.exception("could not count what exploration earned; trying again in %s s", every)


class Progress:
    """Whether the compute threads get anywhere: idle, or an answer finished since the last
    look. A queue behind busy threads is progress (an overloaded worker is still working);
    threads that all hang on one request each are not."""

    def __init__(self, limiter: anyio.CapacityLimiter):
        self.limiter, self.finished, self._seen = limiter, 0, 0

    def made(self) -> bool:
        moved = self.finished != self._seen or self.limiter.borrowed_tokens == 0
        self._seen = self.finished
        return moved


async def keep_beating(beat: Callable[[], None], progressing: Callable[[], bool], every: float = 1.0) -> None:
    """Call `beat` every `every` seconds while the compute threads make progress: when the
    event loop blocks, or every compute thread is stuck, the beats stop and `serve --workers`'
    parent replaces this worker."""
    while True:
        if progressing():
            beat()
        await asyncio.sleep(every)
