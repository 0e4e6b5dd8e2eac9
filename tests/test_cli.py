"""The `lookgraph` command line, as a user runs it."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from typer.testing import CliRunner

from lookgraph.api.workers import SPREADS_CONNECTIONS
from lookgraph.cli import app

runner = CliRunner()


def test_demo_load_stats_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    demo = tmp_path / "demo"
    result = runner.invoke(app, ["demo-data", str(demo), "--products", "200", "--shoppers", "10", "--events", "300"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["load", str(demo)])
    assert result.exit_code == 0, result.output
    assert "300 new events" in result.output
    result = runner.invoke(app, ["load", str(demo)])
    assert "(0 new events)" in result.output
    result = runner.invoke(app, ["stats", "--json"])
    stats = json.loads(result.output)
    assert stats["nodes"]["Product"] == 200 and stats["relationships"]["INTERACTED"] == 300
    assert stats["top_categories"][0]["id"] == "fashion"
    assert (tmp_path / "home" / "graph.db").exists()


def test_bad_input_exits_2_with_the_place_at_fault(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    demo = tmp_path / "demo"
    runner.invoke(app, ["demo-data", str(demo), "--products", "200", "--shoppers", "5", "--events", "50"])
    with open(demo / "events.csv", "a", encoding="utf-8") as f:
        f.write("e-bad,2026-01-01,s-x,p999999,view,u000001,,\n")
    result = runner.invoke(app, ["load", str(demo)])
    assert result.exit_code == 2
    assert "events.csv:52: product_id: unknown product 'p999999'" in result.output
    assert "nothing was loaded" in result.output
    assert json.loads(runner.invoke(app, ["stats", "--json"]).output)["nodes"]["Product"] == 0


def test_neo4j_without_a_uri_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("NEO4J_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["stats", "--store", "neo4j"])
    assert result.exit_code == 2 and "needs NEO4J_URI" in result.output


def test_every_command_has_help():
    for command in ([], ["demo-data"], ["load"], ["stats"], ["train"], ["evaluate"], ["serve"], ["export"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_neo4j_admin_export_has_importer_headers_and_consistent_ids(tmp_path, monkeypatch):
    import csv

    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    demo = tmp_path / "demo"
    runner.invoke(app, ["demo-data", str(demo), "--products", "200", "--shoppers", "10", "--events", "300"])
    runner.invoke(app, ["load", str(demo)])
    out = tmp_path / "export"
    result = runner.invoke(app, ["export", str(out), "--format", "neo4j-admin"])
    assert result.exit_code == 0, result.output

    def rows(name):
        with open(out / f"{name}.csv", encoding="utf-8", newline="") as f:
            return list(csv.reader(f))

    products, interacted = rows("product"), rows("interacted")
    assert products[0] == ["id:ID(Product)", "name", "price:float"] and len(products) == 201
    assert interacted[0][:2] == [":START_ID(Session)", ":END_ID(Product)"] and len(interacted) == 301
    ids = {label: {r[0] for r in rows(label.lower())[1:]} for label in ("Product", "Session", "Shopper", "Look", "Category")}
    assert all(r[0] in ids["Session"] and r[1] in ids["Product"] for r in interacted[1:])
    assert all(r[0] in ids["Look"] and r[1] in ids["Product"] for r in rows("includes")[1:])
    assert all(r[0] in ids["Shopper"] and r[1] in ids["Session"] for r in rows("had_session")[1:])
    script = (out / "import.sh").read_text()
    assert "neo4j-admin} database import full" in script and "--relationships=INTERACTED=interacted.csv" in script


def test_serve_with_workers_says_what_is_missing_once_before_starting_any(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LOOKGRAPH_API_KEYS", raising=False)
    monkeypatch.delenv("LOOKGRAPH_API_KEYS_FILE", raising=False)
    result = runner.invoke(app, ["serve", "--workers", "2"])
    assert result.exit_code == 2 and "LOOKGRAPH_API_KEYS" in result.output


def test_serve_names_a_bad_policy_setting_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path))
    monkeypatch.setenv("LOOKGRAPH_API_KEYS", "a-long-random-key-0123456789:admin")
    monkeypatch.setenv("LOOKGRAPH_POLICY_EXPLORE_SHARE", "5")
    for workers in ("1", "2"):
        result = CliRunner().invoke(app, ["serve", "--workers", workers])
        assert result.exit_code != 0
        assert "LOOKGRAPH_POLICY_EXPLORE_SHARE: Input should be less than or equal to 1 (got '5')" in result.output


# -- several workers -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreads connections on Linux only")
def test_workers_share_out_connections_opened_at_once_and_stop_on_sigterm(tmp_path):
    """Each worker listens on a socket of its own (`api/workers.py`): 16 keep-alive connections
    opened together land on both workers, not all on whichever woke first."""
    port = _free_port()
    env = dict(os.environ, LOOKGRAPH_HOME=str(tmp_path), LOOKGRAPH_API_KEYS="a-long-random-key-0123456789:read")
    server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(port), "--workers", "2",
                               "--no-access-log"], env=env, stderr=subprocess.DEVNULL)
    try:
        def listening() -> int:  # workers with their socket open: each starts in its own time
            return sum(any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in child.net_connections())
                       for child in psutil.Process(server.pid).children(recursive=True))

        for _ in range(600):
            if listening() == 2:
                break
            time.sleep(0.1)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=10) for _ in range(16)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda c: c.connect(), connections))
        for c in connections:
            c.request("GET", "/health")
            assert c.getresponse().read()
        held = [sum(1 for s in child.net_connections() if s.status == psutil.CONN_ESTABLISHED and s.laddr.port == port)
                for child in psutil.Process(server.pid).children(recursive=True)]
        assert sum(held) == 16 and sum(1 for n in held if n) == 2, held
        for c in connections:
            c.close()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0  # the workers finished, then the parent
    assert not psutil.pid_exists(server.pid) or psutil.Process(server.pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.skipif(not SPREADS_CONNECTIONS, reason="SO_REUSEPORT spreads connections on Linux only")
def test_a_worker_that_stops_answering_is_replaced(tmp_path):
    """A frozen worker (here stopped by SIGSTOP; a blocked event loop or every compute thread
    stuck look the same to its parent: no beats) is killed after LOOKGRAPH_WORKER_TIMEOUT_SECONDS
    and another takes its place."""
    port = _free_port()
    env = dict(os.environ, LOOKGRAPH_HOME=str(tmp_path), LOOKGRAPH_API_KEYS="a-long-random-key-0123456789:read",
               LOOKGRAPH_WORKER_TIMEOUT_SECONDS="3")
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "lookgraph.cli", "serve", "--port", str(port), "--workers", "2",
                                   "--no-access-log"], env=env, stderr=stderr)
    try:
        def workers() -> set[int]:
            return {child.pid for child in psutil.Process(server.pid).children(recursive=True)
                    if any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in child.net_connections())}

        def wait_for(condition) -> None:
            for _ in range(600):
                if condition():
                    return
                time.sleep(0.1)
            raise AssertionError(log.read_text())

        wait_for(lambda: len(workers()) == 2)
        first = workers()
        frozen = min(first)
        time.sleep(2)  # serving for a while: its beats are what stop
        os.kill(frozen, signal.SIGSTOP)
        wait_for(lambda: not psutil.pid_exists(frozen) and len(workers()) == 2)
        assert len(workers() & first) == 1  # the other one kept serving
        assert "has not answered for" in log.read_text()
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0


def test_serve_with_workers_on_a_port_taken_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setenv("LOOKGRAPH_HOME", str(tmp_path))
    monkeypatch.setenv("LOOKGRAPH_API_KEYS", "a-long-random-key-0123456789:read")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["serve", "--workers", "2", "--port", str(port)])
    assert result.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in result.output
