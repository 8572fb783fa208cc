"""The model card's TRIPOD+AI content: full specification, predictors, worlds, baselines."""

from __future__ import annotations

import dataclasses

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.base import clone

from tests.support.helpers import blank_figures, metadata_of
from training.contract import Cohort
from training.features import FEATURES
from training.figures import (
    Estimate,
    LandmarkFigures,
    LevelFigures,
    RuleComparison,
    RuleFigures,
)
from training.model import CalibratedModel, candidates, fit_calibrator
from training.model_card import NETWORK_DEFAULT_STATEMENT, render_model_card
from training.provenance_schema import Specification, Spread
from training.simulate import simulate
from training.specification import (
    MISSING_SUFFIX,
    model_specification,
    predictor_summary,
    predictors_record,
)
from training.train import labelled_examples

FloatArray = npt.NDArray[np.float64]


def _rows(n_clients: int = 600) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    clients, sessions = simulate(n_clients, seed=19)
    data = labelled_examples(Cohort(clients, sessions), (1, 2, 3))
    return data.examples.X, data.y


def _fitted(name: str, method: str) -> CalibratedModel:
    X, y = _rows()
    base = clone(candidates(0)[name]).fit(X, y)
    calibrator = fit_calibrator(method, base.predict_proba(X)[:, 1], y)
    return CalibratedModel(base, method).with_parts(base, calibrator)


def _by_hand(spec: Specification, X: FloatArray) -> FloatArray:
    """The card's formula, applied as a reader would: clip, impute, add indicators, weigh,
    calibrate."""
    assert spec.intercept is not None
    z = np.full(X.shape[0], spec.intercept)
    for term in spec.terms:
        if term.imputed_with is None:
            column = X[:, FEATURES.index(term.term.removesuffix(MISSING_SUFFIX))]
            z += term.weight * np.isnan(column)
        else:
            column = X[:, FEATURES.index(term.term)]
            if term.low is not None and term.high is not None:
                column = np.clip(column, term.low, term.high)  # NaN stays missing
            z += term.weight * np.where(np.isnan(column), term.imputed_with, column)
    raw = 1.0 / (1.0 + np.exp(-z))
    a, b = spec.calibrator.a, spec.calibrator.b
    assert a is not None
    assert b is not None
    p = 1.0 / (1.0 + np.exp(-(a + b * np.log(raw / (1.0 - raw)))))
    return np.clip(p, spec.probability_floor, 1.0 - spec.probability_floor)


def test_linear_specification_reproduces_the_model_by_hand() -> None:
    model = _fitted("logistic_regression", "sigmoid")
    spec = model_specification(model)
    X, _ = _rows()
    assert spec.kind == "linear"
    assert spec.calibrator.method == "sigmoid"
    np.testing.assert_allclose(_by_hand(spec, X), model.predict_proba(X)[:, 1], rtol=1e-9)
    card = render_model_card(metadata_of(specification=spec.model_dump()))
    wai = next(t for t in spec.terms if t.term == "wai_mean")
    assert wai.imputed_with is not None
    assert wai.low is not None
    assert wai.high is not None
    assert f"| wai_mean | {wai.imputed_with:.4g} | {wai.weight:.6f} | {wai.low:.4g} to " in card
    assert f"Intercept {spec.intercept:.6f}." in card
    assert f"with a = {spec.calibrator.a:.6f}, b = {spec.calibrator.b:.6f}" in card


def test_tree_specification_lists_its_settings() -> None:
    model = _fitted("hist_gradient_boosting", "isotonic")
    spec = model_specification(model)
    assert spec.kind == "tree ensemble"
    assert spec.settings["max_leaf_nodes"] == 15
    assert spec.trees == 120
    assert spec.calibrator.knots_raw == pytest.approx(list(model.calibrator_.X_thresholds_))
    card = render_model_card(metadata_of(specification=spec.model_dump()))
    assert "HistGradientBoostingClassifier with 120 trees; learning_rate = 0.1" in card


def test_predictor_summary_counts_missing_share() -> None:
    x = np.full((4, len(FEATURES)), np.nan)
    x[:, FEATURES.index("srs_last")] = [30.0, 34.0, 38.0, np.nan]
    summary = predictor_summary(x)
    assert summary["srs_last"] == Spread(median=34.0, p25=32.0, p75=36.0, missing=0.25)
    assert summary["wai_mean"] == Spread(median=None, p25=None, p75=None, missing=1.0)
    card = render_model_card(metadata_of(predictors=predictors_record(x, x)))
    assert "| srs_last | 34 (32–36); missing 25.0% | 34 (32–36); missing 25.0% |" in card


def test_network_default_card_names_its_worlds_and_feature_range() -> None:
    meta = metadata_of(
        training_data={"simulated": True},
        worlds=[
            {"name": "routine care", "dropout_rate": 0.3, "clients": 20000},
            {"name": "university clinic", "dropout_rate": 0.18, "clients": 10000},
        ],
        feature_range={"srs_last": [0.0, 40.0], "age": [16.0, 90.0]},
        instruments=["srs", "wai_sr"],
    )
    card = render_model_card(meta)
    top = card[: card.index("## Model details")]
    assert NETWORK_DEFAULT_STATEMENT in top
    assert "not calibrated at any clinic" in top
    assert "| name | dropout_rate | clients |" in card
    assert "| university clinic | 0.18 | 10000 |" in card
    assert "| srs_last | 0.0 | 40.0 |" in card
    assert "Instruments seen in training:** srs, wai_sr" in card
    assert NETWORK_DEFAULT_STATEMENT not in render_model_card(
        metadata_of(training_data={"simulated": True})
    )


def test_card_has_open_science_fields_to_fill() -> None:
    meta = metadata_of()
    card = render_model_card(meta)
    section = card[card.index("## Open science") : card.index("## TRIPOD+AI")]
    assert f"identified by its SHA-256 {meta.sha256}" in section
    assert "**Funding:** to be completed" in section
    assert "**Conflicts of interest:** to be completed" in section
    filled = render_model_card(metadata_of(open_science={"funding": "Grant X-1"}))
    assert "**Funding:** Grant X-1" in filled


def test_card_puts_a_beaten_model_first_and_calibration_per_landmark() -> None:
    rule = RuleFigures(
        name="srs_last_below_36",
        label="last SRS < 36",
        n_examples=500,
        n_dropouts=100,
        model_auc=0.6,
        baseline_auc=0.64,
        model_beats_it=False,
        levels={},
        own_cutoff=None,
        too_few=False,
    )
    none = Estimate()
    landmark = LandmarkFigures(
        landmark=1,
        n=500,
        prevalence=0.2,
        auc=none,
        brier=none,
        calibration_slope=Estimate(estimate=1.3, ci95=(1.1, 1.5)),
        calibration_intercept=Estimate(estimate=0.1, ci95=(0.0, 0.2)),
        high=LevelFigures(flag_rate=none),
    )
    figures = dataclasses.replace(
        blank_figures(),
        per_landmark=(landmark,),
        baselines=RuleComparison(flag_rates={}, rules=(rule,)),
    )
    card = render_model_card(metadata_of(figures))
    top = card[: card.index("## Model details")]
    assert 'does not beat the clinic rule "last SRS < 36": AUC 0.600 for the model' in top
    assert "| last SRS < 36 | 500 | 0.600 vs 0.640 |" in card
    quantitative = card[card.index("## Quantitative analyses") :]
    assert quantitative.index("| after session 1 | 500 | 20.0% | 1.30 (1.10–1.50) |") < (
        quantitative.index("Pooled over landmarks (secondary)")
    )
