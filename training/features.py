"""Landmark features: the one place where sessions become model inputs.

A prediction is made after session k of the early phase (the landmark). Its features use
sessions 1..k only, so a model scored at landmark k never sees the future. Training, batch
scoring and the service all lay sessions out as a `SessionGrid` (clients x early sessions)
and call `landmark_features`; only the way the grid is filled differs (tables here, a
request body in the service).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import numba
import numpy as np
import numpy.typing as npt
import pandas as pd

from training.vocabulary import DAY_ZERO

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SRS_CUTOFF = 36.0  # PCOMS: a session total below 36 signals a possible alliance problem.

GENDER_UNKNOWN, GENDER_FEMALE, GENDER_MALE, GENDER_OTHER = 0, 1, 2, 3
_GENDER_WORDS = {
    "female": GENDER_FEMALE,
    "woman": GENDER_FEMALE,
    "f": GENDER_FEMALE,
    "male": GENDER_MALE,
    "man": GENDER_MALE,
    "m": GENDER_MALE,
}

FEATURES: tuple[str, ...] = (
    "landmark",
    "wai_mean",
    "wai_last",
    "wai_change",
    "wai_min",
    "wai_drop_max",
    "wai_goal_last",
    "wai_task_last",
    "wai_bond_last",
    "srs_mean",
    "srs_last",
    "srs_change",
    "srs_min",
    "srs_below36",
    "srs_drop_max",
    "ors_last",
    "ors_change",
    "phq9_last",
    "phq9_change",
    "gap_mean_days",
    "gap_max_days",
    "age",
    "gender_female",
    "gender_male",
    "gender_other",
    "wai_missing",
    "srs_missing",
    "ors_missing",
    "phq9_missing",
)


# Rows of SessionGrid.values, in this order.
MEASURES: tuple[str, ...] = ("wai_goal", "wai_task", "wai_bond", "srs", "ors", "phq9", "day")
N_MEASURES = len(MEASURES)
GOAL, TASK, BOND, SRS, ORS, PHQ9, DAY = range(len(MEASURES))
# Each measure but the date -> its contract session column (SessionMeasures' order): the
# names the contract tables, the export and the stored session's measure columns use.
MEASURE_COLUMNS: dict[int, str] = {
    GOAL: "wai_goal",
    TASK: "wai_task",
    BOND: "wai_bond",
    SRS: "srs_total",
    ORS: "ors_total",
    PHQ9: "phq9_total",
}
# A session's values of MEASURES but the date, in that order (WAI-SR goal, task and bond
# means, SRS, ORS and PHQ-9 totals; None: not taken), as storage keeps them beside the
# payload (service.storage.repository.session_measures).
SessionMeasures = tuple[
    float | None, float | None, float | None, float | None, float | None, float | None
]
# One session as an adapter gives it to the grid (service.scoring.episodes): its client's
# position, its number, its date (None: not recorded), then its SessionMeasures' values.
SessionValues = tuple[
    int,
    int,
    date | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
    float | None,
]


@dataclass(frozen=True)
class SessionGrid:
    """Early sessions of n clients: `values[m, j, i]` is measure m at session j+1 of client i.

    NaN marks a session not attended or a measure not taken; `day` counts days since
    1970-01-01. `reached` is the highest session number each client attended, which may
    exceed K. Measures come first and clients last, so every step of the feature maths is
    one numpy call over all measures (cheap for one client) whose inner loop runs over
    contiguous clients (fast for a million).
    """

    values: FloatArray  # (len(MEASURES), K, n)
    age: FloatArray  # (n,)
    gender: IntArray  # (n,) GENDER_* codes
    reached: IntArray  # (n,)

    @property
    def n_clients(self) -> int:
        return int(self.reached.shape[0])

    @property
    def max_session(self) -> int:
        return int(self.values.shape[1])

    @classmethod
    def empty(cls, n: int, max_session: int) -> SessionGrid:
        """An all-missing grid of n clients (no session, age or gender), to be filled in
        place: the cell writer's grid of no rows."""
        return grid_from_rows(n, max_session, np.zeros((0, ROW_WIDTH)))

    def landmark_of(self, landmarks: tuple[int, ...]) -> IntArray:
        """The latest landmark each client reached (0 if none)."""
        out: IntArray = latest_kernel(self.reached, np.array(sorted(landmarks), dtype=np.int64))
        return out


def gender_word_code(value: object) -> int:
    """One free-text gender as a code; anything but female/male words is 'other'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return GENDER_UNKNOWN
    word = str(value).strip().lower()
    return _GENDER_WORDS.get(word, GENDER_OTHER) if word else GENDER_UNKNOWN


def gender_code(values: pd.Series) -> IntArray:
    """Codes for a column of genders, mapping each distinct value once."""
    codes, uniques = pd.factorize(values)
    table = np.array([*map(gender_word_code, uniques), GENDER_UNKNOWN], dtype=np.int64)
    out: IntArray = table[codes]  # code -1 (missing) picks the trailing GENDER_UNKNOWN
    return out


# A session row as the one cell writer takes it (grid_from_rows): float columns client
# (0..n-1), session number, then these measures, DAY first (SessionValues' order, the
# date as days since 1970-01-01); NaN: not taken.
ROW_MEASURES: tuple[int, ...] = (DAY, GOAL, TASK, BOND, SRS, ORS, PHQ9)
ROW_WIDTH = 2 + len(ROW_MEASURES)
_ROW_MEASURE_INDEX = np.array(ROW_MEASURES, dtype=np.int64)


def _cells_loop(
    n: int, max_session: int, rows: FloatArray, measure_of: IntArray
) -> tuple[FloatArray, IntArray]:
    """The grid's (values, reached) of n clients: each row's measures in its client's
    session cells, `reached` its highest session number. The arrays are made here: four
    numpy allocations from Python cost a one-client request more than the loop."""
    values = np.full((N_MEASURES, max_session, n), np.nan)
    reached = np.zeros(n, dtype=np.int64)
    for r in range(rows.shape[0]):
        i, j = int(rows[r, 0]), int(rows[r, 1])
        if j > reached[i]:
            reached[i] = j
        if j <= max_session:
            for c in range(measure_of.shape[0]):
                v = rows[r, 2 + c]
                if not np.isnan(v):
                    values[measure_of[c], j - 1, i] = v
    return values, reached


def session_table(rows: Iterable[SessionValues]) -> FloatArray:
    """Session rows (SessionValues) as the cell writer's table (ROW_WIDTH float columns,
    the date as its day number since vocabulary.DAY_ZERO; None: NaN), in one array."""
    table = np.array(
        [
            (at, number, math.nan if day is None else day.toordinal() - _DAY_ZERO, *measures)
            for at, number, day, *measures in rows
        ],
        dtype=np.float64,
    )
    return table.reshape(-1, ROW_WIDTH)


_DAY_ZERO = DAY_ZERO.toordinal()


def grid_from_rows(
    n: int,
    max_session: int,
    rows: FloatArray,
    age: npt.ArrayLike | None = None,
    gender: npt.ArrayLike | None = None,
) -> SessionGrid:
    """The one cell writer: n clients' session rows (ROW_WIDTH float columns, see
    ROW_MEASURES) laid out as a grid, with the clients' age and gender codes (copied).

    One session per (client, number). Sessions after `max_session` only count towards
    `reached`. Every source of sessions (contract tables, request episodes, a monitoring
    window's stored sessions) comes through here, so the layout exists once; compiled,
    so a request's one row costs a microsecond and a million rows a few milliseconds."""
    values, reached = _cells_kernel(n, max_session, rows, _ROW_MEASURE_INDEX)
    return SessionGrid(
        values,
        np.full(n, np.nan) if age is None else np.array(age, dtype=np.float64),
        np.full(n, GENDER_UNKNOWN, dtype=np.int64)
        if gender is None
        else np.array(gender, dtype=np.int64),
        reached,
    )


def grid_from_tables(
    sessions: pd.DataFrame, clients: pd.DataFrame | None, max_session: int
) -> tuple[npt.NDArray[np.object_], SessionGrid]:
    """Lay validated contract tables out as a grid; returns (client ids, grid).

    `clients` may be indexed by client_id already; callers scoring many batches pass it so,
    which lets pandas reuse one hash table for every lookup.

    Clients appear in the order of their first session row; a client without sessions has
    no landmark and is left out. Sessions after `max_session` only count towards `reached`.
    """
    codes, uniques = pd.factorize(sessions["client_id"])
    rows = np.full((len(sessions), ROW_WIDTH), np.nan)
    rows[:, 0] = codes
    rows[:, 1] = sessions["session_number"].to_numpy(dtype=np.int64)
    if "session_date" in sessions.columns:
        days = sessions["session_date"].to_numpy(dtype="datetime64[D]")
        rows[:, 2] = np.where(np.isnat(days), np.nan, days.astype(np.int64))
    for at, measure in enumerate(ROW_MEASURES[1:], start=3):
        column = MEASURE_COLUMNS[measure]
        if column in sessions.columns:
            rows[:, at] = sessions[column].to_numpy(dtype=np.float64, na_value=np.nan)
    age = gender = None
    if clients is not None:
        by_id = clients if clients.index.name == "client_id" else clients.set_index("client_id")
        info = by_id.reindex(uniques)
        if "age" in info.columns:
            age = info["age"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "gender" in info.columns:
            gender = gender_code(info["gender"])
    grid = grid_from_rows(len(uniques), max_session, rows, age, gender)
    return np.asarray(uniques, dtype=object), grid


# --- the maths: one compiled loop over clients --------------------------------------------
# Why compiled: a request scores one client, where ~80 numpy calls on 3-element arrays cost
# ~165 µs of call overhead; a training run scores a million, where the same loop runs in a
# few hundred ms. One numba kernel serves both, so the maths exists once (docs/performance.md).
# cache=True keeps the machine code in __pycache__, so only the first run ever compiles.

N_FEATURES = len(FEATURES)
# Feature name -> its column in a feature row. The compiled writer (`_write_loop`) names each
# column through these module-level ints, which numba folds in as constants: written by
# name, at no cost at run time.
COLUMN: dict[str, int] = {name: i for i, name in enumerate(FEATURES)}
X_LANDMARK = COLUMN["landmark"]
X_WAI_MEAN = COLUMN["wai_mean"]
X_WAI_LAST = COLUMN["wai_last"]
X_WAI_CHANGE = COLUMN["wai_change"]
X_WAI_MIN = COLUMN["wai_min"]
X_WAI_DROP_MAX = COLUMN["wai_drop_max"]
X_WAI_GOAL_LAST = COLUMN["wai_goal_last"]
X_WAI_TASK_LAST = COLUMN["wai_task_last"]
X_WAI_BOND_LAST = COLUMN["wai_bond_last"]
X_SRS_MEAN = COLUMN["srs_mean"]
X_SRS_LAST = COLUMN["srs_last"]
X_SRS_CHANGE = COLUMN["srs_change"]
X_SRS_MIN = COLUMN["srs_min"]
X_SRS_BELOW36 = COLUMN["srs_below36"]
X_SRS_DROP_MAX = COLUMN["srs_drop_max"]
X_ORS_LAST = COLUMN["ors_last"]
X_ORS_CHANGE = COLUMN["ors_change"]
X_PHQ9_LAST = COLUMN["phq9_last"]
X_PHQ9_CHANGE = COLUMN["phq9_change"]
X_GAP_MEAN_DAYS = COLUMN["gap_mean_days"]
X_GAP_MAX_DAYS = COLUMN["gap_max_days"]
X_AGE = COLUMN["age"]
X_GENDER_FEMALE = COLUMN["gender_female"]
X_GENDER_MALE = COLUMN["gender_male"]
X_GENDER_OTHER = COLUMN["gender_other"]
X_WAI_MISSING = COLUMN["wai_missing"]
X_SRS_MISSING = COLUMN["srs_missing"]
X_ORS_MISSING = COLUMN["ors_missing"]
X_PHQ9_MISSING = COLUMN["phq9_missing"]
# Statistics rows: the WAI-SR composite, then the grid's measures (S_GOAL.. = grid row + 1).
WAI, S_GOAL, S_TASK, S_BOND, S_SRS, S_ORS, S_PHQ9, S_DAY = range(8)


def _features_loop(
    values: FloatArray, age: FloatArray, gender: IntArray, ks: IntArray, rows: IntArray | None
) -> FloatArray:
    """(N_FEATURES, len(ks)): features of client rows[i] (client i if rows is None) at
    landmark ks[i], NaN where ks[i] is 0.

    Statistics per measure over sessions 1..k, NaN meaning missing: mean, first, last and
    minimum of the available values; steps between consecutive available values (their
    mean, their largest rise and largest fall). Change and largest fall need two values.
    """
    out = np.full((N_FEATURES, ks.shape[0]), np.nan)
    stack = np.empty((8, values.shape[1]))
    stat = np.empty((8, 8))  # per stack row: count, mean, first, last, min, fall, step mean, max
    for i in range(ks.shape[0]):
        k = ks[i]
        if k < 0 or k > values.shape[1]:
            raise ValueError("a landmark lies outside the grid's sessions")
        if k == 0:
            continue
        c = i if rows is None else rows[i]
        for j in range(k):
            total, count = 0.0, 0
            for m in range(3):  # the session's WAI-SR level: mean of the subscales answered
                v = values[m, j, c]
                if not np.isnan(v):
                    total += v
                    count += 1
                stack[m + 1, j] = v
            stack[WAI, j] = total / count if count else np.nan
            for m in range(3, 7):
                stack[m + 1, j] = values[m, j, c]
        for r in range(8):
            _row_stats_kernel(stack[r], k, stat[r])
        _write_kernel(out[:, i], stat, stack, k, age[c], gender[c])
    return out


def _row_stats_loop(series: FloatArray, k: int, st: FloatArray) -> None:
    count, total, first, last, low = 0, 0.0, np.nan, np.nan, np.nan
    steps, step_total, fall, rise = 0, 0.0, np.nan, np.nan
    for j in range(k):
        v = series[j]
        if np.isnan(v):
            continue
        if count:
            step = v - last
            steps += 1
            step_total += step
            fall = -step if np.isnan(fall) or -step > fall else fall
            rise = step if np.isnan(rise) or step > rise else rise
        else:
            first = v
        low = v if np.isnan(low) or v < low else low
        count += 1
        total += v
        last = v
    st[0], st[1], st[2], st[3], st[4] = count, total / count if count else np.nan, first, last, low
    st[5], st[6], st[7] = fall, step_total / steps if steps else np.nan, rise


def _write_loop(
    x: FloatArray, st: FloatArray, stack: FloatArray, k: int, age: float, gender: int
) -> None:
    """One client's features, each written to its column by name (X_*, from COLUMN): a
    feature added to or moved in FEATURES cannot shift the others."""
    change, drop = np.full(8, np.nan), np.full(8, np.nan)
    for r in range(8):
        if st[r, 0] >= 2:
            change[r], drop[r] = st[r, 3] - st[r, 2], max(st[r, 5], 0.0)
    below = 0.0
    for j in range(k):
        below += stack[S_SRS, j] < SRS_CUTOFF
    x[X_LANDMARK] = k
    x[X_WAI_MEAN], x[X_WAI_LAST], x[X_WAI_CHANGE] = st[WAI, 1], st[WAI, 3], change[WAI]
    x[X_WAI_MIN], x[X_WAI_DROP_MAX] = st[WAI, 4], drop[WAI]
    x[X_WAI_GOAL_LAST], x[X_WAI_TASK_LAST] = st[S_GOAL, 3], st[S_TASK, 3]
    x[X_WAI_BOND_LAST] = st[S_BOND, 3]
    x[X_SRS_MEAN], x[X_SRS_LAST], x[X_SRS_CHANGE] = st[S_SRS, 1], st[S_SRS, 3], change[S_SRS]
    x[X_SRS_MIN], x[X_SRS_DROP_MAX] = st[S_SRS, 4], drop[S_SRS]
    x[X_SRS_BELOW36] = below if st[S_SRS, 0] > 0 else np.nan
    x[X_ORS_LAST], x[X_ORS_CHANGE] = st[S_ORS, 3], change[S_ORS]
    x[X_PHQ9_LAST], x[X_PHQ9_CHANGE] = st[S_PHQ9, 3], change[S_PHQ9]
    x[X_GAP_MEAN_DAYS], x[X_GAP_MAX_DAYS] = st[S_DAY, 6], st[S_DAY, 7]
    x[X_AGE] = age
    x[X_GENDER_FEMALE] = gender == GENDER_FEMALE
    x[X_GENDER_MALE] = gender == GENDER_MALE
    x[X_GENDER_OTHER] = gender == GENDER_OTHER
    x[X_WAI_MISSING], x[X_SRS_MISSING] = k - st[WAI, 0], k - st[S_SRS, 0]
    x[X_ORS_MISSING], x[X_PHQ9_MISSING] = k - st[S_ORS, 0], k - st[S_PHQ9, 0]


def _latest_loop(reached: IntArray, landmarks: IntArray) -> IntArray:
    """Per client, the largest of the (sorted) landmarks it reached, else 0."""
    out = np.zeros(reached.shape[0], dtype=np.int64)
    for i in range(reached.shape[0]):
        for k in landmarks:
            if reached[i] >= k:
                out[i] = k
    return out


# Public so that other compiled code (the service's scoring kernel) can call the very same
# maths inside its own loop: one feature builder, whatever calls it.
latest_kernel: Callable[[IntArray, IntArray], IntArray] = numba.njit(cache=True, nogil=True)(
    _latest_loop
)
_row_stats_kernel = numba.njit(cache=True, nogil=True)(_row_stats_loop)
_cells_kernel = numba.njit(cache=True, nogil=True)(_cells_loop)
_write_kernel = numba.njit(cache=True, nogil=True)(_write_loop)
features_kernel: Callable[
    [FloatArray, FloatArray, IntArray, IntArray, IntArray | None], FloatArray
] = numba.njit(cache=True, nogil=True)(_features_loop)


def features_at(grid: SessionGrid, ks: IntArray, rows: IntArray | None = None) -> FloatArray:
    """Feature matrix (n, N_FEATURES) of the given rows (all clients by default), row i at
    landmark ks[i] from sessions 1..ks[i] only; NaN rows where ks[i] is 0 (no landmark).
    Column-major: each feature is contiguous, which is how the predictors read them."""
    n = grid.n_clients if rows is None else rows.shape[0]
    if ks.shape != (n,):
        raise ValueError(f"one landmark per row: {ks.shape} landmarks for {n} rows")
    out: FloatArray = features_kernel(grid.values, grid.age, grid.gender, ks, rows).T
    return out


def landmark_features(grid: SessionGrid, k: int, rows: IntArray | None = None) -> FloatArray:
    """Feature matrix (n, len(FEATURES)) at landmark k from sessions 1..k only, for all
    clients of the grid or the given rows."""
    if not 1 <= k <= grid.max_session:
        raise ValueError(f"landmark {k} outside 1..{grid.max_session}")
    n = grid.n_clients if rows is None else rows.shape[0]
    return features_at(grid, np.full(n, k, dtype=np.int64), rows)


@dataclass(frozen=True)
class Examples:
    """Landmark examples: one row per client x landmark the client reached."""

    X: FloatArray
    row_client: IntArray  # index into the grid's clients
    landmark: IntArray


def landmark_examples(grid: SessionGrid, landmarks: tuple[int, ...]) -> Examples:
    """Training/evaluation rows for every landmark each client reached."""
    blocks, owners, marks = [], [], []
    for k in landmarks:
        who = np.flatnonzero(grid.reached >= k)
        blocks.append(landmark_features(grid, k, who))
        owners.append(who)
        marks.append(np.full(who.shape[0], k, dtype=np.int64))
    return Examples(np.vstack(blocks), np.concatenate(owners), np.concatenate(marks))


def latest_landmark_features(
    grid: SessionGrid, landmarks: tuple[int, ...]
) -> tuple[FloatArray, IntArray]:
    """Features at the latest landmark each client reached, for scoring; NaN rows for none."""
    landmark = grid.landmark_of(landmarks)
    return features_at(grid, landmark), landmark
