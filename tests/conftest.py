"""Shared fixtures: small simulated cohorts and a trained registry, built once per session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from service.db.keys import DbKeyStore
from service.storage import Storage
from training.cli import run
from training.registry import Registry
from training.simulate import SimulationParams, write_cohort

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.storage"]


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


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 simulated clients (enough for every landmark and subgroup)."""
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, 1500, seed=7)
    return out


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


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory, small_cohort: Path) -> Path:
    """A registry with one model trained on the small cohort (through the CLI)."""
    models = tmp_path_factory.mktemp("models")
    status = train(small_cohort, models, "--seed", "3")
    assert status == 0
    return models


# A clinic in another world than the shipped model's: a 35% dropout rate and an SRS-only
# site (docs/lifecycle.md, the worked example).
CLINIC = "site-a"
CLINIC_WORLD = SimulationParams(dropout_rate=0.35, site_mix=(0.0, 0.0, 1.0))


@pytest.fixture(scope="session")
def clinic_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 simulated clients of CLINIC_WORLD, labelled."""
    out = tmp_path_factory.mktemp("clinic")
    write_cohort(out, 800, seed=11, params=CLINIC_WORLD)
    return out


def cohort_args(cohort: Path) -> list[str]:
    return ["--sessions", str(cohort / "sessions.csv"), "--clients", str(cohort / "clients.csv")]


@pytest.fixture(scope="session")
def updated_registry(tmp_path_factory: pytest.TempPathFactory, clinic_cohort: Path) -> Path:
    """A copy of the shipped registry with its champion updated on clinic_cohort for
    CLINIC by `dropout-risk update --method auto` (registered, not promoted)."""
    models = tmp_path_factory.mktemp("updated") / "models"
    shutil.copytree(REPO / "models", models)
    args = ["update", "--model", "champion", *cohort_args(clinic_cohort), "--clinic", CLINIC]
    assert run([*args, "--models-dir", str(models)]) == 0
    return models


def updated_version(models: Path) -> str:
    """The version that `updated_registry` added (the one with a parent)."""
    return next(v.version for v in Registry(models).index().versions if v.parent)
