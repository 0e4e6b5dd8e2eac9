"""`lookgraph serve --workers N`: N processes serving one port, each on a listening socket of its own.

Why not uvicorn's own workers: they share one listening socket, and the worker whose event loop
wakes first accepts every connection then pending (asyncio accepts up to the backlog at once).
A client that opens its keep-alive connections together can so have all of them on one worker:
in `benchmarks/gorse_peer.py`, two workers at concurrency 8 served at one worker's rate in one
round of three. Here each worker binds its own socket to the port with `SO_REUSEPORT`, and the
kernel spreads new connections across the workers by their addresses (Linux; elsewhere
`SO_REUSEPORT` does not spread them, and uvicorn's workers serve).

The parent starts the workers and starts a new one when one dies, or when one has not answered
for `worker_timeout_seconds`: each worker beats every second from its event loop while its
compute threads make progress (`background.keep_beating`), so a blocked loop, every compute
thread stuck or a frozen process all stop the beats, while a worker with a queue keeps them. A worker that dies before it ever served stops them all,
since a new one would fail the same way. On SIGINT or SIGTERM the
parent passes SIGTERM on and waits while each worker finishes the requests in flight.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("lookgraph.serve")

SPREADS_CONNECTIONS = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")
"""Whether sockets of one port share its connections out (Linux 3.9+)."""


def port_socket(host: str, port: int, shared: bool = True) -> socket.socket:
    """A TCP socket bound to host:port; `shared`: with SO_REUSEPORT, so that every worker binds one."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int, graceful: int, ready, beat) -> None:
    import uvicorn

    from ..cli import served_app

    def heartbeat() -> None:
        beat.value = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine

    server = uvicorn.Server(uvicorn.Config(served_app(heartbeat), host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=graceful))

    def report_ready() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.05)
        if server.started:
            ready.set()

    threading.Thread(target=report_ready, daemon=True).start()
    server.run(sockets=[port_socket(host, port)])


@dataclass
class Worker:
    process: multiprocessing.process.BaseProcess
    ready: Any
    """Set once the worker serves."""
    beat: Any
    """When the worker last answered (`time.monotonic()`), a shared double."""
    serving_since: float | None = None
    """When the parent first saw it ready."""

    def silent_for(self, now: float) -> float:
        """Seconds since the worker last answered; 0 while it starts (loading a model may be slow)."""
        if not self.ready.is_set():
            return 0.0
        if self.serving_since is None:
            self.serving_since = now
        return now - max(self.beat.value, self.serving_since)


def serve(host: str, port: int, workers: int, graceful: int = 30, timeout: float = 60.0) -> int:
    """Serve until SIGINT or SIGTERM; the exit status (1: a worker could not start). A worker
    silent for `timeout` seconds (0: never checked) is killed and replaced."""
    port_socket(host, port, shared=False).close()  # taken: say so here, not in every worker
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter each: nothing of this one inherited
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    def start() -> Worker:
        ready, beat = spawn.Event(), spawn.Value("d", 0.0, lock=False)
        process = spawn.Process(target=_worker, args=(host, port, graceful, ready, beat), daemon=False)
        process.start()
        return Worker(process, ready, beat)

    running, failed = [start() for _ in range(workers)], False
    while not stopping.wait(0.5):
        for i, worker in enumerate(running):
            process = worker.process
            if process.is_alive():
                silent = worker.silent_for(time.monotonic())
                if not timeout or silent < timeout:
                    continue
                # Blocked or frozen, it would hold its connections unanswered: SIGTERM waits on
                # the very requests that are stuck, so it is killed outright.
                log.error("a worker (pid %s) has not answered for %.0f s: killing it and starting another",
                          process.pid, silent)
                process.kill()
                process.join()
                running[i] = start()
                continue
            if not worker.ready.is_set():
                log.error("a worker (pid %s) exited with %s before it served: stopping", process.pid, process.exitcode)
                failed = True
                stopping.set()
                break
            log.warning("a worker (pid %s) exited with %s: starting another", process.pid, process.exitcode)
            running[i] = start()
    for worker in running:
        if worker.process.is_alive():
            os.kill(worker.process.pid, signal.SIGTERM)
    for worker in running:
        worker.process.join()
    return 1 if failed else 0
