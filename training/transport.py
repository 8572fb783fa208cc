"""Choosing a model that transports between worlds, from a mixture of simulated worlds.

A model fitted to one cohort learns that cohort: in particular links that hold in its
simulator but that research does not establish (session spacing). On a mixture of worlds
(training/worlds.py) three things make the model lean only on what holds everywhere:

- directions known from research are imposed (`KNOWN_SIGNS`: lower alliance never lowers
  risk, a falling alliance never lowers it, a rupture-sized drop never lowers it, younger
  age never lowers it); the other features are free;
- a free feature whose effect flips between worlds is left out (`unstable_features`);
- cross-validation folds hold out whole worlds, so the regularisation strength and the
  calibration are those that do best on worlds the model has not seen.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from training.features import FEATURES

FloatArray = npt.NDArray[np.float64]

# +1: more of the feature never lowers risk; -1: more never raises it (sources in the
# module docstring and docs/simulator.md). Features not listed are free.
KNOWN_SIGNS: dict[str, int] = {
    **dict.fromkeys(
        ("wai_mean", "wai_last", "wai_min", "wai_goal_last", "wai_task_last", "wai_bond_last"),
        -1,
    ),
    **dict.fromkeys(("srs_mean", "srs_last", "srs_min"), -1),
    "wai_change": -1,
    "srs_change": -1,
    "wai_drop_max": 1,
    "srs_drop_max": 1,
    "srs_below36": 1,
    "age": -1,
}
SIGNS: tuple[int, ...] = tuple(KNOWN_SIGNS.get(name, 0) for name in FEATURES)
STRENGTHS: tuple[float, ...] = (0.003, 0.03, 1.0)  # C values compared over held-out worlds
AGREEMENT = 0.75  # a free feature is kept when this share of its votes agree on its sign
MIN_EFFECT = 0.02  # a world votes on a feature's sign when its coefficient is at least this


def within_world_logistic() -> Pipeline:
    """An unconstrained, lightly penalised logistic model on every feature, fitted inside one
    world: what measures each feature's effect there (world_coefficients) and the linear
    ceiling a world's own data allow (bench/transport.py)."""
    return make_pipeline(
        SimpleImputer(strategy="median", keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000),
    )


def world_coefficients(
    X: FloatArray, y: npt.NDArray[np.int8], worlds: npt.NDArray[np.int64]
) -> FloatArray:
    """(n_worlds, n_features) standardised coefficients of a logistic model fitted within
    each world (NaN where a world never observes the feature)."""
    out = []
    for k in np.unique(worlds):
        rows = worlds == k
        model = within_world_logistic().fit(X[rows], y[rows])
        coef = model[-1].coef_[0].copy()
        coef[np.isnan(X[rows]).all(axis=0)] = np.nan
        out.append(coef)
    return np.vstack(out)


def unstable_features(coefficients: FloatArray) -> tuple[int, ...]:
    """Free features whose sign is not shared by AGREEMENT of the worlds where the feature
    has an effect (a standardised coefficient of at least MIN_EFFECT)."""
    out = []
    for j, sign in enumerate(SIGNS):
        seen = coefficients[:, j][~np.isnan(coefficients[:, j])]
        if sign or not seen.size:
            continue
        votes = np.sign(seen[np.abs(seen) >= MIN_EFFECT])
        if votes.size and max((votes > 0).mean(), (votes < 0).mean()) < AGREEMENT:
            out.append(j)
    return tuple(out)


ECE_BINS = 10


def ece(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the row-weighted mean |observed - predicted| over
    equal-width probability bins (NaN for no rows)."""
    labels = np.asarray(y, dtype=np.float64).ravel()
    probs = np.asarray(p, dtype=np.float64).ravel()
    if not labels.size:
        return float("nan")
    which = np.minimum((probs * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, labels, bins) - np.bincount(which, probs, bins))
    return float(gap.sum() / count.sum())
