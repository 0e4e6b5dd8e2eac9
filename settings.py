"""Settings: environment variables, or a `lookgraph.toml` in the working directory.

Environment wins over the file. Neo4j connection settings use the driver's customary names
(`NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`); everything else is
`LOOKGRAPH_*`, e.g. `LOOKGRAPH_STORE=neo4j`, `LOOKGRAPH_HOME=/var/lib/lookgraph`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOOKGRAPH_", toml_file="lookgraph.toml", extra="ignore"
    )

    store: Literal["embedded", "neo4j"] = "embedded"
    home: Path = Path(".lookgraph")
    """Where the embedded database and trained artifacts live."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL: an acknowledged write survives power loss, not only a killed process."""
    batch_size: int = Field(5_000, gt=0)
    api_keys: str | None = None
    """`key:scope,scope;key:scope` (see api/security.py); LOOKGRAPH_API_KEYS."""
    max_body_bytes: int = Field(1_048_576, gt=0)

    neo4j_uri: str | None = Field(None, validation_alias=AliasChoices("NEO4J_URI", "neo4j_uri"))
    neo4j_user: str = Field("neo4j", validation_alias=AliasChoices("NEO4J_USER", "neo4j_user"))
    neo4j_password: str = Field(
        "", validation_alias=AliasChoices("NEO4J_PASSWORD", "neo4j_password")
    )
    neo4j_database: str = Field(
        "neo4j", validation_alias=AliasChoices("NEO4J_DATABASE", "neo4j_database")
    )

    @property
    def db_path(self) -> Path:
        return self.home / "graph.db"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
