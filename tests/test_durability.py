"""The embedded store keeps acknowledged writes through `kill -9` and serves readers while
a writer appends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading

from lookgraph.graph.model import Category, Event, Product
from lookgraph.graph.sqlite_store import SQLiteGraphStore

WRITER = textwrap.dedent(
    """
    import sys
    from lookgraph.graph.model import Event
    from lookgraph.graph.sqlite_store import SQLiteGraphStore
    store = SQLiteGraphStore(sys.argv[1])
    i = 0
    while True:
        store.append_events([Event(f"e{i}", f"s{i % 7}", "p1", "view", 1000.0 + i, f"u{i % 7}")])
        print(f"acked e{i}", flush=True)  # printed only after append_events returned
        i += 1
    """
)


def seeded(path) -> SQLiteGraphStore:
    store = SQLiteGraphStore(path)
    with store.bulk_load() as writer:
        writer.write("categories", [Category("c", "C")])
        writer.write("products", [Product("p1", "P", "c")])
    return store


def test_acknowledged_events_survive_kill_9(tmp_path):
    path = tmp_path / "graph.db"
    seeded(path).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acked = []
    for line in writer.stdout:
        acked.append(line.split()[1])
        if len(acked) == 200:
            break
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    store = SQLiteGraphStore(path)
    stored = {e.id for s in range(7) for e in store.events(session_id=f"s{s}")}
    assert set(acked) <= stored
    assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_readers_run_while_a_writer_appends(tmp_path):
    store = seeded(tmp_path / "graph.db")
    done = threading.Event()
    seen_counts: list[list[int]] = [[], [], []]
    errors: list[BaseException] = []

    def read(seen: list[int]):
        try:
            while not done.is_set():
                seen.append(len(store.events(shopper_id="u0")))
        except BaseException as err:  # surfaced by the assertion below
            errors.append(err)

    readers = [threading.Thread(target=read, args=(seen,)) for seen in seen_counts]
    for r in readers:
        r.start()
    for i in range(300):
        store.append_events([Event(f"e{i}", "s0", "p1", "view", float(i), "u0")])
    done.set()
    for r in readers:
        r.join()
    assert not errors
    for seen in seen_counts:
        assert seen and seen == sorted(seen)  # each reader only ever sees the log grow
    assert len(store.events(shopper_id="u0")) == 300


def test_a_thread_that_ended_leaves_no_open_connection_behind(tmp_path):
    """A client that starts a thread per request (a test client used without its context) must
    not leave a connection, and its open files, behind each one."""
    import threading

    from lookgraph.graph.sqlite_store import SQLiteGraphStore

    store = SQLiteGraphStore(tmp_path / "graph.db")
    for _ in range(20):
        worker = threading.Thread(target=lambda: store.known_ids("products"))
        worker.start()
        worker.join()
    store.known_ids("products")  # a new connection here closes the ended threads' ones
    assert len(store._connections) <= 2
    store.close()
