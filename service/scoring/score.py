"""Scoring request episodes: shared features, the verified model, factors and actions.

Why it is shaped this way: a one-client prediction has about a hundred microseconds for all
of its work (the target is twice a health check), and at that size every numpy or numba
entry costs more than the arithmetic behind it. So the numbers of a request are one
compiled call for a sigmoid-calibrated linear model (the shipped kind): each client's
landmark, its feature row from the shared feature kernel, the rows occluded for its
explanation, the model on all of those rows, the contributions, rounding and level. Any
other model takes three: `_prepare_kernel`, its own `predict`, `_finish_kernel`. The
kernels chained here are the very ones training, batch scoring and `training.explanation`
run (training.features, training.explanation.attribution, training.model,
training.publish); a test holds both paths identical. What stays in Python is what is
made of words: the factor labels and the answer.

The kernel map: what one prediction runs, in order (KERNELS below holds the same list, and
a test holds that each entry is the compiled kernel of the module it names). Every
compiled function is `<what>_kernel` (private: `_<what>_kernel`), compiled from the plain
Python `_<what>_loop` beside it, whose name numba's cache files carry.

| step | kernel | defined in |
| --- | --- | --- |
| 0 | `_cells_kernel`: the sessions into the grid (grid_from_rows) | training/features.py |
| 1 | `_linear_kernel` (or `_prepare_kernel`, `predict`, `_finish_kernel`) | this module |
| 2 | `latest_kernel`: each client's landmark | training/features.py |
| 3 | `features_kernel`: the row (`_row_stats_kernel`, `_write_kernel`) | training/features.py |
| 4 | `stack_kernel`: the row and its occluded copies | training/explanation/attribution.py |
| 5 | `linear_sigmoid_kernel`: the calibrated model on all rows | training/model.py |
| 6 | `split_kernel`: probability and contributions | training/explanation/attribution.py |
| 7 | `publish_kernel`: rounded probability and level | training/publish.py |
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from service.core.prediction import (
    Calibration,
    ModelIdentity,
    NotAtLandmark,
    Prediction,
)
from service.core.schemas import EpisodeIn
from service.scoring.episodes import grid_from_episodes
from training.explanation.actions import suggested_actions
from training.explanation.attribution import split_kernel, stack_kernel
from training.explanation.reference import OcclusionPlan, check_covered, occlusion_plan
from training.explanation.wording import worded
from training.features import SessionGrid, features_kernel, latest_kernel
from training.model import LinearPredictor, linear_sigmoid_kernel
from training.publish import LEVELS, publish_kernel
from training.registry import LoadedModel
from training.vocabulary import Thresholds

DISCLAIMER = "Decision support, not a diagnosis."
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# What the kernels take, as tuples (numba passes tuples of arrays as they are):
# the grid's arrays and the model's sorted landmarks; the occlusion plan's arrays; the terms
# of a sigmoid-calibrated linear model (LinearPredictor.sigmoid_terms).
GridArrays = tuple[FloatArray, FloatArray, IntArray, IntArray, IntArray]
PlanArrays = tuple[IntArray, npt.NDArray[np.bool_], FloatArray, IntArray]
Numbers = tuple[IntArray, IntArray, FloatArray, FloatArray, IntArray, FloatArray]


def _prepare_loop(
    grid: GridArrays, plan: PlanArrays
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """(the m clients at a landmark, their landmarks, their feature rows (m, F), and those
    rows stacked with their occluded copies (F, (G + 1) * m))."""
    values, age, gender, reached, landmarks = grid
    ks = latest_kernel(reached, landmarks)
    rows = np.flatnonzero(ks)
    marks = ks[rows]
    X = features_kernel(values, age, gender, marks, rows).T
    return rows, marks, X, stack_kernel(X, marks, plan[0], plan[1], plan[2], plan[3])


def _finish_loop(
    scored: FloatArray, m: int, moderate: float, high: float
) -> tuple[FloatArray, IntArray, FloatArray]:
    """(published probability, level index, contributions (m, G)) of m stacked rows."""
    p, contribution = split_kernel(scored, m)
    rounded, level = publish_kernel(p, moderate, high)
    return rounded, level, contribution


def _linear_loop(
    grid: GridArrays, plan: PlanArrays, terms: tuple[Any, ...], moderate: float, high: float
) -> Numbers:
    """`_prepare_kernel`, the sigmoid-calibrated linear model and `_finish_kernel` in one
    call: the shipped kind of model, scored without a trip back to Python in between."""
    rows, marks, X, stacked = _prepare_kernel(grid, plan)
    m = rows.shape[0]
    if m == 0:
        return rows, marks, X, np.empty(0), np.empty(0, dtype=np.int64), np.empty((0, 1))
    scored = linear_sigmoid_kernel(stacked.T, *terms)
    p, level, contribution = _finish_kernel(scored, m, moderate, high)
    return rows, marks, X, p, level, contribution


_prepare_kernel: Callable[..., tuple[IntArray, IntArray, FloatArray, FloatArray]] = numba.njit(
    cache=True, nogil=True
)(_prepare_loop)
_finish_kernel: Callable[..., tuple[FloatArray, IntArray, FloatArray]] = numba.njit(
    cache=True, nogil=True
)(_finish_loop)
_linear_kernel: Callable[..., Numbers] = numba.njit(cache=True, nogil=True)(_linear_loop)

# The kernel map of the module docstring, in the order a prediction runs them: (module,
# name). training.model's `_linear_logit_kernel` is the uncalibrated score of batch paths.
KERNELS: tuple[tuple[str, str], ...] = (
    ("training.features", "_cells_kernel"),
    (__name__, "_linear_kernel"),
    (__name__, "_prepare_kernel"),
    ("training.features", "latest_kernel"),
    ("training.features", "features_kernel"),
    ("training.features", "_row_stats_kernel"),
    ("training.features", "_write_kernel"),
    ("training.explanation.attribution", "stack_kernel"),
    ("training.model", "linear_sigmoid_kernel"),
    (__name__, "_finish_kernel"),
    ("training.explanation.attribution", "split_kernel"),
    ("training.publish", "publish_kernel"),
)


@dataclass(frozen=True)
class _Serving:
    """What scoring needs of one model, read from its metadata once (it is read-only)."""

    landmarks: IntArray  # sorted
    max_session: int
    thresholds: tuple[float, float]
    plan: OcclusionPlan
    # the parts of every answer that depend on the model only, shared by all its answers
    # (immutable values)
    identity: ModelIdentity
    levels: Thresholds
    not_reached: NotAtLandmark
    linear: tuple[Any, ...] | None  # the terms of a sigmoid-calibrated linear model
    local_clinic: str | None  # the clinic whose data the model was updated on, if any
    updated_on: str  # the date the model was made (for a local update: of the update)


# model -> cap -> its serving data; an entry goes when its model is no longer loaded. The one
# cache of model-derived serving data (the occlusion plan of the model's reference client
# included), keyed by the model object itself.
_SERVING: weakref.WeakKeyDictionary[LoadedModel, dict[int | None, _Serving]] = (
    weakref.WeakKeyDictionary()
)


def _serving(model: LoadedModel, cap: int | None) -> _Serving:
    by_cap = _SERVING.get(model)
    if by_cap is None:
        by_cap = _SERVING[model] = {}
    serving = by_cap.get(cap)
    if serving is None:
        serving = by_cap[cap] = _serving_of(model, cap)
    return serving


def _serving_of(model: LoadedModel, cap: int | None) -> _Serving:
    meta = model.meta
    marks = tuple(meta.landmarks)
    landmarks = tuple(k for k in marks if cap is None or k <= cap) or marks[:1]
    plan = occlusion_plan(meta.reference)
    check_covered(plan, list(landmarks))  # a model without a reference client is refused
    levels = meta.thresholds.cutoffs
    return _Serving(
        landmarks=np.array(sorted(landmarks), dtype=np.int64),
        max_session=max(landmarks),
        thresholds=(float(levels.moderate), float(levels.high)),
        plan=plan,
        identity=ModelIdentity(model.version, meta.sha256),
        levels=levels,
        not_reached=NotAtLandmark(
            f"the episode has not reached session {min(landmarks)}, the first landmark; "
            "no risk can be computed yet"
        ),
        linear=(
            model.probability.sigmoid_terms()
            if isinstance(model.probability, LinearPredictor)
            else None
        ),
        local_clinic=None if meta.lineage is None else meta.lineage.clinic,
        updated_on=meta.created_at[:10],
    )


def standing(serving: _Serving, clinic: str | None) -> tuple[Calibration, str | None]:
    """The model's standing at the clinic it answers (calibration, locally_updated_on):
    "local" when it was updated on this clinic's data (with the date of that update), else
    "network-default" (not checked at this clinic). The JSON API, stored risks, FHIR, CDS
    and the UI all say it."""
    if clinic is not None and serving.local_clinic == clinic:
        return "local", serving.updated_on
    return "network-default", None


def _numbers(model: LoadedModel, serving: _Serving, grid: SessionGrid) -> Numbers:
    """(the m clients at a landmark, their landmarks, feature rows, published probabilities,
    level indices and contributions (m, G)); m may be 0."""
    plan = serving.plan
    arrays = (grid.values, grid.age, grid.gender, grid.reached, serving.landmarks)
    occlusion = (plan.slot, plan.replace, plan.fill, plan.guard)
    if serving.linear is not None:
        return _linear_kernel(arrays, occlusion, serving.linear, *serving.thresholds)
    rows, marks, X, stacked = _prepare_kernel(arrays, occlusion)
    if not rows.shape[0]:  # nothing to predict (a model may not take zero rows)
        return rows, marks, X, np.empty(0), np.empty(0, dtype=np.int64), np.empty((0, 1))
    scored = np.asarray(model.probability(stacked.T), dtype=np.float64)
    return rows, marks, X, *_finish_kernel(scored, rows.shape[0], *serving.thresholds)


def score(
    model: LoadedModel,
    episodes: Sequence[EpisodeIn],
    max_landmark: int | None = None,
    clinic: str | None = None,
) -> list[Prediction | NotAtLandmark]:
    """One answer (or the reason there is none: a NotAtLandmark, an immutable value) per
    episode, in order, as answered to `clinic` (its model's standing there: `standing`)."""
    serving = _serving(model, max_landmark)
    grid = grid_from_episodes(episodes, serving.max_session)
    rows, marks, X, p, level, C = _numbers(model, serving, grid)
    out: list[Prediction | NotAtLandmark] = [serving.not_reached] * len(episodes)
    if not rows.shape[0]:
        return out
    factors = worded(X, marks, C, serving.plan)
    calibration, updated_on = standing(serving, clinic)
    identity, levels = serving.identity, serving.levels
    for i, k, probability, level_word, reasons in zip(
        rows.tolist(), marks.tolist(), p.tolist(), LEVELS[level].tolist(), factors, strict=True
    ):
        out[i] = Prediction(
            client_id=episodes[i].client_id,
            probability=probability,
            risk_level=level_word,
            landmark_session=k,
            model=identity,
            thresholds=levels,
            disclaimer=DISCLAIMER,
            calibration=calibration,
            locally_updated_on=updated_on,
            factors=tuple(reasons),
            suggested_actions=tuple(suggested_actions(reasons)),
        )
    return out
