"""The service's one settings class: every knob comes from a DROPOUT_RISK_* variable."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Read once per process; tests build their own instead of patching globals."""

    model_config = SettingsConfigDict(env_prefix="DROPOUT_RISK_", extra="ignore")

    models_dir: Path = Path("models")
    keys_file: Path = Path("var/keys.json")
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
