"""What the model card needs from the fitted model and the data, recorded at train time.

TRIPOD+AI (Collins et al. 2024, item 12) asks for the full model, so anyone can compute a
prediction by hand, and for the predictors' distributions in development and evaluation data.
The card renders metadata only, so train stores both here: `specification` (a linear champion:
the imputed values, the weights on the original scale and the calibrator; a tree ensemble: its
settings) and `predictors` (median, quartiles and share missing per feature and data set).
The linear form comes from `training.model.predictor`, the serving code's own reading of the
pipeline, so the card's formula is the one that scores clients.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression

from training.features import FEATURES
from training.model import (
    PROBABILITY_FLOOR,
    CalibratedModel,
    LinearForm,
    LinearPredictor,
    final_estimator,
    predictor,
)
from training.provenance_schema import (
    CalibratorSpec,
    LinearTerm,
    Predictors,
    Specification,
    Spread,
)

FloatArray = npt.NDArray[np.float64]
MISSING_SUFFIX = " is missing (0/1)"
TREE_SETTINGS = (
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "min_samples_leaf",
    "l2_regularization",
    "early_stopping",
)


def _calibrator(calibrator: Any) -> CalibratorSpec:
    if isinstance(calibrator, LogisticRegression):
        return CalibratorSpec(
            method="sigmoid",
            formula="p = 1 / (1 + exp(-(a + b * logit(raw))))",
            a=float(calibrator.intercept_[0]),
            b=float(calibrator.coef_[0, 0]),
        )
    return CalibratorSpec(
        method="isotonic",
        formula="p = piecewise-linear interpolation of raw through the knots",
        knots_raw=[float(v) for v in calibrator.X_thresholds_],
        knots_p=[float(v) for v in calibrator.y_thresholds_],
    )


def linear_terms(linear: LinearForm | LinearPredictor) -> list[LinearTerm]:
    """The terms of a linear form with their imputed values, weights and clips: the
    fitted pipeline's (here) and a local revision's (training.update)."""
    kept = [FEATURES[int(j)] for j in linear.kept]
    n_kept = len(kept)
    bounds = [
        (float(linear.low[j]), float(linear.high[j]))
        if np.isfinite(linear.low[j]) and np.isfinite(linear.high[j])
        else (None, None)
        for j in linear.kept
    ]
    terms = [
        LinearTerm(term=name, imputed_with=float(fill), weight=float(w), low=low, high=high)
        for name, fill, w, (low, high) in zip(
            kept, linear.fill, linear.weight[:n_kept], bounds, strict=True
        )
    ]
    terms += [
        LinearTerm(term=f"{FEATURES[int(j)]}{MISSING_SUFFIX}", imputed_with=None, weight=float(w))
        for j, w in zip(linear.indicator, linear.weight[n_kept:], strict=True)
    ]
    return terms


def _linear(linear: LinearPredictor, calibrator: CalibratorSpec) -> Specification:
    return Specification(
        kind="linear",
        formula="raw = 1 / (1 + exp(-(intercept + sum(weight * value)))), a recorded value "
        "first clipped to its training range, a missing value taking its imputed value and "
        "its indicator 1",
        calibrator=calibrator,
        probability_floor=PROBABILITY_FLOOR,
        intercept=float(linear.offset),
        terms=linear_terms(linear),
    )


def model_specification(model: CalibratedModel) -> Specification:
    """The full specification of a fitted model, with its calibrator."""
    form = predictor(model)
    calibrator = _calibrator(model.calibrator_)
    if isinstance(form, LinearPredictor):
        return _linear(form, calibrator)
    estimator = final_estimator(model.base_)
    params = estimator.get_params()
    return Specification(
        kind="tree ensemble",
        formula="a tree ensemble has no closed form: the artifact (model.joblib, SHA-256 "
        "above) is the specification",
        calibrator=calibrator,
        probability_floor=PROBABILITY_FLOOR,
        estimator=type(estimator).__name__,
        settings={k: params[k] for k in TREE_SETTINGS if k in params},
        trees=int(getattr(estimator, "n_iter_", 0)),
    )


def _distribution(column: FloatArray) -> Spread:
    seen = column[np.isfinite(column)]
    if not seen.size:
        return Spread(median=None, p25=None, p75=None, missing=1.0)
    p25, median, p75 = np.percentile(seen, [25, 50, 75])
    return Spread(
        median=float(median),
        p25=float(p25),
        p75=float(p75),
        missing=1.0 - seen.size / column.size,
    )


def predictor_summary(X: npt.ArrayLike) -> dict[str, Spread]:
    """Median, quartiles and share missing of every feature over landmark rows."""
    x = np.asarray(X, dtype=np.float64)
    return {name: _distribution(x[:, j]) for j, name in enumerate(FEATURES)}


def predictors_record(X_dev: npt.ArrayLike, X_eval: npt.ArrayLike) -> dict[str, Any]:
    """The metadata key "predictors": each feature's spread in both sets of rows."""
    summary = Predictors(development=predictor_summary(X_dev), evaluation=predictor_summary(X_eval))
    return summary.model_dump()


def card_facts(
    model: CalibratedModel, X_dev: npt.ArrayLike, X_eval: npt.ArrayLike
) -> dict[str, Any]:
    """The metadata keys "specification" and "predictors" (development vs evaluation rows)."""
    return {
        "specification": model_specification(model).model_dump(),
        "predictors": predictors_record(X_dev, X_eval),
    }
