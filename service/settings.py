"""The service's one settings class: every knob comes from a DROPOUT_RISK_* variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Read once per process; tests build their own instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="DROPOUT_RISK_", extra="ignore")

    models_dir: Path = Path("models")
    pseudonym_key_file: Path = Path("var/pseudonym.key")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Cap the model's landmarks (None: use all of them).
    max_landmark: int | None = Field(default=None, ge=1, le=12)
    log_level: str = Field(default="info", pattern="^(critical|error|warning|info|debug)$")
    body_limit_bytes: int = Field(default=1_048_576, ge=1024)
    # How often each worker looks for a newly promoted champion.
    reload_seconds: float = Field(default=1.0, ge=0.0, le=60.0)
    docs_enabled: bool = True
    # SQLite file by default (nothing to install); PostgreSQL in production, e.g.
    # postgresql://user@host:5432/dropout_risk
    database_url: str = Field(
        default="sqlite:///var/dropout-risk.db",
        validation_alias=AliasChoices("DROPOUT_RISK_DATABASE_URL", "DATABASE_URL"),
    )
    migrate_on_start: bool = True
    # How long a verified API key is trusted from memory before the database is asked again
    # (a revocation takes at most this long to reach every worker).
    key_cache_seconds: float = Field(default=5.0, ge=0.0, le=300.0)
    # CDS Hooks: trusted JWT issuers, each bound to one clinic (docs/cds-hooks.md)
    cds_issuers_file: Path = Path("var/cds-issuers.json")
    # Signs the clinician view's session cookies (created on first start, owner-only)
    ui_secret_file: Path = Path("var/ui-session.key")

    # ---- starting workers and HTTP limits (service/serve.py, service/http_protocol.py)
    # How long uvicorn's supervisor waits for a worker to answer its health check (its
    # timeout_worker_healthcheck, default 5 s) before it kills the worker as hung. A
    # starting worker imports the libraries, verifies the model and warms it (compiling the
    # kernels when numba's cache is empty) while holding the GIL, so the answer can be
    # seconds late on a busy 2-core machine: 5 s killed starting workers.
    worker_healthcheck_seconds: int = Field(default=60, ge=5, le=600)
    # The request line and headers together, in bytes: a longer head is answered 431 and
    # the connection closed before it is parsed (an unbounded head cost 28 s and 190 MB).
    max_header_bytes: int = Field(default=65_536, ge=4096, le=1_048_576)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
