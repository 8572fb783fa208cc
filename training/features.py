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


@dataclass(frozen=True)
class SessionGrid:
    """Early sessions of n clients as (n, K) arrays, column j = session j+1.

    NaN marks a session not attended or a measure not taken. `reached` is the highest
    session number each client attended, which may exceed K.
    """

    wai_goal: FloatArray
    wai_task: FloatArray
    wai_bond: FloatArray
    srs: FloatArray
    ors: FloatArray
    phq9: FloatArray
    day: FloatArray  # days since 1970-01-01, NaN when the date is unknown
    age: FloatArray  # (n,)
    gender: IntArray  # (n,) GENDER_* codes
    reached: IntArray  # (n,)

    @property
    def n_clients(self) -> int:
        return int(self.reached.shape[0])

    @property
    def max_session(self) -> int:
        return int(self.srs.shape[1])

    @classmethod
    def empty(cls, n: int, max_session: int) -> SessionGrid:
        """An all-missing grid to be filled in place by an adapter."""

        def blank() -> FloatArray:
            return np.full((n, max_session), np.nan)

        return cls(
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
            blank(),
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
    "wai_goal": "wai_goal",
    "wai_task": "wai_task",
    "wai_bond": "wai_bond",
    "srs": "srs_total",
    "ors": "ors_total",
    "phq9": "phq9_total",
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
    for attr, column in _GRID_COLUMNS.items():
        if column in sessions.columns:
            values = sessions[column].to_numpy(dtype=np.float64, na_value=np.nan)
            getattr(grid, attr)[rows, cols] = values[keep]
    if "session_date" in sessions.columns:
        days = sessions["session_date"].to_numpy(dtype="datetime64[D]")[keep]
        grid.day[rows, cols] = np.where(np.isnat(days), np.nan, days.astype(np.int64))
    if clients is not None:
        by_id = clients if clients.index.name == "client_id" else clients.set_index("client_id")
        info = by_id.reindex(uniques)
        if "age" in info.columns:
            grid.age[:] = info["age"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "gender" in info.columns:
            grid.gender[:] = gender_code(info["gender"])
    return np.asarray(uniques, dtype=object), grid


# --- helpers over a measure's session columns -------------------------------------------
# A measure at landmark k is a list of k contiguous arrays, one per session, NaN = missing.
# Loops run over those few sessions, never over clients, so every step is one vectorised
# pass over n values; row-wise reductions over strided (n, k) slices were 3x slower.

Cols = list[FloatArray]


def _count(cols: Cols) -> FloatArray:
    count = np.zeros(cols[0].shape[0])
    for col in cols:
        count += ~np.isnan(col)
    return count


def _mean(cols: Cols) -> FloatArray:
    total = np.zeros(cols[0].shape[0])
    for col in cols:
        np.add(total, col, out=total, where=~np.isnan(col))
    count = _count(cols)
    mean: FloatArray = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
    return mean


def _last(cols: Cols) -> FloatArray:
    out = cols[0].copy()
    for col in cols[1:]:
        np.copyto(out, col, where=~np.isnan(col))
    return out


def _first(cols: Cols) -> FloatArray:
    return _last(cols[::-1])


def _min(cols: Cols) -> FloatArray:
    out = cols[0].copy()
    for col in cols[1:]:
        np.fmin(out, col, out=out)  # fmin ignores NaN unless both are NaN
    return out


def _change(cols: Cols) -> FloatArray:
    """Latest minus first available value; NaN unless two values exist."""
    return np.where(_count(cols) >= 2, _last(cols) - _first(cols), np.nan)


def _steps(cols: Cols) -> Cols:
    """Each available value minus the previous available one (NaN where undefined)."""
    prev = cols[0].copy()
    steps = []
    for col in cols[1:]:
        steps.append(col - prev)
        np.copyto(prev, col, where=~np.isnan(col))
    return steps


def _max_of(cols: Cols) -> FloatArray:
    out = np.full(cols[0].shape[0], np.nan)
    for col in cols:
        np.fmax(out, col, out=out)
    return out


def _max_drop(cols: Cols) -> FloatArray:
    """Largest fall between consecutive available values (0 if none fell), a rupture marker."""
    if len(cols) < 2:
        return np.full(cols[0].shape[0], np.nan)
    worst = _max_of([-step for step in _steps(cols)])
    return np.where(_count(cols) >= 2, np.maximum(worst, 0.0), np.nan)


def _gaps(days: Cols) -> tuple[FloatArray, FloatArray]:
    """Mean and longest gap in days between consecutive dated sessions."""
    if len(days) < 2:
        nan = np.full(days[0].shape[0], np.nan)
        return nan, nan.copy()
    gaps = _steps(days)
    return _mean(gaps), _max_of(gaps)


def _below(cols: Cols, cutoff: float) -> FloatArray:
    """How many available values fall below the cutoff; NaN when none is available."""
    below = np.zeros(cols[0].shape[0])
    for col in cols:
        below += col < cutoff
    return np.where(_count(cols) > 0, below, np.nan)


def wai_composite(goal: FloatArray, task: FloatArray, bond: FloatArray) -> FloatArray:
    """Session WAI-SR level: mean of the subscales that were answered (any shape)."""
    return _mean([goal, task, bond])


def _session_columns(a: FloatArray, k: int, rows: IntArray | None) -> Cols:
    return [a[:, j].copy() if rows is None else a[rows, j] for j in range(k)]


def landmark_features(grid: SessionGrid, k: int, rows: IntArray | None = None) -> FloatArray:
    """Feature matrix (n, len(FEATURES)) at landmark k from sessions 1..k only, for all
    clients of the grid or the given rows."""
    if not 1 <= k <= grid.max_session:
        raise ValueError(f"landmark {k} outside 1..{grid.max_session}")

    def cols(a: FloatArray) -> Cols:
        return _session_columns(a, k, rows)

    goal, task, bond = cols(grid.wai_goal), cols(grid.wai_task), cols(grid.wai_bond)
    wai = [wai_composite(g, t, b) for g, t, b in zip(goal, task, bond, strict=True)]
    srs, ors, phq9 = cols(grid.srs), cols(grid.ors), cols(grid.phq9)
    gap_mean, gap_max = _gaps(cols(grid.day))
    age = grid.age if rows is None else grid.age[rows]
    gender = grid.gender if rows is None else grid.gender[rows]
    columns = [
        np.full(age.shape[0], float(k)),
        _mean(wai),
        _last(wai),
        _change(wai),
        _min(wai),
        _max_drop(wai),
        _last(goal),
        _last(task),
        _last(bond),
        _mean(srs),
        _last(srs),
        _change(srs),
        _min(srs),
        _below(srs, SRS_CUTOFF),
        _max_drop(srs),
        _last(ors),
        _change(ors),
        _last(phq9),
        _change(phq9),
        gap_mean,
        gap_max,
        age,
        gender == GENDER_FEMALE,
        gender == GENDER_MALE,
        gender == GENDER_OTHER,
        k - _count(wai),
        k - _count(srs),
        k - _count(ors),
        k - _count(phq9),
    ]
    X = np.empty((age.shape[0], len(columns)), order="F")
    for i, column in enumerate(columns):
        X[:, i] = column
    return X


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
        if who.size:
            X[who] = landmark_features(grid, k, who)
    return X, landmark
