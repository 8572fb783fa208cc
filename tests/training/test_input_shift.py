"""Input-shift warnings of `predict` and `evaluate`: an instrument the model was trained
with is absent, rows outside the training range, a flag rate far from the design."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.support.helpers import REPO
from training.artifact_schema import ModelMetadata
from training.cli import run
from training.features import FEATURES
from training.input_shift import ShiftTally, shift_warnings, tally
from training.registry import Registry

SHIPPED = REPO / "models"


def _cohort(folder: Path, source: Path, drop: tuple[str, ...] = (), **values: float) -> Path:
    """A copy of a cohort folder with some session columns dropped or overwritten."""
    folder.mkdir(exist_ok=True)
    sessions = pd.read_csv(source / "sessions.csv").drop(columns=list(drop))
    for column, value in values.items():
        sessions[column] = value
    sessions.to_csv(folder / "sessions.csv", index=False)
    pd.read_csv(source / "clients.csv").to_csv(folder / "clients.csv", index=False)
    return folder


def _predict(cohort: Path, models: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    files = ["--sessions", str(cohort / "sessions.csv"), "--clients", str(cohort / "clients.csv")]
    out = ["--out", str(cohort / "out.csv")]
    assert run(["predict", "--model", "champion", "--models-dir", str(models), *files, *out]) == 0
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]


def test_predict_warns_once_about_an_absent_instrument(
    small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Registry(SHIPPED).load().meta.instruments == [
        "ors",
        "phq9",
        "srs",
        "wai_sr",
    ]
    assert _predict(small_cohort, SHIPPED, capsys) == []  # the cohort it was made for
    without = _cohort(tmp_path / "no-phq9", small_cohort, drop=("phq9_total",))
    assert _predict(without, SHIPPED, capsys) == [
        "warning: sessions.csv: no values of PHQ-9 (phq9_total), which the model was trained "
        "with; it scores these clients as if the measure was never taken"
    ]


def test_predict_warns_when_the_flag_rate_is_far_from_the_design(
    small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every alliance rating at the floor: nearly everyone is flagged high. Clients are
    scored at their latest landmark, so the design is the test set's high flag rate per
    landmark, mixed as the scored clients are (the shipped metadata has no per-landmark
    moderate rate: that level is not compared)."""
    low = {"wai_goal": 1.0, "wai_task": 1.0, "wai_bond": 1.0, "srs_total": 10.0}
    lines = _predict(_cohort(tmp_path / "low", small_cohort, **low), SHIPPED, capsys)
    out = pd.read_csv(tmp_path / "low" / "out.csv")
    high = (out["risk_level"] == "high").mean()
    per_landmark = Registry(SHIPPED).load().metadata["metrics"]["per_landmark"]
    rates = {row["landmark"]: row["high_flag_rate"]["estimate"] for row in per_landmark}
    share = out["landmark_session"].value_counts(normalize=True)
    design = sum(rates[k] * share.get(k, 0.0) for k in rates)
    assert high > design + 0.1
    flag_rate = (
        f"warning: of the scored rows, {high:.1%} flagged high (designed: {design:.1%}): "
        "this cohort differs from the one the thresholds were set on"
    )
    assert flag_rate in lines
    # ratings at the floor also lie below the shipped model's training range
    assert (
        [line for line in lines if line != flag_rate]
        == [line for line in lines if "outside the model's training range" in line]
        != []
    )


def test_evaluate_warns_on_stderr_and_in_the_report(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cohort = _cohort(tmp_path / "no-ors", small_cohort, drop=("ors_total",))
    report = tmp_path / "eval.html"
    files = ["--sessions", str(cohort / "sessions.csv"), "--clients", str(cohort / "clients.csv")]
    models = ["--model", "champion", "--models-dir", str(trained_registry)]
    assert run(["evaluate", *models, *files, "--out", str(report)]) == 0
    warning = (
        "warning: sessions.csv: no values of ORS (ors_total), which the model was trained "
        "with; it scores these clients as if the measure was never taken"
    )
    assert warning in capsys.readouterr().err.splitlines()
    assert f"<li>{warning}</li>" in report.read_text()


def _meta(**fields: Any) -> ModelMetadata:
    """The shipped model's metadata, typed, with its thresholds' design and `fields` set
    (None: the field absent, as in an artifact that predates it)."""
    written = Registry(SHIPPED).load().metadata
    design = {"sensitivity": 0.5, "ppv": 0.4, "false_negative_rate": 0.5}
    validation = {
        "moderate": {"flag_rate": 0.4, **design},
        "high": {"flag_rate": 0.15, **design},
    }
    thresholds = {"moderate": 0.2, "high": 0.3, "validation": validation}
    doc = {**written, "thresholds": thresholds, **fields}
    return ModelMetadata.model_validate({k: v for k, v in doc.items() if v is not None})


def test_rows_outside_the_training_range_warn_in_one_line() -> None:
    """6 of 100 rows beyond the recorded range of gap_max_days, 5 of age: only the first is
    more than 5%; levels at the design rates; every instrument present."""
    X = np.full((100, len(FEATURES)), 10.0)
    X[:, FEATURES.index("landmark")] = 2.0
    X[:, FEATURES.index("age")] = 30.0
    X[:6, FEATURES.index("gap_max_days")] = 90.0
    X[:5, FEATURES.index("age")] = 11.0
    levels = np.array(["high"] * 15 + ["moderate"] * 25 + ["low"] * 60, dtype=object)
    meta = _meta(
        feature_range={"gap_max_days": [1.0, 60.0], "age": [12.0, 100.0]},
        instruments=["srs"],
    )
    sessions = pd.DataFrame({"srs_total": [30.0]})
    counts = tally(meta, sessions, X, levels)
    assert (counts.rows, counts.moderate, counts.high, counts.instruments) == (100, 40, 15, {"srs"})
    assert counts.landmarks == {2: 100}
    assert shift_warnings(meta, counts, "s.csv", every_landmark=True) == [
        "warning: more than 5% of scored rows lie outside the model's training range on: "
        "gap_max_days 6.0% (trained on 1 to 60)"
    ]


def test_an_artifact_without_a_range_skips_that_check() -> None:
    """No feature_range (an artifact that predates it): rows far beyond anything raise no
    range warning; the other two checks still run."""
    meta = _meta(feature_range=None, instruments=["srs"])
    assert meta.feature_range is None
    X = np.full((10, len(FEATURES)), 1e9)  # far beyond anything, but no range recorded
    X[:, FEATURES.index("landmark")] = 1.0
    counts = tally(meta, pd.DataFrame({"srs_total": [np.nan]}), X, np.array(["low"] * 10))
    assert shift_warnings(meta, counts, "s.csv", every_landmark=True) == [
        "warning: s.csv: no values of SRS (srs_total), which the model was trained with; it "
        "scores these clients as if the measure was never taken",
        "warning: of the scored rows, 0.0% flagged moderate or high (designed: 40.0%) and 0.0% "
        "flagged high (designed: 15.0%): this cohort differs from the one the thresholds "
        "were set on",
    ]
    # scored at their latest landmark (all at 1): the design is the test set's high flag
    # rate there (the shipped figures have no per-landmark moderate rate: not compared)
    high = meta.metrics.landmark(1).level("high")
    assert high is not None
    assert high.flag_rate.estimate is not None
    assert shift_warnings(meta, counts, "s.csv", every_landmark=False)[1:] == [
        f"warning: of the scored rows, 0.0% flagged high (designed: "
        f"{high.flag_rate.estimate:.1%}): this cohort differs from the one the thresholds "
        "were set on"
    ]
    assert shift_warnings(meta, ShiftTally(), "s.csv", every_landmark=True) == []
