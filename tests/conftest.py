"""Shared fixtures: small simulated cohorts and a trained registry, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import train
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
