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


# The groups partition the explained features: each feature belongs to exactly one group,
# so for a linear model the groups' logit differences add up exactly to the client's logit
# difference from the reference. Features that describe one concept are explained together.
# The alliance's level, minimum, trend and its subscales all come from the same 2-3 ratings
# (the composite is the mean of goal, task and bond), and a model splits its weight between
# such features arbitrarily: occluding the goal/task facet alone, with the composite held at
# the client's own values, said "lowers" for every client of an independent cohort whose
# goal/task agreement was below typical. So the whole alliance is one group, facets
# included, and the words name the part of it the client's values and the group's direction
# agree on: a fall, the weakest facet, or the level (see `_alliance`).
FACTOR_GROUPS: dict[str, tuple[str, ...]] = {
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
    "goal_task_low": "alliance",
    "bond_low": "alliance",
    "srs_low": "session_rating",
    "srs_decline": "session_rating",
    **{g: g for g in FACTOR_GROUPS if g not in ("alliance", "session_rating")},
}
# A measure the client has no value of is not a reason (a site may not collect it, and a
# request cannot tell a site's choice from a skip): its features keep the client's values in
# every occluded copy, so they contribute exactly 0. A count of sessions without the measure
# is kept when the measure has no value at all (its last value is missing); it is a reason
# only when the measure was taken in some sessions and skipped in others.
_COUNT_OF = {
    "wai_missing": "wai_last",
    "srs_missing": "srs_last",
    "ors_missing": "ors_last",
    "phq9_missing": "phq9_last",
}
# A fall worth naming: a quarter point on the WAI-SR item mean (about half a between-client
# SD) or a 0.5 dip; 2 points on the SRS total or a 3-point dip (PCOMS flags SRS drops).
# A facet is named when it sits at least a quarter point below (above) the typical client.
WAI_FALL, WAI_DIP, SRS_FALL, SRS_DIP, FACET_GAP = 0.25, 0.5, 2.0, 3.0, 0.25


_J = {name: j for j, name in enumerate(FEATURES)}
_CODES = tuple(FACTOR_GROUPS)
# (groups, features): True where the feature belongs to the group.
_MEMBERSHIP = np.zeros((len(_CODES), len(FEATURES)), dtype=bool)
for _g, _names in enumerate(FACTOR_GROUPS.values()):
    _MEMBERSHIP[_g, [_J[name] for name in _names]] = True
# Feature -> the feature whose missing value in the client's row keeps it unoccluded.
_GUARD = np.array([_J[_COUNT_OF.get(name, name)] for name in FEATURES], dtype=np.int64)
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
    guard: IntArray  # (F,): feature f keeps the client's value where X[guard[f]] is missing


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
    plan = OcclusionPlan(values, slot, replace, fill, _GUARD)
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
    """Per row, its largest contributions C (as `contributions` gives them) in words. A
    group whose words have nothing true to say in its direction (skipped measures that
    lower the risk) is passed over, so it never crowds out a reason."""
    out: list[list[Factor]] = []
    groups = range(len(_CODES))
    for row, k, row_c in zip(X.tolist(), marks.tolist(), C.tolist(), strict=True):
        # Largest first; sorted() is stable, so ties keep the table's order. Plain Python:
        # six numbers per client cost less than numpy's per-call overhead at one client.
        magnitude = [-abs(c) for c in row_c]
        factors: list[Factor] = []
        for g in sorted(groups, key=magnitude.__getitem__):
            size = round(row_c[g], 3)  # filter on what the caller sees; rounding keeps the
            if len(factors) >= top or size == 0.0 or abs(size) < min_abs:  # order, so every
                break  # later factor fails too
            named = _WORDS[_CODES[g]](row, plan.values[k], k, size > 0)
            if named is not None:
                factors.append(Factor(named[0], named[1], "raises" if size > 0 else "lowers", size))
        out.append(factors)
    return out


# --- words --------------------------------------------------------------------------------
# A group's words are chosen from what is true of the client's values (compared with the
# typical, reference, client) AND agrees with the group's direction: a fall, a weak facet or
# a low level for a group that raises the risk; a rise, a strong facet or a high level for
# one that lowers it. So a label never says "lower than typical" beside "lowers risk". When
# no such statement is true (the model weighs the values against intuition), the label
# states the values without a comparison. No identifiers ever enter a label. Feature
# positions are module constants: labels run per shown factor, in batches of 1,000.

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
Named = tuple[str, str] | None  # (factor code, label), or None: nothing to show


def _short(value: float, typical: float, raises: bool) -> float:
    """How far the client sits on the side the direction names: below the typical value
    for a group that raises the risk (where higher is better), above it for one that
    lowers it; negative on the other side, NaN when either is unknown."""
    return typical - value if raises else value - typical


def _wai(value: float) -> str:
    """WAI-SR item means: two decimals (quarter steps), trailing zero dropped (4.0, 3.25)."""
    text = f"{value:.2f}"
    return text[:-1] if text[-1] == "0" else text


def _one(value: float) -> str:
    return f"{value:.1f}"


def _count(value: float) -> str:
    return f"{round(value, 1):g}"


def _trend(
    row: Row, k: int, at: tuple[int, int, int, int], words: tuple[str, str], raises: bool
) -> str:
    """A fall, a dip or a rise with first and last rating. at = (last, change, drop,
    missing) positions; words = (subject, scale). 'From session 1 to k' only when every
    session was rated: otherwise the first rating may come from a later session. A dip
    that ended higher is worded as the dip when the group raises the risk."""
    last, change = row[at[0]], row[at[1]]
    subject, scale = words
    show = _wai if scale == "WAI-SR" else _one
    numbers = f"{scale} {show(last - change)} → {show(last)}"
    span = f"from session 1 to {k}" if row[at[3]] == 0 else "since first rated"
    if change < 0:
        return f"{subject} fell {span} ({numbers})"
    if change > 0 and not raises:
        return f"{subject} rose {span} ({numbers})"
    return f"{subject} dipped and recovered ({numbers}, largest fall {show(row[at[2]])})"


_WAI_AT = (_WAI_LAST, _WAI_CHANGE, _WAI_DROP, _WAI_MISSING)
_SRS_AT = (_SRS_LAST, _SRS_CHANGE, _SRS_DROP, _SRS_MISSING)


def _alliance(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """A fall (rise); else the facet that stands a quarter point further from typical than
    the level does (the one to work on); else the level; else any facet on that side."""
    last, change, drop = row[_WAI_LAST], row[_WAI_CHANGE], row[_WAI_DROP]
    if (change <= -WAI_FALL or drop >= WAI_DIP) if raises else change >= WAI_FALL:
        return ("alliance_decline" if raises else "alliance_low"), _trend(
            row, k, _WAI_AT, ("Alliance", "WAI-SR"), raises
        )
    level = _short(last, ref[_WAI_LAST], raises)
    gap, facet = _weakest_facet(row, ref, raises)
    if gap - (level if level > 0 else 0.0) >= FACET_GAP:
        return facet(row, raises)
    if level > 0:
        word = "lower" if raises else "higher"
        return "alliance_low", f"Alliance {word} than typical (latest WAI-SR {_wai(last)} of 5)"
    if gap > 0:
        return facet(row, raises)
    return "alliance_low", f"Alliance ratings (latest WAI-SR {_wai(last)} of 5)"


def _weakest_facet(row: Row, ref: Row, raises: bool) -> tuple[float, Callable[[Row, bool], Named]]:
    """The facet furthest from typical on the direction's side (goal and task as their
    mean, over the ones rated), with its words; NaN when neither was rated."""
    goal, task = row[_GOAL], row[_TASK]
    if isnan(goal):
        pair = _short(task, ref[_TASK], raises)
    elif isnan(task):
        pair = _short(goal, ref[_GOAL], raises)
    else:
        pair = _short(goal + task, ref[_GOAL] + ref[_TASK], raises) / 2
    bond = _short(row[_BOND], ref[_BOND], raises)
    return (bond, _bond) if bond > pair or isnan(pair) else (pair, _goal_task)


def _goal_task(row: Row, raises: bool) -> Named:
    goal, task = row[_GOAL], row[_TASK]
    numbers = ", ".join(
        f"{name} {_wai(v)}" for name, v in (("goal", goal), ("task", task)) if not isnan(v)
    )
    word = "Less" if raises else "More"
    return "goal_task_low", f"{word} agreement on goals and tasks than typical ({numbers} of 5)"


def _bond(row: Row, raises: bool) -> Named:
    word = "Weaker" if raises else "Stronger"
    return "bond_low", f"{word} emotional bond than typical (bond {_wai(row[_BOND])} of 5)"


def _session_rating(row: Row, ref: Row, k: int, raises: bool) -> Named:
    last, lowest, change = row[_SRS_LAST], row[_SRS_MIN], row[_SRS_CHANGE]
    if (change <= -SRS_FALL or row[_SRS_DROP] >= SRS_DIP) if raises else change >= SRS_FALL:
        code = "srs_decline" if raises else "srs_low"
        return code, _trend(row, k, _SRS_AT, ("Session rating", "SRS"), raises)
    if raises and last < SRS_CUTOFF:
        return "srs_low", f"Session rating below the cut-off of 36 (last SRS {_one(last)} of 40)"
    if raises and lowest < SRS_CUTOFF:
        return "srs_low", f"Session rating was below 36 earlier (lowest SRS {_one(lowest)} of 40)"
    if _short(last, ref[_SRS_LAST], raises) > 0 and (raises or last >= SRS_CUTOFF):
        word = "lower" if raises else "higher"
        return "srs_low", f"Session ratings {word} than typical (last SRS {_one(last)} of 40)"
    return "srs_low", f"Session ratings (last SRS {_one(last)} of 40)"


def _symptoms(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """Trend when there are two ratings, else level against the clinical cut-offs
    (PHQ-9 >= 10, ORS < 25); a high PHQ-9 and a low ORS mean distress. Improvement may
    raise the risk (some clients stop once they feel better) and worsening lower it: a trend
    has no one direction in the literature, so it is worded as what it is either way."""
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
    return "symptoms", f"{_symptom_head(signs, phq, ors, raises)} ({'; '.join(parts)})"


def _symptom_head(signs: list[int], phq: float, ors: float, raises: bool) -> str:
    if not signs:  # NaN compares False: a missing measure never counts as distress
        clinical = phq >= 10 or ors < 25
        if clinical == raises:
            return (
                "Distress in the clinical range" if clinical else "Distress below clinical cut-offs"
            )
        return "Symptom scores"
    if max(signs) > 0 and min(signs) < 0:
        return "Symptom scores moved in different directions"
    if max(signs) > 0:
        return "Symptoms improving"
    if min(signs) < 0:
        return "Symptoms worsening"
    return "Symptoms unchanged"


def _gaps(row: Row, ref: Row, k: int, raises: bool) -> Named:
    mean, longest = row[_GAP_MEAN], row[_GAP_MAX]
    longer = max(_short(-mean, -ref[_GAP_MEAN], raises), _short(-longest, -ref[_GAP_MAX], raises))
    if longer > 0 and raises:
        return (
            "attendance_gaps",
            f"Longer gaps between sessions than typical (up to {longest:.0f} days)",
        )
    if longer > 0:
        return "attendance_gaps", f"Sessions close together (at most {longest:.0f} days apart)"
    return "attendance_gaps", f"Sessions up to {longest:.0f} days apart"


def _age(row: Row, ref: Row, k: int, raises: bool) -> Named:
    age = row[_AGE]
    if _short(age, ref[_AGE], raises) > 0:  # younger raises, older lowers
        return "age", f"{'Younger' if raises else 'Older'} client (age {age:.0f})"
    return "age", f"Client aged {age:.0f}"


def _missing(row: Row, ref: Row, k: int, raises: bool) -> Named:
    """Only measures taken in some sessions and skipped in others; only when the skips
    raise the risk (a skip is a reason to ask for the measure, never one for less worry)."""
    skipped = [
        f"{word} skipped in {_count(row[j])} of {k} sessions"
        for word, j in _MISSING_WORDS
        if 0 < row[j] < k
    ]
    if not raises or not skipped:
        return None
    return "measures_missing", "; ".join(skipped)


# Group -> its words: (row, reference row, landmark, raises) -> (code, label) or None.
_WORDS: dict[str, Callable[[Row, Row, int, bool], Named]] = {
    "alliance": _alliance,
    "session_rating": _session_rating,
    "symptoms": _symptoms,
    "attendance_gaps": _gaps,
    "age": _age,
    "measures_missing": _missing,
}
