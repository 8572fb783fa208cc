"""Candidate estimators and the calibrated model that ships in an artifact.

Calibration is fitted on out-of-fold scores of the base estimator (grouped by client),
then the base is refitted on all development rows: the scheme of scikit-learn's
CalibratedClassifierCV(ensemble=False), done by hand so the out-of-fold scores computed
for model selection are reused instead of fitting every fold twice.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

FloatArray = npt.NDArray[np.float64]

# Isotonic steps can reach exactly 0 or 1; a clinical probability never should.
PROBABILITY_FLOOR = 0.001
CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic")


def candidates(seed: int) -> dict[str, Any]:
    """The estimators model selection compares (unfitted).

    A fully grown random forest is left out on purpose: about 8 ms per prediction and
    large artifacts (engineering.md), for no gain on tabular data of this size.
    """
    logistic: Pipeline = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )
    boosting = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=250,
        max_leaf_nodes=15,
        min_samples_leaf=50,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    return {"logistic_regression": logistic, "hist_gradient_boosting": boosting}


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    out: FloatArray = np.log(q / (1 - q))
    return out


def fit_calibrator(method: str, scores: FloatArray, y: npt.NDArray[np.int8]) -> Any:
    """Fit a map from raw scores to calibrated probabilities."""
    if method == "sigmoid":
        return LogisticRegression(C=1e6, max_iter=1000).fit(_logit(scores)[:, None], y)
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, y)
    raise ValueError(f"unknown calibration method {method!r}")


def apply_calibrator(calibrator: Any, scores: FloatArray) -> FloatArray:
    """Calibrated probabilities for raw scores, kept inside [floor, 1 - floor]."""
    if isinstance(calibrator, LogisticRegression):
        p = calibrator.predict_proba(_logit(scores)[:, None])[:, 1]
    else:
        p = calibrator.predict(scores)
    out: FloatArray = np.clip(
        np.asarray(p, dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR
    )
    return out


class CalibratedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted base estimator and a calibrator fitted on its out-of-fold scores."""

    def __init__(self, base: Any = None, calibrator: Any = None, method: str = "") -> None:
        self.base = base
        self.calibrator = calibrator
        self.method = method

    def fit(self, X: FloatArray, y: npt.NDArray[np.int8]) -> CalibratedModel:
        """Parts are fitted by the training pipeline; this only records the classes."""
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: FloatArray) -> FloatArray:
        """Columns: P(completes), P(drops out)."""
        raw = self.base.predict_proba(X)[:, 1]
        p = apply_calibrator(self.calibrator, raw)
        return np.column_stack([1 - p, p])

    def predict(self, X: FloatArray) -> npt.NDArray[np.int64]:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)
