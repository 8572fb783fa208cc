"""Landmark features: the one place where sessions become model inputs.

A prediction is made after session k of the early phase (the landmark). Its features use
sessions 1..k only, so a model scored at landmark k never sees the future. Training, batch
scoring and the service all lay sessions out as a `SessionGrid` (clients x early sessions)
and call `landmark_features`; only the way the grid is filled differs (tables here, a
request body in the service).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_LANDMARKS: tuple[int, ...] = (1, 2, 3)
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
GOAL, TASK, BOND, SRS, ORS, PHQ9, DAY = range(len(MEASURES))


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
        """An all-missing grid to be filled in place by an adapter."""
        return cls(
            np.full((len(MEASURES), max_session, n), np.nan),
            np.full(n, np.nan),
            np.zeros(n, dtype=np.int64),
            np.zeros(n, dtype=np.int64),
        )

    def landmark_of(self, landmarks: tuple[int, ...]) -> IntArray:
        """The latest landmark each client reached (0 if none)."""
        out = np.zeros(self.n_clients, dtype=np.int64)
        for k in sorted(landmarks):
            out[self.reached >= k] = k
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


_GRID_COLUMNS = {
    GOAL: "wai_goal",
    TASK: "wai_task",
    BOND: "wai_bond",
    SRS: "srs_total",
    ORS: "ors_total",
    PHQ9: "phq9_total",
}


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
    n = len(uniques)
    number = sessions["session_number"].to_numpy(dtype=np.int64)
    grid = SessionGrid.empty(n, max_session)
    reached = pd.Series(number).groupby(codes).max()
    grid.reached[reached.index.to_numpy()] = reached.to_numpy()
    keep = number <= max_session
    rows, cols = codes[keep], number[keep] - 1
    for measure, column in _GRID_COLUMNS.items():
        if column in sessions.columns:
            values = sessions[column].to_numpy(dtype=np.float64, na_value=np.nan)
            grid.values[measure, cols, rows] = values[keep]
    if "session_date" in sessions.columns:
        days = sessions["session_date"].to_numpy(dtype="datetime64[D]")[keep]
        grid.values[DAY, cols, rows] = np.where(np.isnat(days), np.nan, days.astype(np.int64))
    if clients is not None:
        by_id = clients if clients.index.name == "client_id" else clients.set_index("client_id")
        info = by_id.reindex(uniques)
        if "age" in info.columns:
            grid.age[:] = info["age"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "gender" in info.columns:
            grid.gender[:] = gender_code(info["gender"])
    return np.asarray(uniques, dtype=object), grid


# --- the maths, over (measures, sessions, clients) arrays with NaN as missing -----------
# Rows of the stack the statistics run on: the WAI-SR composite, then the grid's measures.
WAI, S_GOAL, S_TASK, S_BOND, S_SRS, S_ORS, S_PHQ9, S_DAY = range(8)
_GENDER_CODES = np.array([[GENDER_FEMALE], [GENDER_MALE], [GENDER_OTHER]])
_MISSING_ROWS = [WAI, S_SRS, S_ORS, S_PHQ9]


def _mean_over(values: FloatArray, axis: int) -> FloatArray:
    """Mean of the available values along an axis; NaN where none is available."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    mean: FloatArray = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return mean


def wai_composite(subscales: FloatArray) -> FloatArray:
    """Session WAI-SR level: mean of the subscales answered; axis 0 holds goal, task, bond."""
    return _mean_over(subscales, axis=0)


@dataclass(frozen=True)
class _Stats:
    """Per-measure statistics over sessions 1..k, each (8, n) in stack row order."""

    count: FloatArray
    mean: FloatArray
    last: FloatArray
    first: FloatArray
    minimum: FloatArray
    worst_fall: FloatArray  # largest fall between consecutive available values
    step_mean: FloatArray  # mean step between consecutive available values
    step_max: FloatArray


def _stats(stack: FloatArray) -> _Stats:
    """One pass of statistics over every measure at once (loops run over the k sessions)."""
    k = stack.shape[1]
    present = ~np.isnan(stack)
    last, first, prev = stack[:, 0].copy(), stack[:, k - 1].copy(), stack[:, 0].copy()
    steps = np.full((k - 1, *last.shape), np.nan)
    for j in range(1, k):
        np.subtract(stack[:, j], prev, out=steps[j - 1])
        np.copyto(prev, stack[:, j], where=present[:, j])
        np.copyto(last, stack[:, j], where=present[:, j])
        np.copyto(first, stack[:, k - 1 - j], where=present[:, k - 1 - j])
    if k > 1:  # fmax/fmin skip NaN unless every value is NaN, and never warn
        worst_fall, step_max = np.fmax.reduce(-steps, axis=0), np.fmax.reduce(steps, axis=0)
        step_mean = _mean_over(steps, axis=0)
    else:
        worst_fall = step_max = step_mean = np.full(last.shape, np.nan)
    count = present.sum(axis=1).astype(np.float64)
    total = np.where(present, stack, 0.0).sum(axis=1)
    return _Stats(
        count=count,
        mean=np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0),
        last=last,
        first=first,
        minimum=np.fmin.reduce(stack, axis=1),
        worst_fall=worst_fall,
        step_mean=step_mean,
        step_max=step_max,
    )


def landmark_features(grid: SessionGrid, k: int, rows: IntArray | None = None) -> FloatArray:
    """Feature matrix (n, len(FEATURES)) at landmark k from sessions 1..k only, for all
    clients of the grid or the given rows."""
    if not 1 <= k <= grid.max_session:
        raise ValueError(f"landmark {k} outside 1..{grid.max_session}")
    values = grid.values[:, :k] if rows is None else grid.values[:, :k][:, :, rows]
    stack = np.concatenate([wai_composite(values[GOAL : BOND + 1])[None], values])
    st = _stats(stack)
    age = grid.age if rows is None else grid.age[rows]
    gender = grid.gender if rows is None else grid.gender[rows]
    two = st.count >= 2
    change = np.where(two, st.last - st.first, np.nan)
    drop = np.where(two, np.maximum(st.worst_fall, 0.0), np.nan)
    below = np.where(st.count[S_SRS] > 0, (stack[S_SRS] < SRS_CUTOFF).sum(axis=0), np.nan)

    def row(a: FloatArray, i: int) -> FloatArray:
        return a[i : i + 1]  # a (1, n) view: no copy

    # One vstack of views, in FEATURES order (a call per feature costs more at one client).
    X = np.vstack(
        [
            np.full((1, age.shape[0]), float(k)),
            row(st.mean, WAI),
            row(st.last, WAI),
            row(change, WAI),
            row(st.minimum, WAI),
            row(drop, WAI),
            st.last[S_GOAL : S_BOND + 1],
            row(st.mean, S_SRS),
            row(st.last, S_SRS),
            row(change, S_SRS),
            row(st.minimum, S_SRS),
            below[None],
            row(drop, S_SRS),
            row(st.last, S_ORS),
            row(change, S_ORS),
            row(st.last, S_PHQ9),
            row(change, S_PHQ9),
            row(st.step_mean, S_DAY),
            row(st.step_max, S_DAY),
            age[None],
            gender[None] == _GENDER_CODES,
            k - st.count[_MISSING_ROWS],
        ]
    )
    out: FloatArray = X.T  # (n, F), column-major: each feature contiguous
    return out


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
    X = np.full((grid.n_clients, len(FEATURES)), np.nan)
    for k in landmarks:
        who = np.flatnonzero(landmark == k)
        if who.size == grid.n_clients:  # one landmark for all (a request): no row copies
            return landmark_features(grid, k), landmark
        if who.size:
            X[who] = landmark_features(grid, k, who)
    return X, landmark
