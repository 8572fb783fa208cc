"""Shared fixtures: small simulated cohorts and a trained registry, built once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.helpers import CLINIC, CLINIC_WORLD, REPO, cohort_args, train
from training.cli import run
from training.simulate import write_cohort

pytest_plugins = ["tests.support.storage"]


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 simulated clients (enough for every landmark and subgroup)."""
    out = tmp_path_factory.mktemp("cohort")
    write_cohort(out, 1500, seed=7)
    return out


@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory, small_cohort: Path) -> Path:
    """A registry with one model trained on the small cohort (through the CLI)."""
    models = tmp_path_factory.mktemp("models")
    status = train(small_cohort, models, "--seed", "3")
    assert status == 0
    return models


@pytest.fixture(scope="session")
def clinic_cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """800 simulated clients of CLINIC_WORLD, labelled."""
    out = tmp_path_factory.mktemp("clinic")
    write_cohort(out, 800, seed=11, params=CLINIC_WORLD)
    return out


@pytest.fixture(scope="session")
def updated_registry(tmp_path_factory: pytest.TempPathFactory, clinic_cohort: Path) -> Path:
    """A copy of the shipped registry with its champion updated on clinic_cohort for
    CLINIC by `dropout-risk update --method auto` (registered, not promoted)."""
    models = tmp_path_factory.mktemp("updated") / "models"
    shutil.copytree(REPO / "models", models)
    args = ["update", "--model", "champion", *cohort_args(clinic_cohort), "--clinic", CLINIC]
    assert run([*args, "--models-dir", str(models)]) == 0
    return models
