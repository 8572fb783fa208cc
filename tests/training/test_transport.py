"""Training for transport: the feature clip in every scoring path, known directions of
effect, features whose effect flips between worlds, and what a mixture model records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone

from tests.support.helpers import train
from training.features import FEATURES
from training.model import (
    CLIP_QUANTILES,
    CalibratedModel,
    SignedLogisticRegression,
    candidates,
    fit_calibrator,
    predictor,
)
from training.registry import Registry
from training.train import created_at, feature_range
from training.transport import KNOWN_SIGNS, SIGNS, ece, unstable_features
from training.worlds import write_mixture

GAP = FEATURES.index("gap_mean_days")


def _data(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    X[:, GAP] = rng.uniform(7, 14, n)
    X[rng.random((n, len(FEATURES))) < 0.1] = np.nan
    z = -0.8 * np.nan_to_num(X[:, FEATURES.index("wai_mean")]) + 0.3 * (
        np.nan_to_num(X[:, GAP], nan=10.0) - 10
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    return X, y


def _fitted(X: np.ndarray, y: np.ndarray) -> CalibratedModel:
    base = clone(candidates(0)["logistic_regression"]).fit(X, y)
    raw = base.predict_proba(X)[:, 1]
    return CalibratedModel(base).with_parts(base, fit_calibrator("sigmoid", raw, y))


def test_features_are_clipped_to_the_training_range_in_every_path() -> None:
    X, y = _data()
    model = _fitted(X, y)
    lo, hi = np.nanquantile(X[:, GAP], CLIP_QUANTILES)
    edge, far = X[:5].copy(), X[:5].copy()
    edge[:, GAP], far[:, GAP] = hi, 400.0  # a year between sessions: far outside training
    fast = predictor(model)
    for score in (lambda A: model.predict_proba(A)[:, 1], fast):
        assert np.array_equal(score(far), score(edge))
    assert np.allclose(fast(far), model.predict_proba(far)[:, 1], atol=1e-12, rtol=0)
    recorded = feature_range(model)
    assert set(recorded) == set(FEATURES)
    assert recorded["gap_mean_days"] == [pytest.approx(lo), pytest.approx(hi)]


def test_signed_logistic_respects_known_directions() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    alliance, noise, free = rng.normal(size=(3, n))
    # in this cohort the second alliance measure's own noise goes with more risk, so a free
    # fit gives it a positive weight: the direction research rules out
    z = -1.0 * alliance + 0.5 * noise + 0.5 * free
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.int8)
    X = np.column_stack([alliance, alliance + noise, free])
    plain = SignedLogisticRegression(C=1e4).fit(X, y).coef_[0]
    signed = SignedLogisticRegression(C=1e4, signs=(-1, -1, 0)).fit(X, y).coef_[0]
    excluded = SignedLogisticRegression(C=1e4, excluded=(2,)).fit(X, y).coef_[0]
    assert plain[1] > 0.3
    assert signed[1] == 0.0
    assert signed[0] < -0.5
    assert signed[2] > 0.3
    assert excluded[2] == 0.0


def test_unstable_features_are_those_whose_sign_flips_between_worlds() -> None:
    coef = np.zeros((8, len(FEATURES)))
    flips, steady, known = GAP, FEATURES.index("ors_change"), FEATURES.index("wai_mean")
    coef[:, flips] = [0.3, -0.2, 0.25, -0.3, 0.2, 0.1, -0.4, 0.3]
    coef[:, steady] = [0.3, 0.2, 0.25, 0.3, 0.2, 0.1, -0.1, 0.3]  # 7 of 8 agree
    coef[:, known] = [0.3, -0.2, 0.25, -0.3, 0.2, 0.1, -0.4, 0.3]  # direction imposed instead
    assert unstable_features(coef) == (flips,)
    assert SIGNS[known] == KNOWN_SIGNS["wai_mean"] == -1


def test_ece_of_known_bins() -> None:
    y = np.array([0, 1, 1, 1, 0, 0])
    p = np.array([0.05, 0.05, 0.95, 0.95, 0.95, 0.95])  # bin 0: 0.5 vs 0.05; bin 9: 0.5 vs 0.95
    assert ece(y, p) == pytest.approx((2 * 0.45 + 4 * 0.45) / 6)
    assert ece(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.0)


def test_created_at_follows_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764547200")
    assert created_at() == "2025-12-01T00:00:00+00:00"


def test_mixture_training_holds_out_worlds_and_records_them(tmp_path: Path) -> None:
    cohort, models = tmp_path / "mix", tmp_path / "models"
    write_mixture(cohort, [0, 1, 2], 700, seed=3, max_sessions=None)
    assert train(cohort, models, "--seed", "1") == 0
    meta = Registry(models).load().metadata
    assert [w["world"] for w in meta["worlds"]] == [0, 1, 2]
    assert (
        meta["worlds"][1]["params"]["dropout_rate"]
        == json.loads((cohort / "simulation.json").read_text())["worlds"][1]["params"][
            "dropout_rate"
        ]
    )
    assert meta["selection"]["folds_hold_out"] == "worlds"
    assert meta["estimator"] == "logistic_regression"
    assert meta["selection"]["chosen"]["estimator"].startswith("logistic_regression_C")
    assert meta["instruments"] == ["ors", "phq9", "srs", "wai_sr"]
    model = Registry(models).load().model
    coef = model.base_.named_steps["logisticregression"].coef_[0][: len(FEATURES)]
    assert all(coef[FEATURES.index(f)] * s >= 0 for f, s in KNOWN_SIGNS.items())
    for name in meta["selection"]["excluded_features"]:
        assert coef[FEATURES.index(name)] == 0.0
    assert meta["feature_range"]["landmark"] == [1.0, 3.0]
