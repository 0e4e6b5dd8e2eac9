"""What the API showed, kept in the store: every served list is an `Impression`, named by its
`recommendation_id` in the answer.

An impression holds the list (feed, complete_the_look, session, outbound), who and where it was
for, each item in position with the source that offered it and the kind of path that explains it,
the model and ranker versions, the experiment's variant (`experiments.py`) and the request's context.

Writing stays off the request's path: `ImpressionLog.record` puts the impression on a bounded
queue and returns; one background thread writes what is queued in batches (`GraphStore.
append_impressions`) every `flush_seconds` or once a batch is full, and writes the rest when the
server shuts down. A full queue drops the impression and counts it (`/metrics`), so a slow
store never slows an answer; a crash loses what was queued, at most the last `flush_seconds`.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable

from ..graph.model import Impression, ShownItem
from .explanations import Answer

log = logging.getLogger("lookgraph.impressions")


def new_recommendation_id() -> str:
    return uuid.uuid4().hex


def impression_of(answer: Answer, kind: str, request, model: str | None, ranker: str) -> Impression:
    """The answer as the store keeps it: its items in position, who and what it was for."""
    ask = request.ask
    items = tuple(ShownItem(item.product_id, item.source, ">".join(item.paths[0].relationships) if item.paths else "",
                            item.exploration) for item in answer.items)
    context = {"k": ask.k, "location": ask.location, "gift": ask.gift, "categories": list(ask.categories),
               "explore": ask.explore, "items": list(ask.items), "explore_slots": request.explore_slots}
    return Impression(answer.recommendation_id, kind, request.now, items, request.state.shopper_id, ask.session_id,
                      ask.product_id, model, ranker, answer.variant, context)


class ImpressionLog:
    """A bounded queue of impressions and the thread that writes them to `store`."""

    def __init__(self, store, capacity: int = 10_000, flush_seconds: float = 1.0, batch: int = 1_000,
                 counted: Callable[[str, int], None] = lambda outcome, n: None):
        self.store, self.flush_seconds, self.batch = store, flush_seconds, batch
        self.counted = counted
        """`counted("written" | "dropped", n)`: for the server's metrics."""
        self._queue: queue.Queue[Impression] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the writer thread (the server does when it starts serving; until then, and
        without it, `flush` writes what is queued)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="impression-log", daemon=True)
            self._thread.start()

    def record(self, impression: Impression) -> bool:
        """Queue `impression` for the store; False (and counted as dropped) when the queue is full."""
        try:
            self._queue.put_nowait(impression)
            return True
        except queue.Full:
            self.counted("dropped", 1)
            return False

    def flush(self) -> int:
        """Write everything queued now (the writer thread does this every `flush_seconds`)."""
        written = 0
        while batch := self._take():
            written += self._write(batch)
        return written

    def close(self) -> None:
        """Stop the writer and write what is still queued (on shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 2 * self.flush_seconds))
        self.flush()

    def _take(self) -> list[Impression]:
        batch = []
        while len(batch) < self.batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Impression]) -> int:
        try:
            self.store.append_impressions(batch)
        except Exception:  # the store away: these are lost and counted, the next batch is tried
            log.exception("could not write %d impressions", len(batch))
            self.counted("dropped", len(batch))
            return 0
        self.counted("written", len(batch))
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()
