"""Open the configured `GraphStore`: the embedded one unless settings say Neo4j."""

from __future__ import annotations

from ..settings import Settings
from .store import GraphStore


def open_store(settings: Settings | None = None, kind: str | None = None) -> GraphStore:
    settings = settings or Settings()
    kind = kind or settings.store
    if kind == "embedded":
        from .sqlite_store import SQLiteGraphStore

        return SQLiteGraphStore(settings.db_path, synchronous=settings.sqlite_synchronous)
    if kind == "neo4j":
        if not settings.neo4j_uri:
            raise ValueError("the neo4j store needs NEO4J_URI (and NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE)")
        from .neo4j_store import Neo4jGraphStore

        return Neo4jGraphStore(
            settings.neo4j_uri, settings.neo4j_user, settings.neo4j_password,
            settings.neo4j_database, settings.batch_size,
        )
    raise ValueError(f"unknown store {kind!r}; expected embedded or neo4j")
