"""Settings: environment variables, or a `lookgraph.toml` in the working directory.

Environment wins over the file. Neo4j connection settings use the driver's customary names
(`NEO4J_URI`, `NEO4J_USER`, `NEO4J_PASSWORD`, `NEO4J_DATABASE`); everything else is
`LOOKGRAPH_*`, e.g. `LOOKGRAPH_STORE=neo4j`, `LOOKGRAPH_HOME=/var/lib/lookgraph`. A key of
`lookgraph.toml` that is not a setting is refused with the nearest one (a typo must not be
silently ignored); `load_settings()` turns every invalid value into one sentence.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from platformdirs import user_data_dir
from pydantic import AliasChoices, Field, ValidationError
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
    home: Path = Path(user_data_dir("lookgraph"))
    """Where the embedded database and trained artifacts live: by default the user's data
    directory (`~/.local/share/lookgraph` on Linux), the same from any working directory."""
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    """FULL: an acknowledged write survives power loss, not only a killed process."""
    batch_size: int = Field(5_000, gt=0)
    api_keys: str | None = None
    """`key:scope,scope;key:scope` (see api/security.py); LOOKGRAPH_API_KEYS."""
    api_keys_file: Path | None = None
    """A file of keys in the same form (one `key:scopes` a line, `#` comments), read again when it
    changes: a key removed there is refused from the next request on, without a restart."""
    console_session_hours: float = Field(8.0, gt=0, le=24 * 30)
    """How long a console sign-in lasts."""
    console_secure_cookie: bool | None = None
    """The console cookie's `Secure` flag: by default set when the request came over TLS (behind a
    proxy that ends TLS, run uvicorn with the proxy's X-Forwarded-Proto trusted, or set this to true)."""
    max_body_bytes: int = Field(1_048_576, gt=0)
    reload_check_seconds: float = Field(30.0, ge=0)
    """How often `lookgraph serve` looks for a newer trained model (0: only `POST /admin/reload`)."""
    freshness_seconds: float = Field(0.5, ge=0)
    """How often each `lookgraph serve` process applies the store's changes made by others (other
    workers, the CLI, a load, `train`'s mined looks; 0: only its own writes)."""
    compute_threads: int | None = Field(None, ge=1, le=64)
    """How many recommendations one `lookgraph serve` worker computes at once; the rest wait
    their turn. Default: 1 on the embedded store, whose answers are all CPU (a second thread only
    fights the first for Python's interpreter lock: the MovieLens feed of
    `benchmarks/gorse_peer.py`, one worker at concurrency 8, served 86 req/s with a thread per
    request against 126 with one), 4 on Neo4j, where an answer also waits on the server. More
    cores: `--workers`."""
    worker_timeout_seconds: float = Field(60.0, ge=0)
    """`lookgraph serve --workers N` (Linux) replaces a worker that has not answered its
    parent's check for this long: an event loop blocked, or every compute thread stuck. Its
    requests in flight are lost, so set it above the slowest request you serve (0: never)."""
    impressions: bool = True
    """Keep every served list in the store (`recommend/impressions.py`); off: answers still carry
    a recommendation id, nothing is kept."""
    impression_retention_days: float = Field(90.0, gt=0)
    """Impressions older than this are dropped (checked hourly by each `lookgraph serve`)."""
    impression_queue: int = Field(10_000, ge=1)
    """Impressions waiting to be written, at most; beyond it they are dropped and counted."""
    impression_flush_seconds: float = Field(1.0, gt=0)
    """How often queued impressions are written: what a crash can lose."""
    attribution_window_hours: float = Field(24.0, gt=0)
    """A view, cart or purchase of an item shown this long before counts for the list without its
    recommendation id (`GET /metrics/recommendations`)."""
    exploration_refresh_seconds: float = Field(60.0, ge=0)
    """How often each `lookgraph serve` process counts what the feeds' exploration slots earned
    (`recommend/exploration.py`; 0: never, and exploration does not learn)."""
    crowd_refresh_seconds: float = Field(300.0, ge=0)
    """How often each `lookgraph serve` process looks whether events came in or shoppers were
    erased since the crowd's BOUGHT_WITH was computed, and recomputes it if so (0: never; a load
    computes it, and `lookgraph refresh-crowd` at once)."""

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
        return (init_settings, env_settings, StrictToml(settings_cls))


class SettingsError(ValueError):
    """A setting is invalid or unknown; the message is one sentence naming it."""


class StrictToml(TomlConfigSettingsSource):
    """`lookgraph.toml`, whose every key must be a setting."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        known = set(Settings.model_fields) | {"NEO4J_URI", "NEO4J_USER", "NEO4J_PASSWORD", "NEO4J_DATABASE"}
        for key in data:
            if key not in known:
                near = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else f"; the settings are {', '.join(sorted(Settings.model_fields))}"
                raise SettingsError(f"lookgraph.toml: unknown setting {key!r}{hint}")
        return data


def load_settings(**overrides) -> Settings:
    """The settings, or `SettingsError` naming the first invalid one and where it came from."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        variable = name if name.isupper() else f"LOOKGRAPH_{name.upper()}"
        raise SettingsError(f"{variable} (or {name} in lookgraph.toml): {first['msg']} "
                            f"(got {first.get('input')!r})") from None
