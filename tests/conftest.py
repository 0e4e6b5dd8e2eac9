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


def _neo4j_store():
    if not os.environ.get("NEO4J_URI"):
        pytest.skip("NEO4J_URI is not set: no Neo4j server to run this test against the Neo4j store")
    from lookgraph.graph.neo4j_store import Neo4jGraphStore
    from lookgraph.settings import Settings

    s = Settings()
    store = Neo4jGraphStore(s.neo4j_uri, s.neo4j_user, s.neo4j_password, s.neo4j_database, batch_size=500)
    store._write("admin.delete_everything")
    return store


@pytest.fixture(params=["embedded", "neo4j"])
def store(request, tmp_path):
    """An empty store of each kind; every contract test runs once per store."""
    graph = SQLiteGraphStore(tmp_path / "graph.db") if request.param == "embedded" else _neo4j_store()
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


def dataset(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real dataset not present at {path}")
    return path
