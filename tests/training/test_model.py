"""CalibratedModel keeps scikit-learn's estimator rules: clone and refit, labels from
`predict`, probabilities from `predict_proba`; the shipped pickle still loads."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_predict
from sklearn.utils import estimator_checks
from sklearn.utils.validation import check_is_fitted

from tests.support.helpers import REPO
from training.features import FEATURES
from training.model import CalibratedModel, candidates, fit_calibrator, predictor
from training.registry import LoadedModel, Registry


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return Registry(REPO / "models").load()


def _rows(n: int = 1200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(n, len(FEATURES)))
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (rng.random(n) < 1 / (1 + np.exp(-np.nan_to_num(X[:, 1] - X[:, 4])))).astype(np.int8)
    return X, y, rng.integers(0, 300, size=n)  # several rows per client


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_fit_is_the_training_procedure_and_a_clone_refits_to_the_same_model(method: str) -> None:
    X, y, groups = _rows()
    template = candidates(0)["logistic_regression"]
    model = CalibratedModel(template, method, folds=4, random_state=3).fit(X, y, groups)
    # By hand: out-of-fold scores over client-grouped folds, calibrator, base on all rows.
    folds = list(GroupKFold(n_splits=4, shuffle=True, random_state=3).split(X, y, groups))
    oof = cross_val_predict(clone(template), X, y, cv=folds, method="predict_proba")[:, 1]
    by_hand = CalibratedModel(template, method).with_parts(
        clone(template).fit(X, y), fit_calibrator(method, oof, y)
    )
    p = model.predict_proba(X)
    np.testing.assert_allclose(p, by_hand.predict_proba(X), rtol=0, atol=1e-12)
    refit = clone(model).fit(X, y, groups)
    np.testing.assert_array_equal(refit.predict_proba(X), p)
    assert 0.2 < p[:, 1].mean() < 0.8  # a real fit, not a constant


def test_a_clone_of_a_model_built_from_parts_is_unfitted_until_fit() -> None:
    X, y, groups = _rows()
    template = candidates(0)["logistic_regression"]
    base = clone(template).fit(X, y)
    parts = CalibratedModel(base, "sigmoid", 4, 3).with_parts(
        base, fit_calibrator("sigmoid", base.predict_proba(X)[:, 1], y)
    )
    fresh = clone(parts)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh)
    with pytest.raises(NotFittedError):
        check_is_fitted(fresh.estimator)  # the template's learned state is not carried over
    expected = CalibratedModel(template, "sigmoid", 4, 3).fit(X, y, groups).predict_proba(X)
    np.testing.assert_array_equal(fresh.fit(X, y, groups).predict_proba(X), expected)


def test_predict_gives_labels_and_probability_gives_the_calibrated_probability(
    shipped: LoadedModel,
) -> None:
    X, _, _ = _rows(400)
    proba = shipped.model.predict_proba(X)
    assert proba.shape == (400, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(shipped.probability(X), proba[:, 1], rtol=0, atol=1e-12)
    labels = shipped.model.predict(X)
    assert set(np.unique(labels)) <= {0, 1}
    np.testing.assert_array_equal(labels, (proba[:, 1] >= 0.5).astype(np.int64))


def test_the_shipped_pickle_loads_with_separated_parameters_and_refits(
    shipped: LoadedModel,
) -> None:
    model = shipped.model
    assert set(model.get_params(deep=False)) == {"estimator", "method", "folds", "random_state"}
    assert model.method == shipped.metadata["calibration"]
    check_is_fitted(model)
    X, y, groups = _rows()
    refit = clone(model).fit(X, y, groups)
    assert refit.base_ is not model.base_
    expected = CalibratedModel(**model.get_params(deep=False)).fit(X, y, groups)
    np.testing.assert_array_equal(refit.predict_proba(X), expected.predict_proba(X))


def test_a_model_pickled_before_the_parameters_were_separated_scores_identically(
    shipped: LoadedModel,
) -> None:
    """Artifacts written before (state `base`, `calibrator`, `method`, `classes_`) load
    through CalibratedModel.__setstate__, which unpickling calls with that state."""
    model = shipped.model
    state = dict(model.__getstate__())  # a copy: the fixture's model stays as it is
    for name in ("estimator", "base_", "calibrator_", "folds", "random_state"):
        del state[name]
    state.update(base=model.base_, calibrator=model.calibrator_)
    old = CalibratedModel.__new__(CalibratedModel)
    old.__setstate__(state)
    assert old.base_ is model.base_
    assert old.calibrator_ is model.calibrator_
    assert old.estimator is model.base_  # the fitted base doubles as the template
    X, y, groups = _rows()
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(predictor(old)(X), shipped.probability(X))
    assert old.get_params(deep=False)["method"] == model.method
    refit = clone(old).fit(X, y, groups)
    np.testing.assert_array_equal(refit.predict(X), (refit.predict_proba(X)[:, 1] >= 0.5))


@pytest.mark.parametrize(
    "check",
    [
        estimator_checks.check_no_attributes_set_in_init,
        estimator_checks.check_parameters_default_constructible,
        estimator_checks.check_get_params_invariance,
        estimator_checks.check_set_params,
        estimator_checks.check_estimators_unfitted,
        estimator_checks.check_dont_overwrite_parameters,
        estimator_checks.check_estimators_overwrite_params,
        estimator_checks.check_fit_check_is_fitted,
        estimator_checks.check_fit_score_takes_y,
    ],
    ids=lambda check: check.__name__,
)
def test_scikit_learn_estimator_checks(check: object) -> None:
    """A subset of sklearn.utils.estimator_checks that fits a binary calibrated model."""
    assert callable(check)
    check("CalibratedModel", CalibratedModel(LogisticRegression(), "sigmoid"))
