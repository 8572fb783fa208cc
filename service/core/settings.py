"""The service's one settings class: every knob comes from a DROPOUT_RISK_* variable."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from training.errors import DropoutRiskError
from training.vocabulary import MAX_LANDMARK

logger = logging.getLogger("dropout_risk.settings")
PUBLIC_URL_MAX = 512


class Settings(BaseSettings):
    """Read once per process; tests build their own instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="DROPOUT_RISK_", extra="ignore")

    models_dir: Path = Path("models")
    pseudonym_key_file: Path = Path("var/pseudonym.key")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    # Cap the model's landmarks (None: use all of them).
    max_landmark: int | None = Field(default=None, ge=1, le=MAX_LANDMARK)
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
    # Database timeouts (issue 11): with the database away or silently dropping packets, a
    # stored route answers 503 after about ping + connect seconds instead of hanging.
    # Opening a connection (libpq's connect_timeout; 2 is its minimum):
    database_connect_timeout_seconds: int = Field(default=2, ge=2, le=60)
    # Waiting for a free pooled connection when every one is busy:
    database_pool_timeout_seconds: float = Field(default=2.0, gt=0.0, le=60.0)
    # The liveness check of a pooled PostgreSQL connection before each use (an empty
    # statement: no lock, no work):
    database_ping_timeout_seconds: float = Field(default=1.0, gt=0.0, le=60.0)
    # One statement (or commit) on PostgreSQL, lock waits included: the server's
    # statement_timeout and tcp_user_timeout; the client waits half a second more for an
    # answer, then drops the connection. Not applied to migrations (they may take longer).
    database_query_timeout_seconds: float = Field(default=10.0, gt=0.0, le=300.0)
    # How long a verified API key is trusted from memory before the database is asked again
    # (a revocation takes at most this long to reach every worker).
    key_cache_seconds: float = Field(default=5.0, ge=0.0, le=300.0)
    # Stored risks recomputed after a change of model (service/scoring/rescoring.py): clients
    # per transaction, and how often to look for work when there is none (0: never; the
    # work waits, named by each row's model, until a worker that looks starts).
    rescore_batch: int = Field(default=50, ge=1, le=1000)
    rescore_idle_seconds: float = Field(default=5.0, ge=0.0, le=3600.0)
    # CDS Hooks: trusted JWT issuers, each bound to one clinic (docs/cds-hooks.md)
    cds_issuers_file: Path = Path("var/cds-issuers.json")
    # Signs the clinician view's session cookies (created on first start, owner-only)
    ui_secret_file: Path = Path("var/ui-session.key")
    # The URL clients reach the service at, e.g. https://risk.clinic.example (a path prefix
    # is kept). The CDS JWT audience, FHIR implementation.url and card links are built from
    # it alone, never from the request's Host or X-Forwarded-* headers, which any caller
    # can set: behind a proxy it must be set. Unset: the bind address (base_url).
    public_url: str | None = None

    # ---- starting workers and HTTP limits
    # (service/commands/serve.py, service/core/http_protocol.py)
    # How long uvicorn's supervisor waits for a worker to answer its health check (its
    # timeout_worker_healthcheck, default 5 s) before it kills the worker as hung. A
    # starting worker imports the libraries, verifies the model and warms it (compiling the
    # kernels when numba's cache is empty) while holding the GIL, so the answer can be
    # seconds late on a busy 2-core machine: 5 s killed starting workers.
    worker_healthcheck_seconds: int = Field(default=60, ge=5, le=600)
    # The request line and headers together, in bytes: a longer head is answered 431 and
    # the connection closed before it is parsed (an unbounded head cost 28 s and 190 MB).
    max_header_bytes: int = Field(default=65_536, ge=4096, le=1_048_576)

    @field_validator("public_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        """An absolute http(s) URL without query, fragment or credentials; no trailing
        slash, so paths are appended to it one way only."""
        if value is None:
            return None
        parts = urlsplit(value)
        ok = (
            len(value) <= PUBLIC_URL_MAX
            and value.isprintable()
            and " " not in value
            and parts.scheme in ("http", "https")
            and bool(parts.hostname)
            and "@" not in parts.netloc
            and not parts.query
            and not parts.fragment
            and "?" not in value
            and "#" not in value
        )
        if not ok:
            raise ValueError(
                f"must be an absolute http(s) URL of at most {PUBLIC_URL_MAX} characters, "
                "without credentials, query or fragment, e.g. https://risk.clinic.example"
            )
        return value.rstrip("/")

    @property
    def base_url(self) -> str:
        """Where the service's own URLs start: public_url, else the bind address."""
        if self.public_url is not None:
            return self.public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def announce_base_url(settings: Settings) -> None:
    """One line at start-up saying which base URL the service's own links and the CDS
    audience use, and whether it came from DROPOUT_RISK_PUBLIC_URL."""
    if settings.public_url is not None:
        logger.info("public URL %s (DROPOUT_RISK_PUBLIC_URL)", settings.base_url)
    else:
        logger.warning(
            "DROPOUT_RISK_PUBLIC_URL is not set: CDS audiences and FHIR/card links use the "
            "bind address %s; set it when the service is reached through a proxy",
            settings.base_url,
        )


class SettingsError(DropoutRiskError):
    """A DROPOUT_RISK_* variable breaks its rule: the CLI exits 2 naming it, no traceback."""


_SECRET_VALUES = {"database_url"}  # may hold a password: named, never echoed


def load_settings() -> Settings:
    """The settings from the environment, or SettingsError naming each variable, its value
    and its rule."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError("; ".join(_problem(e) for e in exc.errors())) from None


def _problem(error: ErrorDetails) -> str:
    field = str(error["loc"][0]) if error["loc"] else "?"
    rule = str(error["msg"]).removeprefix("Value error, ")
    value = "" if field in _SECRET_VALUES else f" value {error.get('input')!r}"
    return f"DROPOUT_RISK_{field.upper()}:{value} {rule}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
