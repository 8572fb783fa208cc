"""The simulator reproduces the published numbers (docs/literature.md) on 20,000 clients, writes the
cohort contract, and is reproducible byte for byte."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from training import cohort_stats
from training.cli import run
from training.contract import load_cohort
from training.simulate import SimulationParams, simulate, write_cohort


@pytest.fixture(scope="module")
def stats() -> dict[str, float]:
    clients, sessions = simulate(20_000, seed=2026)
    return cohort_stats.summary(clients.astype({"age": "float64"}), sessions)


def test_dropout_rate(stats: dict[str, float]) -> None:
    assert abs(stats["dropout_rate"] - 0.20) <= 0.03  # Swift & Greenberg 2012: 19.7%


def test_alliance_lower_in_dropouts(stats: dict[str, float]) -> None:
    assert 0.45 <= stats["alliance_dropout_d"] <= 0.65  # Sharf et al. 2010: d = 0.55


def test_srs_ceiling(stats: dict[str, float]) -> None:
    assert stats["srs_median"] >= 35
    assert 0.05 < stats["srs_below36_share"] < 0.5


def test_alliance_outcome_correlation(stats: dict[str, float]) -> None:
    assert 0.20 <= stats["alliance_outcome_r"] <= 0.35  # Flückiger et al. 2018: r = .278


def test_therapist_effects(stats: dict[str, float]) -> None:
    assert 0.05 <= stats["therapist_icc"] <= 0.16  # Saxon et al. 2017: 12.6%


def test_younger_clients_drop_out_more(stats: dict[str, float]) -> None:
    assert stats["dropout_rate_under25"] > stats["dropout_rate_40plus"] + 0.03


def test_early_dropouts_ruptures_and_sites(stats: dict[str, float]) -> None:
    assert stats["early_dropout_share"] >= 0.35
    assert stats["ruptures_repaired"] > 1000
    assert stats["ruptures_unrepaired"] > 1000
    assert stats["clients_wai_only"] > 0.1
    assert stats["clients_srs_ors_only"] > 0.1
    assert stats["clients_both"] > 0.3


def test_parameters_change_the_cohort() -> None:
    clients, _ = simulate(20_000, seed=5, params=SimulationParams(dropout_rate=0.3))
    assert abs(clients["dropout"].mean() - 0.30) <= 0.03
    clients, _ = simulate(5_000, seed=5, params=SimulationParams(site_mix=(0.0, 1.0, 0.0)))
    assert len(clients) == 5_000


def _digest(folder: Path) -> str:
    return hashlib.sha256(
        (folder / "sessions.csv").read_bytes() + (folder / "clients.csv").read_bytes()
    ).hexdigest()


def test_same_seed_same_bytes_and_contract(tmp_path: Path) -> None:
    write_cohort(tmp_path / "a", 800, seed=9)
    assert run(["simulate", "--clients", "800", "--seed", "9", "--out", str(tmp_path / "b")]) == 0
    write_cohort(tmp_path / "c", 800, seed=10)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    cohort = load_cohort(
        tmp_path / "a" / "sessions.csv",
        tmp_path / "a" / "clients.csv",
        need_labels=True,
        warnings=[],
    )
    assert len(cohort.clients) == 800
    assert set(pd.read_csv(tmp_path / "a" / "clients.csv").columns) == {
        "client_id",
        "therapist_id",
        "age",
        "gender",
        "dropout",
    }


def test_max_sessions_and_bad_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    simulate_200 = ["simulate", "--clients", "200", "--seed", "1", "--out", str(tmp_path)]
    assert run([*simulate_200, "--max-sessions", "3"]) == 0
    assert pd.read_csv(tmp_path / "sessions.csv")["session_number"].max() == 3
    assert run([*simulate_200, "--set", "dropout_rat=0.3"]) == 2
    assert "'dropout_rat=0.3' is not NAME=VALUE" in capsys.readouterr().err
