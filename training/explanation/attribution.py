"""Why a client's risk is what it is: factor contributions by occlusion against a reference.

Method. Each factor is a group of features (FACTOR_GROUPS); the groups partition the
explained features. For a feature row x at landmark k, the group's features are replaced by
the values of the reference client for landmark k (the median development example, stored
in the model metadata; a feature whose reference is None, never observed at that landmark,
keeps the client's value, and so does a measure the client has no value of) and the model
is asked again. The contribution is p(x) - p(x with the group at the reference), in
probability points: positive means the client's values in that group raise the risk above
what a typical client's values would give, everything else about the client held fixed.

Why this method: it needs nothing from the model but its calibrated `predict`, so it works
for the logistic model and for boosted trees alike, and it answers the question a
clinician asks ("compared with a typical client, what about this one matters?"). For a
logistic model with sigmoid calibration it is exact in logit space: the logit difference of
a group is its weights times the (imputed) differences from the reference, and since no
feature is in two groups, the groups' logit differences add up to the client's. Correlated
features (the alliance's level, trend and facets) sit in one group, so the model's way of
splitting weight between them cannot flip a factor's sign. For trees it is a consistent
attribution against one fixed reference client. The words are chosen among the true
statements about the client that agree with the group's direction (see `_WORDS`).

Why it is vectorised: it runs inside a web request and on 1,000-client batches. All
occluded rows of all clients are stacked into one matrix, together with the clients' own
rows, and `predict` is called once per chunk of rows (once for any request); the Python
left per client is sorting a handful of numbers and writing at most `top` labels.

Gender is deliberately not a factor: shown factors must be actionable and must not
stigmatise. `landmark` is not one either (it is when the prediction is made, not a trait).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from training.explanation.groups import GROUP_CODES, Factor, FloatArray, IntArray, Reference
from training.explanation.reference import OcclusionPlan, check_covered, occlusion_plan
from training.explanation.wording import worded
from training.features import FEATURES
from training.model import Predictor

# Clients per predict call: a 1,000-client request is one call (11,000 stacked rows, 2.5 MB);
# a million clients cannot exhaust memory.
CHUNK_CLIENTS = 4096

# --- contributions ------------------------------------------------------------------------
# Two compiled loops around one predict call: numpy would take a dozen calls to build and
# split the stacked rows, and at one client each costs more than the arithmetic.


def _stack_loop(
    X: FloatArray,
    marks: IntArray,
    slot: IntArray,
    replace: npt.NDArray[np.bool_],
    fill: FloatArray,
    guard: IntArray,
) -> FloatArray:
    """(F, (G + 1) * n): column g * n + i is row i with group g - 1 at the reference of its
    landmark (g = 0: as is), except features whose guard is missing in the row (a measure
    the client has no value of keeps it). Transposed by the caller into rows that are
    column-major, so a predictor walking one feature at a time reads contiguous memory."""
    n, n_features = X.shape
    copies = replace.shape[2]
    out = np.empty((n_features, copies * n))
    for i in range(n):
        s = slot[marks[i]]
        for f in range(n_features):
            v = X[i, f]
            keep = np.isnan(X[i, guard[f]])
            for g in range(copies):
                out[f, g * n + i] = fill[s, f, g] if replace[s, f, g] and not keep else v
    return out


def _split_loop(scored: FloatArray, n: int) -> tuple[FloatArray, FloatArray]:
    """p(x) (n,) and contributions (n, G): p(x) minus p(x with group g at the reference)."""
    groups = scored.shape[0] // n - 1
    p = scored[:n].copy()
    contribution = np.empty((n, groups))
    for i in range(n):
        for g in range(groups):
            contribution[i, g] = p[i] - scored[(g + 1) * n + i]
    return p, contribution


# Public so that a compiled caller (service.scoring.score) can run them inside its own kernel.
stack_kernel = numba.njit(cache=True, nogil=True)(_stack_loop)
split_kernel = numba.njit(cache=True, nogil=True)(_split_loop)


def _block(
    predict: Predictor, X: FloatArray, marks: IntArray, plan: OcclusionPlan
) -> tuple[FloatArray, FloatArray]:
    """p(x) (n,) and contributions (n, G) of rows scored in one predict call."""
    stacked = stack_kernel(X, marks, plan.slot, plan.replace, plan.fill, plan.guard).T
    scored = np.asarray(predict(stacked), dtype=np.float64)
    out: tuple[FloatArray, FloatArray] = split_kernel(scored, X.shape[0])
    return out


def _occlusion(
    predict: Predictor, X: FloatArray, marks: IntArray, plan: OcclusionPlan
) -> tuple[FloatArray, FloatArray]:
    """p(x) and the (n, G) contributions, one predict call per CHUNK_CLIENTS rows."""
    check_covered(plan, marks.tolist())
    step = CHUNK_CLIENTS
    if X.shape[0] <= step:
        return _block(predict, X, marks, plan)
    parts = [
        _block(predict, X[i : i + step], marks[i : i + step], plan)
        for i in range(0, X.shape[0], step)
    ]
    return np.concatenate([p for p, _ in parts]), np.vstack([c for _, c in parts])


def _inputs(X: npt.ArrayLike, landmark: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    rows = np.asarray(X, dtype=np.float64)
    marks = np.asarray(landmark, dtype=np.int64).reshape(-1)
    if rows.ndim != 2 or rows.shape[1] != len(FEATURES) or marks.shape[0] != rows.shape[0]:
        raise ValueError(
            f"X must be (n, {len(FEATURES)}) with one landmark per row; "
            f"got X {rows.shape}, landmark {marks.shape}"
        )
    return rows, marks


def contributions(
    predict: Predictor, X: npt.ArrayLike, landmark: npt.ArrayLike, reference: Reference
) -> tuple[FloatArray, FloatArray]:
    """(p, C): p(x) per row (n,) and C[i, g] = p(x_i) - p(x_i with group g at reference),
    groups in FACTOR_GROUPS order. Unrounded and for every group, for analysis and tests;
    `explain` words the largest."""
    rows, marks = _inputs(X, landmark)
    if rows.shape[0] == 0:
        return np.empty(0), np.empty((0, len(GROUP_CODES)))
    return _occlusion(predict, rows, marks, occlusion_plan(reference))


# --- explanations -------------------------------------------------------------------------


def explain(
    predict: Predictor,
    X: npt.ArrayLike,
    landmark: npt.ArrayLike,
    reference: Reference,
    top: int = 3,
    min_abs: float = 0.005,
) -> list[list[Factor]]:
    """Per row, up to `top` factors with |contribution| >= min_abs, largest first.

    predict: calibrated probabilities for an (m, F) matrix; X: (n, F) rows built by
    training.features; landmark: (n,) landmark of each row; reference: the model's
    metadata["reference"]. Filtering uses the rounded contribution the caller sees, so a
    factor of 0.000 points (a group at the reference, up to float noise) never shows. Raises
    ValueError for a landmark without a reference client (0: no session yet).
    """
    rows, marks = _inputs(X, landmark)
    if rows.shape[0] == 0:
        return []
    plan = occlusion_plan(reference)
    _, C = _occlusion(predict, rows, marks, plan)
    return worded(rows, marks, C, plan, top, min_abs)
