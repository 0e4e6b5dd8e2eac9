"""What a serving process holds of the store, kept fresh from the store's change log.

Every write that a process keeps a copy of is recorded by the store in the write's own
transaction (`GraphStore.changes_since`): a product (availability, attributes, category), a
look, a rule, an experiment, the categories, an erasure; a bulk load or `lookgraph train`'s mined looks as one
change of every record of its kind. `catch_up` applies, in order, what came after the last
change this process applied: right after the process's own writes (read-your-writes), and every
`LOOKGRAPH_FRESHNESS_SECONDS` in the background for everyone else's (another worker, the CLI, a
load, a training run). Events change no copy but the crowd's statistics: a new watermark of the
event table marks them due (`Traversal.events_added`), and a newer BOUGHT_WITH (recomputed by
whichever process, `graph/crowd.py`) is read again (`Traversal.crowd_refreshed`), and so are
exploration's counts (`exploration.py`). Nothing that must agree is decided by one
process alone.
"""

from __future__ import annotations

import logging
import threading

from ..graph.store import GraphStore, UnknownNode
from .exploration import arms_of

log = logging.getLogger("lookgraph.freshness")

WHOLE = "*"


class Freshness:
    def __init__(self, engine, store: GraphStore):
        self.engine, self.store = engine, store
        self.seq = store.latest_change()
        self.events = store.events_watermark()
        self.crowd = store.bought_with_state()
        self.explored = (store.exploration_state() or {}).get("through")
        self._lock = threading.Lock()

    def catch_up(self) -> int:
        """Apply every change after the last one applied; returns how many were applied."""
        with self._lock:
            applied = 0
            while changes := self.store.changes_since(self.seq):
                if changes[0][0] != self.seq + 1:  # older changes were dropped: read everything again
                    log.warning("changes %d to %d are gone from the log: reloading the graph", self.seq + 1, changes[0][0] - 1)
                    self.engine.reload_graph()
                    self.seq = self.store.latest_change()
                    break
                self._apply(changes)
                self.seq = changes[-1][0]
                applied += len(changes)
            watermark = self.store.events_watermark()
            if watermark != self.events:
                self.events = watermark
                self.engine.graph.events_added(())
            crowd = self.store.bought_with_state()
            if crowd != self.crowd:  # any process recomputed BOUGHT_WITH
                self.crowd = crowd
                self.engine.graph.crowd_refreshed()
            explored = self.store.exploration_state()
            if (explored or {}).get("through") != self.explored:  # any process counted exploration anew
                self.explored = explored["through"]
                self.engine.exploration = arms_of(explored)
            return applied

    def _apply(self, changes: list[tuple[int, str, str]]) -> None:
        engine, store = self.engine, self.store
        if any(kind == "experiment" for _, kind, _ in changes):
            engine.experiments.changed()
            engine.warm_versions()
        if any(key == WHOLE or kind == "category" for _, kind, key in changes if kind not in ("rule", "experiment")):
            engine.reload_graph()  # re-read products, looks, categories and rules whole
        else:
            for kind, key in dict.fromkeys((kind, key) for _, kind, key in changes):
                try:
                    if kind == "product":
                        product = store.get("products", key)
                        engine.graph.product_added(product)
                        engine.merch.product_changed(product)
                    elif kind == "availability":  # what the walks and the rules hold is unchanged
                        engine.merch.availability_changed(store.get("products", key))
                    elif kind == "look":
                        engine.graph.look_added(store.get("looks", key))
                except UnknownNode:
                    continue  # gone since: a later change says so
            if rules := [key for _, kind, key in changes if kind == "rule"]:
                engine.merch.rules_changed(rules)
        for key in dict.fromkeys(key for _, kind, key in changes if kind == "shopper"):
            engine.forget_erased(key)
