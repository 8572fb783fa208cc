"""Candidate estimators and the calibrated model that ships in an artifact.

Calibration is fitted on out-of-fold scores of the base estimator (grouped by client),
then the base is refitted on all development rows: the scheme of scikit-learn's
CalibratedClassifierCV(ensemble=False), done by hand so the out-of-fold scores computed
for model selection are reused instead of fitting every fold twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numba
import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

FloatArray = npt.NDArray[np.float64]

# Isotonic steps can reach exactly 0 or 1; a clinical probability never should.
PROBABILITY_FLOOR = 0.001
LOGIT_CLIP = 1e-6  # scores are clipped this far inside (0, 1) before the sigmoid calibrator
CALIBRATION_METHODS: tuple[str, ...] = ("sigmoid", "isotonic")
CLIP_QUANTILES = (0.005, 0.995)  # FeatureClip: the training range of each feature
# Pipeline step names, set explicitly here because predictor() and feature_clip() read
# the fitted steps by name (they are make_pipeline's names, which the shipped pickle holds).
CLIP_STEP, IMPUTER_STEP, SCALER_STEP = "featureclip", "simpleimputer", "standardscaler"
LOGISTIC_STEP = "logisticregression"
LINEAR_STEPS = frozenset({CLIP_STEP, IMPUTER_STEP, SCALER_STEP, LOGISTIC_STEP})


class DropEmptyColumns(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Drops features with no observed value in training: an instrument the clinic never
    collects. HistGradientBoosting cannot bin an all-missing column."""

    def fit(self, X: FloatArray, y: Any = None) -> DropEmptyColumns:
        self.keep_ = np.flatnonzero(~np.isnan(X).all(axis=0))
        return self

    def transform(self, X: FloatArray) -> FloatArray:
        kept: FloatArray = X[:, self.keep_]
        return kept


class FeatureClip(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Clips every feature to the range seen in training (NaN stays NaN).

    Why: a linear model extrapolates without bound, so one feature far outside the training
    data (session gaps in a clinic that meets fortnightly) can dominate a score. Clipped, a
    feature never counts for more than at the edge of what the model was trained on. The
    range is recorded in metadata.json as `feature_range`; a feature never observed in
    training gets (-inf, inf) here and null there. The range is the central 99% of the
    training values (CLIP_QUANTILES), so a handful of extreme rows does not set it.
    """

    def fit(self, X: FloatArray, y: Any = None) -> FeatureClip:
        seen = ~np.isnan(X).all(axis=0)
        self.low_ = np.full(X.shape[1], -np.inf)
        self.high_ = np.full(X.shape[1], np.inf)
        self.low_[seen], self.high_[seen] = np.nanquantile(X[:, seen], CLIP_QUANTILES, axis=0)
        return self

    def transform(self, X: FloatArray) -> FloatArray:
        clipped: FloatArray = np.clip(X, self.low_, self.high_)  # NaN passes through
        return clipped


class SignedLogisticRegression(LogisticRegression):  # type: ignore[misc]
    """A logistic regression whose coefficients respect known directions of effect.

    `signs[j]` is +1 (more of feature j never lowers risk), -1 (never raises it) or 0 (free)
    for the first len(signs) input columns; columns in `excluded` get no weight at all.
    Why: across plausible worlds only the direction of some effects is known from research
    (lower alliance never lowers risk), and collinear alliance features can take the wrong
    sign in one cohort. A column that takes the wrong sign is dropped and the rest refitted,
    until none does; dropped columns keep a zero weight, so the input layout never changes.
    """

    def __init__(
        self,
        C: float = 1.0,
        max_iter: int = 2000,
        signs: tuple[int, ...] = (),
        excluded: tuple[int, ...] = (),
    ) -> None:
        super().__init__(C=C, max_iter=max_iter)
        self.signs = signs
        self.excluded = excluded

    def fit(
        self, X: FloatArray, y: npt.NDArray[np.int8], sample_weight: Any = None
    ) -> SignedLogisticRegression:
        width = X.shape[1]
        sign = np.zeros(width)
        sign[: len(self.signs)] = self.signs
        active = np.ones(width, dtype=bool)
        active[list(self.excluded)] = False
        while True:
            fitted = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(X[:, active], y)
            coef = np.zeros(width)
            coef[active] = fitted.coef_[0]
            wrong = coef * sign < 0
            if not wrong.any():
                break
            active &= ~wrong
        self.coef_, self.intercept_ = coef[None, :], fitted.intercept_
        self.classes_, self.n_features_in_, self.n_iter_ = fitted.classes_, width, fitted.n_iter_
        return self


def _linear_pipeline(logistic: LogisticRegression) -> Pipeline:
    return Pipeline(
        [
            (CLIP_STEP, FeatureClip()),
            (
                IMPUTER_STEP,
                SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            ),
            (SCALER_STEP, StandardScaler()),
            (LOGISTIC_STEP, logistic),
        ]
    )


def linear_preprocessing() -> Pipeline:
    """The linear candidate's preprocessing, unfitted: the clip, median imputation with
    missingness indicators and scaling whose output its logistic regression is handed.
    The sample-size rule counts its columns; a local revision (training.updating) fits
    its terms on them."""
    preprocessing: Pipeline = _linear_pipeline(LogisticRegression())[:-1]
    return preprocessing


def transport_candidates(
    signs: tuple[int, ...], excluded: tuple[int, ...], strengths: tuple[float, ...]
) -> dict[str, Any]:
    """The estimators compared on a mixture of worlds: sign-constrained logistic models
    at each regularisation strength (unfitted); selection over worlds left out picks one."""
    return {
        f"logistic_regression_C{c:g}": _linear_pipeline(
            SignedLogisticRegression(C=c, signs=signs, excluded=excluded)
        )
        for c in strengths
    }


def final_estimator(base: Any) -> Any:
    """The estimator at the end of a pipeline (by position: step names differ between
    candidates), or `base` itself when it is not a pipeline."""
    return base[-1] if isinstance(base, Pipeline) else base


def estimator_kind(base: Any) -> str:
    """The family of a fitted candidate pipeline, as metadata.json's `estimator` names it
    (candidates on a mixture differ only in regularisation: their names say which)."""
    last = final_estimator(base)
    return (
        "logistic_regression"
        if isinstance(last, LogisticRegression)
        else ("hist_gradient_boosting")
    )


def candidates(seed: int) -> dict[str, Any]:
    """The estimators model selection compares on one cohort (unfitted).

    A fully grown random forest is left out on purpose: about 8 ms per prediction and
    large artifacts, for no gain on tabular data of this size (docs/performance.md).
    """
    logistic = _linear_pipeline(LogisticRegression(C=1.0, max_iter=2000))
    boosting = Pipeline(
        [
            (CLIP_STEP, FeatureClip()),
            ("dropemptycolumns", DropEmptyColumns()),
            (
                "histgradientboostingclassifier",
                HistGradientBoostingClassifier(
                    learning_rate=0.1,
                    max_iter=120,
                    max_leaf_nodes=15,
                    min_samples_leaf=50,
                    l2_regularization=1.0,
                    early_stopping=False,
                    random_state=seed,
                ),
            ),
        ]
    )
    return {"logistic_regression": logistic, "hist_gradient_boosting": boosting}


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
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
        z = calibrator.intercept_[0] + calibrator.coef_[0, 0] * _logit(scores)
        p = 1.0 / (1.0 + np.exp(-z))
    else:  # IsotonicRegression(out_of_bounds="clip"): piecewise-linear between thresholds
        p = np.interp(scores, calibrator.X_thresholds_, calibrator.y_thresholds_)
    out: FloatArray = np.clip(
        np.asarray(p, dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR
    )
    return out


def grouped_folds(
    X: FloatArray, y: npt.NDArray[np.int8], groups: npt.ArrayLike, folds: int, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Shuffled cross-validation folds that never split a group (a client, or a world):
    at most `folds` of them, fewer when there are fewer groups. Model selection and
    CalibratedModel.fit split by this one rule, so both see the same out-of-fold scores."""
    n_splits = min(folds, int(np.unique(groups).size))
    splitter = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(splitter.split(X, y, groups))


class CalibratedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An estimator whose probabilities are calibrated on its own out-of-fold scores.

    Parameters (what `__init__` stores, what `clone` copies): `estimator`, the base
    estimator to fit (a fitted one is only a template: `clone` drops what it learned);
    `method`, one of CALIBRATION_METHODS; `folds` and `random_state`, the grouped
    cross-validation of `grouped_folds`. Learned by `fit`: `base_` (the estimator refitted
    on all rows), `calibrator_` (fitted on the out-of-fold scores) and `classes_`.
    Training computes the out-of-fold scores once for model selection and hands the parts
    to `with_parts` instead of fitting every fold twice; `fit` is the same procedure.
    """

    def __init__(
        self, estimator: Any = None, method: str = "sigmoid", folds: int = 5, random_state: int = 0
    ) -> None:
        self.estimator = estimator
        self.method = method
        self.folds = folds
        self.random_state = random_state

    def fit(
        self, X: FloatArray, y: npt.NDArray[np.int8], groups: npt.ArrayLike | None = None
    ) -> CalibratedModel:
        """Out-of-fold scores of the estimator (folds never split one of `groups`; each row
        is its own group when none are given), the calibrator fitted on them, and the
        estimator refitted on all rows: CalibratedClassifierCV(ensemble=False)'s scheme."""
        groups = np.arange(len(y)) if groups is None else groups
        folds = grouped_folds(X, y, groups, self.folds, self.random_state)
        scores = cross_val_predict(clone(self.estimator), X, y, cv=folds, method="predict_proba")[
            :, 1
        ]
        base = clone(self.estimator).fit(X, y)
        return self.with_parts(base, fit_calibrator(self.method, scores, y))

    def with_parts(self, base: Any, calibrator: Any) -> CalibratedModel:
        """This model, fitted: `base` is the estimator fitted on all rows and `calibrator`
        was fitted by `fit_calibrator(self.method, ...)` on its out-of-fold scores."""
        self.base_, self.calibrator_ = base, calibrator
        self.classes_ = np.array([0, 1])
        return self

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Loads pickles written before parameters and learned parts were separated (the
        shipped model in models/ is one): their fitted `base` and `calibrator` become
        `base_` and `calibrator_`, and the fitted base doubles as the `estimator` template;
        the fold parameters, never recorded then, take their defaults."""
        if "base" in state:
            state = dict(state)
            state["estimator"] = state["base_"] = state.pop("base")
            state["calibrator_"] = state.pop("calibrator")
            state.setdefault("folds", 5)
            state.setdefault("random_state", 0)
        super().__setstate__(state)

    def predict_proba(self, X: FloatArray) -> FloatArray:
        """Columns: P(completes), P(drops out)."""
        check_is_fitted(self)
        raw = self.base_.predict_proba(X)[:, 1]
        p = apply_calibrator(self.calibrator_, raw)
        return np.column_stack([1 - p, p])

    def predict(self, X: FloatArray) -> npt.NDArray[np.int64]:
        """Class labels: 1 (drops out) where P(drops out) >= 0.5, else 0. The service's
        risk levels use the thresholds in metadata.json, not this label."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


Predictor = Callable[[FloatArray], FloatArray]


def _linear_logit_loop(
    X: FloatArray,
    low: FloatArray,
    high: FloatArray,
    kept: npt.NDArray[np.intp],
    fill: FloatArray,
    indicator: npt.NDArray[np.intp],
    weight: FloatArray,
    offset: float,
) -> FloatArray:
    """offset + weights . (X clipped to [low, high] per column and imputed, then missingness
    indicators), one column at a time.

    Compiled, because numpy's per-call cost dominates a request's 1-11 rows, and looping
    column by column over a million rows never materialises an imputed copy of X."""
    n = X.shape[0]
    out = np.full(n, offset)
    for j in range(kept.shape[0]):
        column, w, f = kept[j], weight[j], fill[j]
        lo, hi = low[column], high[column]
        for i in range(n):
            v = X[i, column]
            out[i] += w * (f if np.isnan(v) else min(max(v, lo), hi))
    for j in range(indicator.shape[0]):
        column, w = indicator[j], weight[kept.shape[0] + j]
        for i in range(n):
            if np.isnan(X[i, column]):
                out[i] += w
    return out


def _linear_sigmoid_loop(
    X: FloatArray,
    low: FloatArray,
    high: FloatArray,
    kept: npt.NDArray[np.intp],
    fill: FloatArray,
    indicator: npt.NDArray[np.intp],
    weight: FloatArray,
    offset: float,
    a: float,
    b: float,
) -> FloatArray:
    """The linear model's probability, sigmoid-calibrated: apply_calibrator's formulas."""
    out = _linear_logit_kernel(X, low, high, kept, fill, indicator, weight, offset)
    for i in range(out.shape[0]):
        q = min(max(1.0 / (1.0 + np.exp(-out[i])), LOGIT_CLIP), 1 - LOGIT_CLIP)
        p = 1.0 / (1.0 + np.exp(-(a + b * np.log(q / (1 - q)))))
        out[i] = min(max(p, PROBABILITY_FLOOR), 1 - PROBABILITY_FLOOR)
    return out


_linear_logit_kernel: Callable[..., FloatArray] = numba.njit(cache=True, nogil=True)(
    _linear_logit_loop
)
# Public so that compiled callers (the service's scoring kernel) can score inside their loop.
linear_sigmoid_kernel: Callable[..., FloatArray] = numba.njit(cache=True, nogil=True)(
    _linear_sigmoid_loop
)


@dataclass(frozen=True)
class LinearPredictor:
    """The fitted imputer + scaler + logistic pipeline and its calibrator as plain numpy.

    Why: scikit-learn validates its input at every step, which costs about 150 µs per call
    at one row and doubles the time of scoring a million rows (docs/performance.md). The maths
    is the pipeline's own, read from its fitted attributes with the scaling folded into the
    weights; a test holds it equal to `CalibratedModel.predict_proba`.
    """

    low: FloatArray  # per feature, the clip of FeatureClip (-inf/inf: none)
    high: FloatArray
    kept: npt.NDArray[np.intp]  # features the imputer kept (not all-missing in training)
    fill: FloatArray  # their imputed values
    indicator: npt.NDArray[np.intp]  # features whose missingness is an extra input
    weight: FloatArray  # coef / scale, for kept features then indicators
    offset: float  # intercept - sum(coef * mean / scale)
    calibrator: Any

    def logit(self, X: FloatArray) -> FloatArray:
        """The uncalibrated linear predictor (a compiled loop: see _linear_logit_kernel)."""
        out: FloatArray = _linear_logit_kernel(
            X, self.low, self.high, self.kept, self.fill, self.indicator, self.weight, self.offset
        )
        return out

    def sigmoid_terms(self) -> tuple[Any, ...] | None:
        """The arguments after X of `linear_sigmoid_kernel`, which computes this predictor,
        when the calibrator is a sigmoid; None for any other calibrator."""
        if not isinstance(self.calibrator, LogisticRegression):
            return None
        a, b = float(self.calibrator.intercept_[0]), float(self.calibrator.coef_[0, 0])
        terms = (self.low, self.high, self.kept, self.fill, self.indicator, self.weight)
        return (*terms, self.offset, a, b)

    def __call__(self, X: FloatArray) -> FloatArray:
        terms = self.sigmoid_terms()
        if terms is not None:  # sigmoid: all in one loop
            out: FloatArray = linear_sigmoid_kernel(X, *terms)
            return out
        raw = 1.0 / (1.0 + np.exp(-self.logit(X)))
        return apply_calibrator(self.calibrator, raw)


def feature_clip(model: CalibratedModel, n_features: int) -> tuple[FloatArray, FloatArray]:
    """(low, high) per feature of the model's FeatureClip step; unbounded if it has none."""
    clip = getattr(model.base_, "named_steps", {}).get(CLIP_STEP)
    if clip is None:
        return np.full(n_features, -np.inf), np.full(n_features, np.inf)
    return clip.low_, clip.high_


@dataclass(frozen=True)
class LinearForm:
    """offset + weight . (X clipped to [low, high] and imputed, then missingness
    indicators): a fitted clip + imputer + scaler + linear weights as plain numpy, the
    scaling folded into the weights. `LinearPredictor` holds one for the fitted pipeline;
    a local update (training.updating) holds one for its revision terms, so both compute
    the linear part with the same compiled loop."""

    low: FloatArray
    high: FloatArray
    kept: npt.NDArray[np.intp]
    fill: FloatArray
    indicator: npt.NDArray[np.intp]
    weight: FloatArray
    offset: float

    def __call__(self, X: FloatArray) -> FloatArray:
        out: FloatArray = _linear_logit_kernel(
            X, self.low, self.high, self.kept, self.fill, self.indicator, self.weight, self.offset
        )
        return out


def linear_form(
    low: npt.ArrayLike,
    high: npt.ArrayLike,
    imputer: Any,
    scaler: Any,
    coef: FloatArray,
    intercept: float,
) -> LinearForm:
    """The linear form of `intercept + coef . scaler(imputer(clip(X)))` for a fitted
    SimpleImputer (with or without indicators) and StandardScaler."""
    kept = np.flatnonzero(~np.isnan(imputer.statistics_))
    indicator = getattr(imputer, "indicator_", None)
    return LinearForm(
        low=np.asarray(low, dtype=np.float64),
        high=np.asarray(high, dtype=np.float64),
        kept=kept,
        fill=imputer.statistics_[kept],
        indicator=np.asarray(indicator.features_ if indicator is not None else [], np.intp),
        weight=coef / scaler.scale_,
        offset=float(intercept - np.sum(coef * scaler.mean_ / scaler.scale_)),
    )


@runtime_checkable
class OwnPredictor(Protocol):
    """A model that knows its own fastest exact scoring function (training.updating's
    UpdatedModel: the parent's predictor, then the local update)."""

    def predictor(self) -> Predictor: ...


def predictor(model: CalibratedModel | OwnPredictor) -> Predictor:
    """The fastest exact way to get calibrated probabilities from a fitted model."""
    if isinstance(model, OwnPredictor):
        return model.predictor()
    base = model.base_
    steps = getattr(base, "named_steps", {})
    imputer, scaler, logistic = (
        steps.get(IMPUTER_STEP),
        steps.get(SCALER_STEP),
        steps.get(LOGISTIC_STEP),
    )
    extra = set(steps) - LINEAR_STEPS
    if extra or imputer is None or scaler is None or logistic is None:
        return lambda X: model.predict_proba(X)[:, 1]
    low, high = feature_clip(model, imputer.statistics_.shape[0])
    form = linear_form(low, high, imputer, scaler, logistic.coef_[0], logistic.intercept_[0])
    return LinearPredictor(**vars(form), calibrator=model.calibrator_)
