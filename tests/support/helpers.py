"""Helpers the tests share (not fixtures: those are in the conftest.py files): the
repository's root, a database session, an API key, a small CSV, a training run, a model's
metadata with only what every artifact has."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session

from service.security.key_store import DbKeyStore
from service.storage.database import Storage
from training.artifact_schema import ModelMetadata
from training.cli import run
from training.features import FEATURES
from training.figures import Bootstrap, Estimate, Evaluation, LevelFigures, OverallFigures
from training.registry import Registry
from training.simulate import SimulationParams
from training.strict_json import dumps

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


def blank_figures(n_examples: int = 500, n_clients: int = 250) -> Evaluation:
    """An evaluation with no figure estimated (every estimate None, no subgroups)."""
    none = Estimate()
    level = LevelFigures(flag_rate=none, sensitivity=none, ppv=none)
    overall = OverallFigures(
        auc=none,
        brier=none,
        log_loss=none,
        calibration_slope=none,
        calibration_intercept=none,
        moderate=level,
        high=level,
    )
    return Evaluation(
        n_examples=n_examples,
        n_clients=n_clients,
        prevalence=0.2,
        overall=overall,
        per_landmark=(),
        subgroups={},
        bootstrap=Bootstrap(replicates=0, seed=0, unit="client"),
    )


def metadata_of(metrics: Evaluation | None = None, **fields: Any) -> ModelMetadata:
    """A model's metadata with only the fields every artifact has (none of the provenance
    sections: as written by other code), `metrics` (default: blank_figures()) and `fields`
    set, read from its JSON text as every reader reads metadata.json."""
    doc = {
        "version": "20261122-abcdef12",
        "created_at": "2026-11-22T10:00:00+00:00",
        "sha256": "ab" * 32,
        "sklearn_version": "1.6.1",
        "estimator": "logistic_regression",
        "calibration": "sigmoid",
        "landmarks": [1, 2, 3],
        "features": list(FEATURES),
        "instruments": [],
        "metrics": (metrics or blank_figures()).to_json(),
        "thresholds": {"moderate": 0.25, "high": 0.4},
        "reference": {},
        **fields,
    }
    return ModelMetadata.model_validate_json(dumps(doc))
