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


def gender_code(values: pd.Series) -> IntArray:
    """Map free-text gender to four codes; anything but female/male words is 'other'."""
    words = values.astype("string").str.strip().str.lower()
    codes = words.map(_GENDER_WORDS).astype("Float64")
    out: IntArray = np.asarray(codes.fillna(GENDER_OTHER), dtype=np.int64)
    out[words.isna().to_numpy() | (words == "").fillna(False).to_numpy()] = GENDER_UNKNOWN
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
        info = clients.set_index("client_id").reindex(uniques)
        if "age" in info.columns:
            grid.age[:] = info["age"].to_numpy(dtype=np.float64, na_value=np.nan)
        if "gender" in info.columns:
            grid.gender[:] = gender_code(info["gender"])
    return np.asarray(uniques, dtype=object), grid


# --- column-wise helpers over (n, k) arrays with NaN as missing -------------------------


def _count(a: FloatArray) -> IntArray:
    count: IntArray = (~np.isnan(a)).sum(axis=1)
    return count


def _mean(a: FloatArray) -> FloatArray:
    count = _count(a)
    total = np.where(np.isnan(a), 0.0, a).sum(axis=1)
    mean: FloatArray = np.divide(total, count, out=np.full(a.shape[0], np.nan), where=count > 0)
    return mean


def _forward_fill(a: FloatArray) -> FloatArray:
    present = ~np.isnan(a)
    idx = np.where(present, np.arange(a.shape[1]), 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    return a[np.arange(a.shape[0])[:, None], idx]


def _last(a: FloatArray) -> FloatArray:
    return _forward_fill(a)[:, -1]


def _first(a: FloatArray) -> FloatArray:
    return _last(a[:, ::-1])


def _min(a: FloatArray) -> FloatArray:
    low = np.where(np.isnan(a), np.inf, a).min(axis=1)
    return np.where(np.isinf(low), np.nan, low)


def _change(a: FloatArray) -> FloatArray:
    """Latest minus first available value; NaN unless two values exist."""
    return np.where(_count(a) >= 2, _last(a) - _first(a), np.nan)


def _steps(a: FloatArray) -> FloatArray:
    """Each available value minus the previous available one (NaN where undefined)."""
    prev = _forward_fill(a)[:, :-1]
    return a[:, 1:] - prev


def _max_drop(a: FloatArray) -> FloatArray:
    """Largest fall between consecutive available values (0 if none fell), a rupture marker."""
    if a.shape[1] < 2:
        return np.full(a.shape[0], np.nan)
    falls = -_steps(a)
    worst = np.where(np.isnan(falls), -np.inf, falls).max(axis=1)
    return np.where(_count(a) >= 2, np.maximum(worst, 0.0), np.nan)


def _gaps(day: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Mean and longest gap in days between consecutive dated sessions."""
    if day.shape[1] < 2:
        nan = np.full(day.shape[0], np.nan)
        return nan, nan.copy()
    gaps = _steps(day)
    valid = ~np.isnan(gaps)
    n = valid.sum(axis=1)
    mean = np.divide(
        np.where(valid, gaps, 0.0).sum(axis=1), n, out=np.full(day.shape[0], np.nan), where=n > 0
    )
    longest = np.where(valid, gaps, -np.inf).max(axis=1)
    return mean, np.where(n > 0, longest, np.nan)


def wai_composite(goal: FloatArray, task: FloatArray, bond: FloatArray) -> FloatArray:
    """Session WAI-SR level: mean of the subscales that were answered."""
    stacked = np.stack([goal, task, bond])
    count = (~np.isnan(stacked)).sum(axis=0)
    total = np.where(np.isnan(stacked), 0.0, stacked).sum(axis=0)
    level: FloatArray = np.divide(total, count, out=np.full(goal.shape, np.nan), where=count > 0)
    return level


def landmark_features(grid: SessionGrid, k: int) -> FloatArray:
    """Feature matrix (n, len(FEATURES)) at landmark k, from sessions 1..k only."""
    if not 1 <= k <= grid.max_session:
        raise ValueError(f"landmark {k} outside 1..{grid.max_session}")
    goal, task, bond = grid.wai_goal[:, :k], grid.wai_task[:, :k], grid.wai_bond[:, :k]
    wai = wai_composite(goal, task, bond)
    srs, ors, phq9 = grid.srs[:, :k], grid.ors[:, :k], grid.phq9[:, :k]
    gap_mean, gap_max = _gaps(grid.day[:, :k])
    below = np.where(_count(srs) > 0, (srs < SRS_CUTOFF).sum(axis=1), np.nan)
    columns = [
        np.full(grid.n_clients, float(k)),
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
        below,
        _max_drop(srs),
        _last(ors),
        _change(ors),
        _last(phq9),
        _change(phq9),
        gap_mean,
        gap_max,
        grid.age,
        (grid.gender == GENDER_FEMALE).astype(np.float64),
        (grid.gender == GENDER_MALE).astype(np.float64),
        (grid.gender == GENDER_OTHER).astype(np.float64),
        k - _count(wai),
        k - _count(srs),
        k - _count(ors),
        k - _count(phq9),
    ]
    return np.column_stack(columns).astype(np.float64)


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
        blocks.append(landmark_features(_subset(grid, who), k))
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
            X[who] = landmark_features(_subset(grid, who), k)
    return X, landmark


def _subset(grid: SessionGrid, rows: IntArray) -> SessionGrid:
    return SessionGrid(
        grid.wai_goal[rows],
        grid.wai_task[rows],
        grid.wai_bond[rows],
        grid.srs[rows],
        grid.ors[rows],
        grid.phq9[rows],
        grid.day[rows],
        grid.age[rows],
        grid.gender[rows],
        grid.reached[rows],
    )
