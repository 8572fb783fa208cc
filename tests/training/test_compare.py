"""training/compare.py and `dropout-risk compare`: DeLong's paired AUC variance against a
hand-computed case and its clustered form, the verdicts, and the comparison page and record."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.helpers import CLINIC, REPO, cohort_args, updated_version
from training.cli import run
from training.compare import (
    BETTER,
    NOT_DISTINGUISHABLE,
    WORSE,
    Difference,
    calibration_error,
    paired_auc,
    verdict,
)
from training.registry import Registry, comparison_page, sha256_of
from training.train import _fingerprint

SHIPPED = Registry(REPO / "models").index().champion


def test_delong_against_a_hand_computed_case() -> None:
    """Three dropouts and three completers. Placements of model A: dropouts outrank 3, 2 and
    2 of the 3 completers (V10 = 1, 2/3, 2/3), completers are outranked by 1, 3 and 3
    dropouts (V01 = 1/3, 1, 1): AUC 7/9. Model B: V10 = 1, 2/3, 1/3 and V01 = 1/3, 2/3,
    1: AUC 2/3. DeLong's S10 (covariances over dropouts, n - 1 = 2) is [[1/27, 1/18],
    [1/18, 1/9]], S01 is [[4/27, 1/9], [1/9, 1/9]]; dividing by 3 and 3 and adding gives
    var A = 5/81, var B = 6/81, cov = 4.5/81, so var(B - A) = 2/81."""
    y = np.array([1, 1, 1, 0, 0, 0])
    a = np.array([0.8, 0.6, 0.4, 0.7, 0.3, 0.2])
    b = np.array([0.9, 0.5, 0.3, 0.6, 0.4, 0.1])
    result = paired_auc(y, [a, b])
    np.testing.assert_allclose(result.auc, [7 / 9, 2 / 3], rtol=1e-12)
    np.testing.assert_allclose(
        result.covariance, [[5 / 81, 4.5 / 81], [4.5 / 81, 6 / 81]], rtol=1e-12
    )
    d = result.difference()
    assert d.estimate == pytest.approx(-1 / 9, rel=1e-12)
    half = 1.959963984540054 * math.sqrt(2 / 81)
    assert (d.low, d.high) == (pytest.approx(-1 / 9 - half), pytest.approx(-1 / 9 + half))
    assert verdict(d, lower_is_better=False) == NOT_DISTINGUISHABLE


def test_ties_count_one_half() -> None:
    result = paired_auc([1, 0, 1, 0], [np.array([0.5, 0.5, 0.9, 0.1])])
    assert result.auc[0] == pytest.approx((0.5 + 1 + 1 + 1) / 4)


def test_a_clients_landmark_rows_count_as_one_client() -> None:
    """Obuchowski's clustering: every row repeated three times in its own cluster gives
    DeLong's variance of the rows taken once; singleton clusters are DeLong itself."""
    rng = np.random.default_rng(8)
    n = 400
    y = (rng.random(n) < 0.3).astype(np.float64)
    a = rng.normal(size=n) + 0.5 * y
    b = a + rng.normal(scale=0.7, size=n)
    once = paired_auc(y, [a, b])
    np.testing.assert_allclose(paired_auc(y, [a, b], np.arange(n)).covariance, once.covariance)
    thrice = paired_auc(
        np.repeat(y, 3), [np.repeat(a, 3), np.repeat(b, 3)], np.repeat(np.arange(n), 3)
    )
    np.testing.assert_allclose(thrice.auc, once.auc, rtol=1e-12)
    np.testing.assert_allclose(thrice.covariance, once.covariance, rtol=1e-10)
    unclustered = paired_auc(np.repeat(y, 3), [np.repeat(a, 3), np.repeat(b, 3)])
    assert unclustered.covariance[0, 0] < once.covariance[0, 0] / 2  # what clustering prevents


def _difference(low: float, high: float) -> Difference:
    return Difference(None, None, (low + high) / 2, low, high, "")


def test_the_verdicts() -> None:
    assert verdict(_difference(0.01, 0.03), lower_is_better=False) == BETTER
    assert verdict(_difference(-0.03, -0.01), lower_is_better=False) == WORSE
    assert verdict(_difference(-0.01, 0.02), lower_is_better=False) == NOT_DISTINGUISHABLE
    assert verdict(_difference(-0.03, -0.01), lower_is_better=True) == BETTER
    assert verdict(_difference(0.01, 0.03), lower_is_better=True) == WORSE
    assert verdict(_difference(0.0, 0.0), lower_is_better=True) == NOT_DISTINGUISHABLE
    assert verdict(Difference(None, None, None, None, None, ""), False) == NOT_DISTINGUISHABLE


def test_calibration_error_is_what_recalibration_would_remove() -> None:
    rng = np.random.default_rng(4)
    n = 20000
    landmark = rng.integers(1, 4, n)
    logit = rng.normal(-1.2, 0.7, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    calibrated = 1 / (1 + np.exp(-logit))
    shifted = 1 / (1 + np.exp(-(logit - 0.5)))  # under-predicts, as at a 35% clinic
    good, fitted = calibration_error(y, calibrated, landmark)
    bad, _ = calibration_error(y, shifted, landmark)
    assert good < 0.0005 < 0.01 < bad
    for a, b in fitted.values():
        assert abs(a) < 0.15
        assert abs(b - 1) < 0.15


def test_compare_gives_the_verdict_first_writes_the_page_and_keeps_the_record(
    updated_registry: Path, clinic_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    version = updated_version(models)
    page = tmp_path / "compare.html"
    args = ["compare", "--challenger", version, *cohort_args(clinic_cohort), "--clinic", CLINIC]
    assert run([*args, "--out", str(page), "--models-dir", str(models)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        f"verdict: {version} against {SHIPPED} (clinic {CLINIC}): discrimination "
        "not distinguishable, calibration better"
    )
    assert f"out of fold (updated on these clients): {version}" in out[1]
    html = page.read_text()
    assert out[0] in html
    for outside in ("http://", "https://", "src=", "<link", "@import"):
        assert outside not in html
    for section in (
        "Paired differences",
        "Per landmark",
        "Against the clinic rules",
        "last SRS &lt; 36",
        "logistic on mean WAI-SR",
        "Net benefit",
        "Subgroups, both models",
    ):
        assert section in html
    (record,) = Registry(models).index().comparisons
    assert (record.challenger, record.champion, record.clinic) == (version, SHIPPED, CLINIC)
    assert record.verdict_line() == out[0]  # the record words it as the command did
    assert record.kind == "better"
    assert Registry(models).index().last_comparison(CLINIC) == record
    assert Registry(models).index().last_comparison("another-clinic") is None
    # the registry keeps a copy of the page, by clinic and challenger, its hash recorded
    kept = models / "comparisons" / f"{CLINIC}-{version}.html"
    assert kept.read_text() == html
    assert record.page_sha256 == sha256_of(kept)
    assert comparison_page(Registry(models), record) == page.read_bytes()
    files = [clinic_cohort / "sessions.csv", clinic_cohort / "clients.csv"]
    assert record.fingerprint == _fingerprint(files)
    assert record.calibration.verdict == BETTER
    assert record.calibration.estimate is not None
    assert record.calibration.estimate < 0
    assert {(s.factor, s.group) for s in record.subgroups} >= {
        ("gender", "female"),
        ("age_band", "25-39"),
    }
    # a second comparison replaces the first: only the last of each challenger is kept
    assert run([*args, "--out", str(page), "--models-dir", str(models)]) == 0
    assert len(Registry(models).index().comparisons) == 1


def test_a_model_equal_to_the_champion_is_not_distinguishable(
    updated_registry: Path, clinic_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(updated_registry, models)
    args = ["update", "--model", "champion", *cohort_args(clinic_cohort), "--method", "keep"]
    assert run([*args, "--models-dir", str(models)]) == 0
    keep = capsys.readouterr().out.strip().splitlines()[-1]
    args = ["compare", "--challenger", keep, *cohort_args(clinic_cohort)]
    assert run([*args, "--out", str(tmp_path / "c.html"), "--models-dir", str(models)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"verdict: {keep} against {SHIPPED}: discrimination not distinguishable, "
        "calibration not distinguishable"
    )


def test_compare_refuses_an_unknown_challenger(
    clinic_cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = tmp_path / "models"
    shutil.copytree(REPO / "models", models)
    args = ["compare", "--challenger", "nope", *cohort_args(clinic_cohort)]
    assert run([*args, "--out", str(tmp_path / "c.html"), "--models-dir", str(models)]) == 2
    assert "model version 'nope' is not registered" in capsys.readouterr().err
    assert not (tmp_path / "c.html").exists()
