"""Helpers the tests share (not fixtures: those are in the conftest.py files): the
repository's root, a database session, an API key, a small CSV, a training run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from service.security.key_store import DbKeyStore
from service.storage.database import Storage
from training.cli import run
from training.registry import Registry
from training.simulate import SimulationParams

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def db_session(database_url: str) -> Iterator[Session]:
    """One committed transaction on `database_url`, for tests that read or seed rows."""
    storage = Storage(database_url)
    try:
        with storage.session() as s:
            yield s
    finally:
        storage.close()


def create_key(
    database_url: str, tenant: str, scopes: list[str], therapist: str | None = None
) -> str:
    """A new API key's token in the database at `database_url` (migrated first)."""
    storage = Storage(database_url)
    try:
        storage.ensure_migrated()
        return DbKeyStore(storage.factory).create("test", tenant, scopes, therapist)[1]
    finally:
        storage.close()


def write_csv(path: Path, rows: list[dict[str, object]] | str) -> Path:
    """Write a small CSV: raw text, or rows as dicts (missing keys become blank cells)."""
    if isinstance(rows, str):
        path.write_text(rows)
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


def train(cohort: Path, models: Path, *extra: str) -> int:
    """`dropout-risk train` on a simulated cohort folder; returns the exit status.

    Test cohorts (1,500 clients and fewer) are below the Riley et al. 2020 minimum for this
    model (training/sample_size.py), so the helper passes --allow-small explicitly.
    """
    return run(
        [
            "train",
            "--allow-small",
            "--sessions",
            str(cohort / "sessions.csv"),
            "--clients",
            str(cohort / "clients.csv"),
            "--models-dir",
            str(models),
            *extra,
        ]
    )


# A clinic in another world than the shipped model's: a 35% dropout rate and an SRS-only
# site (docs/updating.md, the worked example).
CLINIC = "site-a"
CLINIC_WORLD = SimulationParams(dropout_rate=0.35, site_mix=(0.0, 0.0, 1.0))


def cohort_args(cohort: Path) -> list[str]:
    """The --sessions and --clients options of a cohort folder."""
    return ["--sessions", str(cohort / "sessions.csv"), "--clients", str(cohort / "clients.csv")]


def updated_version(models: Path) -> str:
    """The version that the `updated_registry` fixture added (the one with a parent)."""
    return next(v.version for v in Registry(models).index().versions if v.parent)
