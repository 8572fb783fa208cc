"""Why a client's risk is what it is: factor contributions by occlusion against a reference.

Method. Each factor is a group of features (FACTOR_GROUPS). For a feature row x at landmark
k, the group's features are replaced by the values of the reference client for landmark k
(the median development example, stored in the model metadata; a feature whose reference
is None, never observed at that landmark, keeps the client's value) and the model is asked
again. The contribution is p(x) - p(x with the group at the reference), in probability
points: positive means the client's values in that group raise the risk above what a
typical client's values would give, everything else about the client held fixed.

Why this method: it needs nothing from the model but its calibrated `predict`, so it works
for the logistic model and for boosted trees alike, and it answers the question a
clinician asks ("compared with a typical client, what about this one matters?"). For a
logistic model with sigmoid calibration it is exact in logit space: the logit difference of
a group is its weights times the (imputed) differences from the reference. For trees it is
a consistent attribution against one fixed reference client. Contributions in probability
points are not additive across groups (the logistic link bends them), and with correlated
features a group's contribution is measured with the other groups held at the client's
values, so it can run against intuition; see docs/explanations.md.

Why it is vectorised: it runs inside a web request and on 1,000-client batches. All
occluded rows of all clients are stacked into one matrix, together with the clients' own
rows, and `predict` is called once per chunk of rows (once for any request); the Python
left per client is sorting a handful of numbers and writing at most `top` labels.

Gender is deliberately not a factor: shown factors must be actionable and must not
stigmatise. `landmark` is not one either (it is when the prediction is made, not a trait).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from math import isnan
from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from training.features import FEATURES, SRS_CUTOFF
from training.model import Predictor

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Reference = Mapping[str, Sequence[float | None]]
Row = list[float]


@dataclass
class Factor:
    """One reason behind a risk, in words a clinician reads and a signed size.

    Not frozen: a frozen dataclass takes three times as long to create, and a 1,000-client
    batch creates 3,000 of them. Nothing changes a factor once `explain` has made it."""

    code: str  # e.g. "alliance_decline"
    label: str  # plain clinical words with the client's own numbers
    direction: Literal["raises", "lowers"]
    contribution: float  # signed, probability points (0.07 = +7 points), 3 decimals


# Features that describe one concept are explained together. The alliance's level, minimum
# and trend all come from the same 2-3 ratings, and a model splits its weight between such
# features arbitrarily: occluding the trend alone, with the level held at the client's own
# values, said "lowers" for 91% of simulated clients whose alliance fell. So the alliance
# (and likewise the session rating) is one group, and the client's pattern names it: a fall
# makes it `alliance_decline`, otherwise `alliance_low` (see factor_code).
FACTOR_GROUPS: dict[str, tuple[str, ...]] = {
    # the whole alliance, its subscales included (the composite is their mean); goal/task
    # and bond also stand alone, to name which facet is weak. Groups may overlap: each is
    # its own counterfactual, and contributions are not meant to add up.
    "alliance": (
        "wai_mean",
        "wai_last",
        "wai_min",
        "wai_change",
        "wai_drop_max",
        "wai_goal_last",
        "wai_task_last",
        "wai_bond_last",
    ),
    "goal_task_low": ("wai_goal_last", "wai_task_last"),
    "bond_low": ("wai_bond_last",),
    "session_rating": (
        "srs_mean",
        "srs_last",
        "srs_min",
        "srs_below36",
        "srs_change",
        "srs_drop_max",
    ),
    "symptoms": ("ors_last", "ors_change", "phq9_last", "phq9_change"),
    "attendance_gaps": ("gap_mean_days", "gap_max_days"),
    "age": ("age",),
    "measures_missing": ("wai_missing", "srs_missing", "ors_missing", "phq9_missing"),
}
# Factor code -> its group; every code a Factor can carry.
GROUP_OF: dict[str, str] = {
    "alliance_low": "alliance",
    "alliance_decline": "alliance",
    "srs_low": "session_rating",
    "srs_decline": "session_rating",
    **{g: g for g in FACTOR_GROUPS if g not in ("alliance", "session_rating")},
}
# A fall worth naming: a quarter point on the WAI-SR item mean (about half a between-client
# SD) or a 0.5 dip; 2 points on the SRS total or a 3-point dip (PCOMS flags SRS drops).
WAI_FALL, WAI_DIP, SRS_FALL, SRS_DIP = 0.25, 0.5, 2.0, 3.0


_J = {name: j for j, name in enumerate(FEATURES)}
_CODES = tuple(FACTOR_GROUPS)
# (groups, features): True where the feature belongs to the group.
_MEMBERSHIP = np.zeros((len(_CODES), len(FEATURES)), dtype=bool)
for _g, _names in enumerate(FACTOR_GROUPS.values()):
    _MEMBERSHIP[_g, [_J[name] for name in _names]] = True
# Clients per predict call: a 1,000-client request is one call (11,000 stacked rows, 2.5 MB);
# a million clients cannot exhaust memory.
CHUNK_CLIENTS = 4096


# --- the reference client -----------------------------------------------------------------


@dataclass(frozen=True)
class OcclusionPlan:
    """What occlusion needs, precomputed once per reference client (the arrays are what
    `stack_kernel` takes)."""

    values: dict[int, list[float]]  # landmark -> the reference client, NaN where None
    slot: IntArray  # landmark -> its index in replace/fill, -1 where there is no reference
    replace: npt.NDArray[np.bool_]  # (L, F, G + 1): copy g takes the reference value here
    fill: FloatArray  # (L, F, G + 1): those reference values


# id(reference) -> (reference, plan). The reference object is kept so its id cannot be
# reused. A model's metadata is read-only once loaded, so its reference is converted once per
# process, not in every request (a web request has about 100 µs to spare for all of this).
_PLANS: dict[int, tuple[Reference, OcclusionPlan]] = {}


def occlusion_plan(reference: Reference) -> OcclusionPlan:
    """The plan of a reference client (a model's metadata["reference"]), built once."""
    hit = _PLANS.get(id(reference))
    if hit is not None and hit[0] is reference:
        return hit[1]
    values: dict[int, list[float]] = {}
    for key, raw in reference.items():
        if len(raw) != len(FEATURES):
            raise ValueError(f"reference for landmark {key} has {len(raw)} values")
        values[int(key)] = [math.nan if v is None else float(v) for v in raw]
    slot = np.full(max(values, default=0) + 1, -1, dtype=np.int64)
    replace = np.zeros((len(values), len(FEATURES), len(_CODES) + 1), dtype=bool)
    fill = np.zeros(replace.shape)
    for s, (k, ref) in enumerate(values.items()):
        slot[k] = s
        replace[s, :, 1:] = (_MEMBERSHIP & ~np.isnan(ref)).T
        fill[s] = np.where(replace[s], np.nan_to_num(ref)[:, None], 0.0)
    plan = OcclusionPlan(values, slot, replace, fill)
    if len(_PLANS) >= 8:  # a process holds one or two models; never grow without bound
        _PLANS.clear()
    _PLANS[id(reference)] = (reference, plan)
    return plan


def check_covered(plan: OcclusionPlan, landmarks: list[int]) -> None:
    """Every landmark must have a reference client: a row at landmark 0 (no session yet)
    has no prediction to explain."""
    missing = set(landmarks) - plan.values.keys()
    if missing:
        raise ValueError(f"no reference client for landmark(s) {sorted(missing)}")


# --- contributions ------------------------------------------------------------------------
# Two compiled loops around one predict call: numpy would take a dozen calls to build and
# split the stacked rows, and at one client each costs more than the arithmetic.


def _stack_loop(
    X: FloatArray, marks: IntArray, slot: IntArray, replace: npt.NDArray[np.bool_], fill: FloatArray
) -> FloatArray:
    """(F, (G + 1) * n): column g * n + i is row i with group g - 1 at the reference of its
    landmark (g = 0: as is). Transposed by the caller into rows that are column-major, so a
    predictor walking one feature at a time reads contiguous memory."""
    n, n_features = X.shape
    copies = replace.shape[2]
    out = np.empty((n_features, copies * n))
    for i in range(n):
        s = slot[marks[i]]
        for f in range(n_features):
            for g in range(copies):
                out[f, g * n + i] = fill[s, f, g] if replace[s, f, g] else X[i, f]
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


# Public so that a compiled caller (service.scoring) can run them inside its own kernel.
stack_kernel = numba.njit(cache=True, nogil=True)(_stack_loop)
split_kernel = numba.njit(cache=True, nogil=True)(_split_loop)


def _block(
    predict: Predictor, X: FloatArray, marks: IntArray, plan: OcclusionPlan
) -> tuple[FloatArray, FloatArray]:
    """p(x) (n,) and contributions (n, G) of rows scored in one predict call."""
    stacked = stack_kernel(X, marks, plan.slot, plan.replace, plan.fill).T
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
        return np.empty(0), np.empty((0, len(_CODES)))
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


def worded(
    X: FloatArray,
    marks: IntArray,
    C: FloatArray,
    plan: OcclusionPlan,
    top: int = 3,
    min_abs: float = 0.005,
) -> list[list[Factor]]:
    """Per row, its largest contributions C (as `contributions` gives them) in words."""
    out: list[list[Factor]] = []
    groups = range(len(_CODES))
    for row, k, row_c in zip(X.tolist(), marks.tolist(), C.tolist(), strict=True):
        # Largest first; sorted() is stable, so ties keep the table's order. Plain Python:
        # ten numbers per client cost less than numpy's per-call overhead at one client.
        magnitude = [-abs(c) for c in row_c]
        order = sorted(groups, key=magnitude.__getitem__)[: max(0, top)]
        factors = []
        for g in order:
            size = round(row_c[g], 3)  # filter on what the caller sees; rounding keeps the
            if size == 0.0 or abs(size) < min_abs:  # order, so every later factor fails too
                break
            factors.append(_factor(_CODES[g], size, row, plan.values[k], k))
        out.append(factors)
    return out


def factor_code(group: str, row: Sequence[float]) -> str:
    """The factor code for a group, from the client's pattern (only alliance and session
    rating have two: a decline, or the level)."""
    if group == "alliance":
        fell = row[_WAI_CHANGE] <= -WAI_FALL or row[_WAI_DROP] >= WAI_DIP
        return "alliance_decline" if fell else "alliance_low"
    if group == "session_rating":
        fell = row[_SRS_CHANGE] <= -SRS_FALL or row[_SRS_DROP] >= SRS_DIP
        return "srs_decline" if fell else "srs_low"
    return group


def _factor(group: str, size: float, row: Row, ref: Row, k: int) -> Factor:
    code = factor_code(group, row)
    raises = size > 0
    trend = _TREND_WORDS.get(group)
    if trend is not None and row[trend[0]] > 0:  # a rise is worded as the trend it is
        label = _LABELS[trend[1]](row, ref, k, raises)
    else:
        label = _LABELS[code](row, ref, k, raises)
    return Factor(code, label, "raises" if raises else "lowers", size)


# --- labels -------------------------------------------------------------------------------
# Labels state the client's own values and how they compare with the typical (reference)
# client; `direction` carries what the model makes of them. Comparisons, not the model's
# direction, choose the words, so a label is never false about the client; the direction
# decides only where the values equal the reference. No identifiers ever enter a label.
# Feature positions are module constants: labels run per shown factor, in batches of 1,000.

(
    _WAI_LAST,
    _WAI_CHANGE,
    _WAI_DROP,
    _GOAL,
    _TASK,
    _BOND,
    _SRS_LAST,
    _SRS_CHANGE,
    _SRS_MIN,
    _SRS_DROP,
    _ORS,
    _ORS_CHANGE,
    _PHQ,
    _PHQ_CHANGE,
    _GAP_MEAN,
    _GAP_MAX,
    _AGE,
    _WAI_MISSING,
    _SRS_MISSING,
) = (
    _J[name]
    for name in (
        "wai_last",
        "wai_change",
        "wai_drop_max",
        "wai_goal_last",
        "wai_task_last",
        "wai_bond_last",
        "srs_last",
        "srs_change",
        "srs_min",
        "srs_drop_max",
        "ors_last",
        "ors_change",
        "phq9_last",
        "phq9_change",
        "gap_mean_days",
        "gap_max_days",
        "age",
        "wai_missing",
        "srs_missing",
    )
)
_MISSING_WORDS = tuple(
    (word, _J[name])
    for word, name in (
        ("WAI-SR", "wai_missing"),
        ("SRS", "srs_missing"),
        ("ORS", "ors_missing"),
        ("PHQ-9", "phq9_missing"),
    )
)


def _below(value: float, typical: float, raises: bool) -> bool:
    """Whether the client sits below the typical client; on a tie (or no typical value),
    what the direction implies for a measure where higher is better."""
    if isnan(typical) or value == typical:
        return raises
    return value < typical


def _wai(value: float) -> str:
    """WAI-SR item means: two decimals (quarter steps), trailing zero dropped (4.0, 3.25)."""
    text = f"{value:.2f}"
    return text[:-1] if text[-1] == "0" else text


def _one(value: float) -> str:
    return f"{value:.1f}"


def _count(value: float) -> str:
    return f"{round(value, 1):g}"


def _trend(row: Row, k: int, at: tuple[int, int, int, int], words: tuple[str, str]) -> str:
    """A fall or a rise with first and last rating. at = (last, change, drop, missing)
    positions; words = (subject, scale). 'From session 1 to k' only when every session was
    rated: otherwise the first rating may come from a later session."""
    last, change = row[at[0]], row[at[1]]
    subject, scale = words
    if isnan(change) or isnan(last):
        return f"{subject} trend not known yet (fewer than two ratings)"
    show = _wai if scale == "WAI-SR" else _one
    numbers = f"{scale} {show(last - change)} → {show(last)}"
    span = f"from session 1 to {k}" if row[at[3]] == 0 else "since first rated"
    if change < 0:
        return f"{subject} fell {span} ({numbers})"
    if change > 0:
        return f"{subject} rose {span} ({numbers})"
    drop = row[at[2]]
    if drop > 0:
        return f"{subject} dipped and recovered ({numbers}, largest fall {show(drop)})"
    return f"{subject} unchanged {span} ({numbers})"


def _alliance_low(row: Row, ref: Row, k: int, raises: bool) -> str:
    last = row[_WAI_LAST]
    if isnan(last):
        return "No alliance rating yet (WAI-SR not recorded)"
    word = "lower" if _below(last, ref[_WAI_LAST], raises) else "higher"
    return f"Alliance {word} than typical (latest WAI-SR {_wai(last)} of 5)"


def _alliance_decline(row: Row, ref: Row, k: int, raises: bool) -> str:
    return _trend(row, k, (_WAI_LAST, _WAI_CHANGE, _WAI_DROP, _WAI_MISSING), ("Alliance", "WAI-SR"))


def _goal_task(row: Row, ref: Row, k: int, raises: bool) -> str:
    goal, task = row[_GOAL], row[_TASK]
    if isnan(goal) and isnan(task):
        return "Goal and task ratings not recorded"
    if isnan(task):
        below, numbers = _below(goal, ref[_GOAL], raises), f"goal {_wai(goal)}"
    elif isnan(goal):
        below, numbers = _below(task, ref[_TASK], raises), f"task {_wai(task)}"
    else:
        below = _below(goal + task, ref[_GOAL] + ref[_TASK], raises)
        numbers = f"goal {_wai(goal)}, task {_wai(task)}"
    return (
        f"{'Less' if below else 'More'} agreement on goals and tasks than typical ({numbers} of 5)"
    )


def _bond(row: Row, ref: Row, k: int, raises: bool) -> str:
    bond = row[_BOND]
    if isnan(bond):
        return "Bond rating not recorded"
    word = "Weaker" if _below(bond, ref[_BOND], raises) else "Stronger"
    return f"{word} emotional bond than typical (bond {_wai(bond)} of 5)"


def _srs_low(row: Row, ref: Row, k: int, raises: bool) -> str:
    last, lowest = row[_SRS_LAST], row[_SRS_MIN]
    if isnan(last):
        return "No session rating recorded (SRS)"
    if last < SRS_CUTOFF:
        return f"Session rating below the cut-off of 36 (last SRS {_one(last)} of 40)"
    if lowest < SRS_CUTOFF:
        return f"Session rating was below 36 earlier (lowest SRS {_one(lowest)} of 40)"
    word = "lower" if _below(last, ref[_SRS_LAST], raises) else "higher"
    return f"Session ratings {word} than typical (last SRS {_one(last)} of 40)"


def _srs_decline(row: Row, ref: Row, k: int, raises: bool) -> str:
    at = (_SRS_LAST, _SRS_CHANGE, _SRS_DROP, _SRS_MISSING)
    return _trend(row, k, at, ("Session rating", "SRS"))


def _symptoms(row: Row, ref: Row, k: int, raises: bool) -> str:
    """Trend when there are two ratings, else level against the clinical cut-offs
    (PHQ-9 >= 10, ORS < 25); a high PHQ-9 and a low ORS mean distress."""
    phq, phq_change, ors, ors_change = row[_PHQ], row[_PHQ_CHANGE], row[_ORS], row[_ORS_CHANGE]
    parts, signs = [], []  # signs: +1 better than at the first rating, -1 worse, 0 same
    if not isnan(phq):
        if isnan(phq_change):
            parts.append(f"PHQ-9 {_count(phq)} of 27")
        else:
            parts.append(f"PHQ-9 {_count(phq - phq_change)} → {_count(phq)}")
            signs.append((phq_change < 0) - (phq_change > 0))
    if not isnan(ors):
        if isnan(ors_change):
            parts.append(f"ORS {_one(ors)} of 40")
        else:
            parts.append(f"ORS {_one(ors - ors_change)} → {_one(ors)}")
            signs.append((ors_change > 0) - (ors_change < 0))
    if not parts:
        return "Symptom measures not recorded"
    return f"{_symptom_head(signs, phq, ors)} ({'; '.join(parts)})"


def _symptom_head(signs: list[int], phq: float, ors: float) -> str:
    if not signs:  # NaN compares False: a missing measure never counts as distress
        clinical = phq >= 10 or ors < 25
        return "Distress in the clinical range" if clinical else "Distress below clinical cut-offs"
    if max(signs) > 0 and min(signs) < 0:
        return "Symptom scores moved in different directions"
    if max(signs) > 0:
        return "Symptoms improving"
    return "Symptoms worsening" if min(signs) < 0 else "Symptoms unchanged"


def _gaps(row: Row, ref: Row, k: int, raises: bool) -> str:
    mean, longest = row[_GAP_MEAN], row[_GAP_MAX]
    if isnan(mean) or isnan(longest):
        return "Spacing of sessions not known (dates not recorded)"
    if not _below(-mean, -ref[_GAP_MEAN], raises):  # shorter gaps are the 'higher' side
        return f"Sessions close together (at most {longest:.0f} days apart)"
    return f"Longer gaps between sessions than typical (up to {longest:.0f} days)"


def _age(row: Row, ref: Row, k: int, raises: bool) -> str:
    age = row[_AGE]
    if isnan(age):
        return "Age not recorded"
    younger = _below(age, ref[_AGE], raises)
    return f"{'Younger' if younger else 'Older'} client (age {age:.0f})"


def _missing(row: Row, ref: Row, k: int, raises: bool) -> str:
    gaps = [f"{word} {_count(row[j])} of {k}" for word, j in _MISSING_WORDS if row[j] > 0]
    if not gaps:
        return "All measures completed"
    return f"Measures not completed in some sessions ({', '.join(gaps)})"


# Groups whose rise is worded by their trend label: group -> (change feature, label code).
_TREND_WORDS: dict[str, tuple[int, str]] = {
    "alliance": (_WAI_CHANGE, "alliance_decline"),
    "session_rating": (_SRS_CHANGE, "srs_decline"),
}

_LABELS: dict[str, Callable[[Row, Row, int, bool], str]] = {
    "alliance_low": _alliance_low,
    "alliance_decline": _alliance_decline,
    "goal_task_low": _goal_task,
    "bond_low": _bond,
    "srs_low": _srs_low,
    "srs_decline": _srs_decline,
    "symptoms": _symptoms,
    "attendance_gaps": _gaps,
    "age": _age,
    "measures_missing": _missing,
}
