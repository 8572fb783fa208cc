"""Landmark features: exact values on a hand-made client, and no leakage from the future."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from training import features
from training.features import (
    BOND,
    COLUMN,
    DAY,
    FEATURES,
    GENDER_FEMALE,
    GENDER_MALE,
    GENDER_OTHER,
    GOAL,
    ORS,
    PHQ9,
    SRS,
    TASK,
    FloatArray,
    SessionGrid,
    features_at,
    grid_from_tables,
    landmark_examples,
    landmark_features,
    latest_landmark_features,
)
from training.simulate import simulate


def _one_client() -> tuple[pd.DataFrame, pd.DataFrame]:
    sessions = pd.DataFrame(
        {
            "client_id": ["A"] * 4,
            "session_number": [1, 2, 3, 4],
            "session_date": pd.to_datetime(
                ["2026-01-05", "2026-01-12", "2026-01-26", "2026-02-02"]
            ),
            "wai_goal": [4.0, 3.0, np.nan, 2.0],
            "wai_task": [4.0, 3.0, np.nan, 2.0],
            "wai_bond": [4.0, 3.5, np.nan, 2.0],
            "srs_total": [38.0, 33.0, 35.0, 20.0],
            "ors_total": [15.0, np.nan, 21.0, 25.0],
            "phq9_total": [np.nan] * 4,
        }
    )
    clients = pd.DataFrame({"client_id": ["A"], "age": [27.0], "gender": ["Female"]})
    return sessions, clients


def _row(k: int) -> dict[str, float]:
    sessions, clients = _one_client()
    _, grid = grid_from_tables(sessions, clients, 3)
    return dict(zip(FEATURES, landmark_features(grid, k)[0].tolist(), strict=True))


def test_landmark_two_values() -> None:
    f = _row(2)
    wai2 = (3.0 + 3.0 + 3.5) / 3
    assert f["landmark"] == 2
    assert f["wai_last"] == pytest.approx(wai2)
    assert f["wai_change"] == pytest.approx(wai2 - 4.0)
    assert f["wai_drop_max"] == pytest.approx(4.0 - wai2)
    assert f["wai_bond_last"] == 3.5
    assert f["srs_below36"] == 1
    assert f["srs_drop_max"] == 5.0
    assert f["srs_min"] == 33.0
    assert f["gap_mean_days"] == 7.0
    assert f["ors_change"] != f["ors_change"]  # NaN: only one ORS value in sessions 1-2
    assert f["age"] == 27.0
    assert (f["gender_female"], f["gender_male"], f["gender_other"]) == (1.0, 0.0, 0.0)
    assert (f["wai_missing"], f["srs_missing"], f["ors_missing"], f["phq9_missing"]) == (0, 0, 1, 2)


def test_landmark_three_skips_missing_session_values() -> None:
    f = _row(3)
    assert f["wai_last"] == pytest.approx((3.0 + 3.0 + 3.5) / 3)  # session 3 has no WAI
    assert f["wai_missing"] == 1
    assert f["srs_mean"] == pytest.approx((38 + 33 + 35) / 3)
    assert f["srs_change"] == -3.0
    assert f["ors_change"] == 6.0
    assert f["gap_max_days"] == 14.0
    assert f["gap_mean_days"] == pytest.approx(10.5)


def test_landmark_one_has_no_change_or_gaps() -> None:
    f = _row(1)
    for name in ("wai_change", "wai_drop_max", "srs_change", "gap_mean_days"):
        assert np.isnan(f[name]), name
    assert f["srs_below36"] == 0


def test_no_leakage_from_later_sessions() -> None:
    """Changing any value of session k+1 or later never changes landmark-k features."""
    clients, sessions = simulate(300, seed=11)
    sessions = sessions.astype({"phq9_total": "float64"})
    rng = np.random.default_rng(0)
    _, base_grid = grid_from_tables(sessions, clients, 3)
    measures = ["wai_goal", "wai_task", "wai_bond", "srs_total", "ors_total", "phq9_total"]
    for k in (1, 2, 3):
        changed = sessions.copy()
        later = changed["session_number"] > k
        for col in measures:
            changed.loc[later, col] = rng.uniform(1, 5, later.sum())
        changed.loc[later, "session_date"] = "2030-01-01"
        changed = changed.drop(changed[later & (rng.random(len(changed)) < 0.3)].index)
        changed = changed.astype({"session_date": "datetime64[ns]"})
        orig = sessions.astype({"session_date": "datetime64[ns]"})
        _, g0 = grid_from_tables(orig, clients, 3)
        _, g1 = grid_from_tables(changed, clients, 3)
        reached = (g0.reached >= k) & (g1.reached >= k)
        assert reached.sum() > 100
        np.testing.assert_array_equal(
            landmark_features(g0, k)[reached], landmark_features(g1, k)[reached]
        )
    assert base_grid.n_clients == 300


def test_examples_one_row_per_reached_landmark() -> None:
    sessions, clients = _one_client()
    short = sessions[sessions["session_number"] <= 2]
    both = pd.concat([short, sessions.assign(client_id="B")], ignore_index=True)
    ids, grid = grid_from_tables(both, pd.concat([clients, clients.assign(client_id="B")]), 3)
    ex = landmark_examples(grid, (1, 2, 3))
    assert ids.tolist() == ["A", "B"]
    assert sorted(zip(ex.row_client.tolist(), ex.landmark.tolist(), strict=True)) == [
        (0, 1),
        (0, 2),
        (1, 1),
        (1, 2),
        (1, 3),
    ]
    X, landmark = latest_landmark_features(grid, (1, 2, 3))
    assert landmark.tolist() == [2, 3]
    np.testing.assert_array_equal(X[0], landmark_features(grid, 2)[0])


def test_features_at_mixed_landmarks_and_range() -> None:
    """One kernel call with a landmark per row equals one call per landmark; a client that
    reached no landmark gets a NaN row; a landmark beyond the grid is refused."""
    clients, sessions = simulate(200, seed=3)
    _, grid = grid_from_tables(sessions, clients, 3)
    ks = np.array([(i % 4) for i in range(grid.n_clients)], dtype=np.int64)
    X = features_at(grid, ks)
    for k in (1, 2, 3):
        rows = np.flatnonzero(ks == k)
        np.testing.assert_array_equal(X[rows], landmark_features(grid, k, rows))
    assert np.isnan(X[ks == 0]).all()
    with pytest.raises(ValueError, match="outside the grid"):
        features_at(grid, np.full(grid.n_clients, 4, dtype=np.int64))
    with pytest.raises(ValueError, match="one landmark per row"):
        features_at(grid, ks[:-1])


# One client, six sessions, whose every feature but the three gender indicators has its own
# value (so a feature written to another's column cannot pass). Per session: WAI-SR goal,
# task, bond; SRS; ORS; PHQ-9; day. WAI-SR is missing once, SRS twice, ORS three times and
# PHQ-9 four times.
_DISTINCT_SESSIONS = (
    (3.0, 3.5, 4.0, 36.5, 20.5, 15.0, 0.0),
    (2.25, 2.5, 3.0, np.nan, np.nan, np.nan, 7.0),
    (np.nan, np.nan, np.nan, 39.5, 24.5, np.nan, 10.0),
    (3.25, 3.75, 4.25, 37.0, np.nan, 11.0, 30.0),
    (4.0, 4.5, 5.0, np.nan, 29.0, np.nan, 35.0),
    (3.5, 4.25, 4.75, 38.0, np.nan, np.nan, 62.0),
)
# Worked out by hand: the WAI-SR level per session is the mean of its subscales (3.5,
# 2.5833, -, 3.75, 4.5, 4.1667); the gaps are 7, 3, 20, 5 and 27 days.
_DISTINCT_FEATURES = {
    "landmark": 6.0,
    "wai_mean": 3.7,
    "wai_last": 12.5 / 3,
    "wai_change": 12.5 / 3 - 3.5,
    "wai_min": 7.75 / 3,
    "wai_drop_max": 3.5 - 7.75 / 3,
    "wai_goal_last": 3.5,
    "wai_task_last": 4.25,
    "wai_bond_last": 4.75,
    "srs_mean": 37.75,
    "srs_last": 38.0,
    "srs_change": 1.5,
    "srs_min": 36.5,
    "srs_below36": 0.0,
    "srs_drop_max": 2.5,
    "ors_last": 29.0,
    "ors_change": 8.5,
    "phq9_last": 11.0,
    "phq9_change": -4.0,
    "gap_mean_days": 12.4,
    "gap_max_days": 27.0,
    "age": 31.0,
    "gender_female": 1.0,
    "gender_male": 0.0,
    "gender_other": 0.0,
    "wai_missing": 1.0,
    "srs_missing": 2.0,
    "ors_missing": 3.0,
    "phq9_missing": 4.0,
}
_GENDERS = {
    GENDER_FEMALE: "gender_female",
    GENDER_MALE: "gender_male",
    GENDER_OTHER: "gender_other",
}


def _distinct_row(gender: int) -> FloatArray:
    grid = SessionGrid.empty(1, len(_DISTINCT_SESSIONS))
    measures = (GOAL, TASK, BOND, SRS, ORS, PHQ9, DAY)
    for j, session in enumerate(_DISTINCT_SESSIONS):
        for m, value in zip(measures, session, strict=True):
            grid.values[m, j, 0] = value + (20_000.0 if m == DAY else 0.0)
    grid.age[0], grid.gender[0], grid.reached[0] = 31.0, gender, len(_DISTINCT_SESSIONS)
    row: FloatArray = features_at(grid, np.array([len(_DISTINCT_SESSIONS)]))[0]
    return row


def test_every_feature_is_written_to_its_own_column_by_name() -> None:
    """Each feature read from the built row by its name (COLUMN) has its own known value; the
    fixture's values differ per feature, so two features swapped or shifted would fail."""
    assert set(_DISTINCT_FEATURES) == set(FEATURES) == set(COLUMN)
    others = [v for name, v in _DISTINCT_FEATURES.items() if name not in _GENDERS.values()]
    assert len(set(others)) == len(others)  # the fixture really is distinct per feature
    row = _distinct_row(GENDER_FEMALE)
    for name, expected in _DISTINCT_FEATURES.items():
        assert row[COLUMN[name]] == pytest.approx(expected), name


@pytest.mark.parametrize("gender", sorted(_GENDERS))
def test_each_gender_indicator_is_written_to_its_own_column(gender: int) -> None:
    """The three indicators cannot all differ in one client: one client per gender."""
    row = _distinct_row(gender)
    for code, name in _GENDERS.items():
        assert row[COLUMN[name]] == (1.0 if code == gender else 0.0), name


def test_the_writer_names_every_column_once() -> None:
    """X_<NAME> is COLUMN[name] for every feature, so the writer's names cover the row."""
    assert [getattr(features, f"X_{name.upper()}") for name in FEATURES] == list(
        range(len(FEATURES))
    )


def test_the_measure_columns_follow_the_measures() -> None:
    """SessionMeasures and SessionValues (stored sessions, the window's rows) carry the
    measures in MEASURES order, named by MEASURE_COLUMNS: its keys must be that order."""
    columns = features.MEASURE_COLUMNS
    assert list(columns) == list(range(features.DAY)) == list(range(len(features.MEASURES) - 1))
    assert list(columns.values()) == [
        "wai_goal",
        "wai_task",
        "wai_bond",
        "srs_total",
        "ors_total",
        "phq9_total",
    ]


def test_session_rows_become_the_cell_writers_table() -> None:
    """session_table: position, number, the date's day number since vocabulary.DAY_ZERO
    (NaN: none), then the measures (NaN: not taken), one row per session."""
    rows = [
        (0, 1, dt.date(1970, 1, 11), 3.5, None, 4.0, 31.0, None, 12.0),
        (2, 3, None, None, None, None, None, 22.5, None),
    ]
    table = features.session_table(rows)
    assert table.shape == (2, features.ROW_WIDTH)
    expected = [
        [0, 1, 10, 3.5, np.nan, 4.0, 31.0, np.nan, 12.0],
        [2, 3, np.nan, np.nan, np.nan, np.nan, np.nan, 22.5, np.nan],
    ]
    assert np.array_equal(table, np.array(expected), equal_nan=True)
    assert features.session_table([]).shape == (0, features.ROW_WIDTH)
