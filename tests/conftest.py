"""Shared fixtures: small seeded data, and the contract-test `store` over both stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from lookgraph.graph.sqlite_store import SQLiteGraphStore
from lookgraph.loaders.demo import DemoSpec, write_demo_store

# The real datasets sit beside the checkout (../shared/data) unless LOOKGRAPH_DATA says otherwise.
DATA = Path(os.environ.get("LOOKGRAPH_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
SMALL = DemoSpec(products=300, shoppers=40, events=2_000, seed=11)


NEO4J_REQUIRED = os.environ.get("LOOKGRAPH_REQUIRE_NEO4J") == "1"
"""Set by scripts/test.sh once it has a Neo4j server: a Neo4j test then fails rather than skips."""
EXECUTED: set[str] = set()
"""Every Cypher statement (`file.name`) the Neo4j store ran in this test session."""


def _record_statements() -> None:
    from lookgraph.graph.neo4j_store import Neo4jGraphStore

    for method in ("_read", "_write"):
        run = getattr(Neo4jGraphStore, method)

        def recording(self, key, _run=run, **params):
            result = _run(self, key, **params)
            EXECUTED.add(key)
            return result

        setattr(Neo4jGraphStore, method, recording)
    run_many = Neo4jGraphStore._read_many

    def recording_many(self, *statements):
        result = run_many(self, *statements)
        EXECUTED.update(key for key, _ in statements)
        return result

    Neo4jGraphStore._read_many = recording_many
    in_write = Neo4jGraphStore._in_write

    def recording_in_write(self, work):
        def recorded(run):
            def run_and_record(key, **params):
                EXECUTED.add(key)
                return run(key, **params)

            return work(run_and_record)

        return in_write(self, recorded)

    Neo4jGraphStore._in_write = recording_in_write


_record_statements()


def neo4j_store(batch_size: int = 500, empty: bool = True):
    """A Neo4j store on NEO4J_URI, emptied unless `empty=False`, or a skip (a failure where
    scripts/test.sh started a server)."""
    if not os.environ.get("NEO4J_URI"):
        if NEO4J_REQUIRED:
            pytest.fail("LOOKGRAPH_REQUIRE_NEO4J=1 but NEO4J_URI is not set")
        pytest.skip("NEO4J_URI is not set: no Neo4j server to run this test against the Neo4j store "
                    "(scripts/test.sh starts one where Java 17+ and Maven are installed)")
    from lookgraph.graph.neo4j_store import Neo4jGraphStore
    from lookgraph.settings import Settings

    s = Settings()
    store = Neo4jGraphStore(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, batch_size=batch_size)
    if empty:
        store._write("admin.delete_everything")
    return store


def pytest_sessionfinish(session, exitstatus):
    """After the whole suite on Neo4j: every statement of cypher/*.cypher must have run on the server."""
    from lookgraph.graph.cypher import library

    whole_suite = session.config.args_source is pytest.Config.ArgsSource.TESTPATHS and not (
        session.config.option.keyword or session.config.option.markexpr or getattr(session.config.option, "lf", False))
    if not (EXECUTED and whole_suite and exitstatus == 0):
        return
    missing = sorted(set(library()) - EXECUTED)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    reporter.write_line(f"Neo4j: {len(library()) - len(missing)} of {len(library())} Cypher statements executed "
                        "on the server")
    if missing:
        reporter.write_line("never executed on Neo4j: " + ", ".join(missing), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(params=["embedded", "neo4j"])
def store(request, tmp_path):
    """An empty store of each kind; every contract test runs once per store."""
    graph = SQLiteGraphStore(tmp_path / "graph.db") if request.param == "embedded" else neo4j_store()
    yield graph
    graph.close()


@pytest.fixture
def embedded(tmp_path):
    graph = SQLiteGraphStore(tmp_path / "graph.db")
    yield graph
    graph.close()


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory) -> Path:
    """A small seeded demo store in the native format (CSV)."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo_store(folder, SMALL)
    return folder


def demo_in_store(folder: Path, spec: DemoSpec, without: tuple[str, ...] = ()) -> SQLiteGraphStore:
    """A seeded demo store written under `folder` (less the entity files named in `without`,
    e.g. "looks") and loaded into an embedded store beside it."""
    from lookgraph.loaders.native import NativeSource
    from lookgraph.loaders.pipeline import load

    write_demo_store(folder / "demo", spec)
    for kind in without:
        (folder / "demo" / f"{kind}.csv").unlink(missing_ok=True)
    store = SQLiteGraphStore(folder / "graph.db")
    load(NativeSource(folder / "demo"), store)
    return store


def dataset(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset not present at {path}")
    return path
