"""Batch scoring internals: the forked multi-part path, and the fast exact predictor."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from training import predict
from training.errors import ContractError
from training.features import FEATURES
from training.model import CalibratedModel, candidates, fit_calibrator, predictor
from training.registry import Registry


@pytest.fixture
def split_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the small test cohort be cut into parts as a large file would be."""
    monkeypatch.setattr(predict, "PARALLEL_MIN_BYTES", 0)


def _score(
    registry: Path, sessions: Path, clients: Path | None, out: Path, workers: int
) -> pd.DataFrame:
    loaded = Registry(registry).load()
    predict.predict_file(loaded, sessions, clients, out, [], chunk_rows=1000, workers=workers)
    return pd.read_csv(out)


def test_parts_start_at_client_boundaries(small_cohort: Path, split_small_files: None) -> None:
    path = small_cohort / "sessions.csv"
    parts = predict.split_sessions(path, 3)
    assert len(parts) == 3
    lines = path.read_bytes()
    for before, after in itertools.pairwise(parts):
        assert before.end == after.start
        previous_line = lines[: after.start].splitlines()[-1]
        next_line = lines[after.start :].splitlines()[0]
        assert previous_line.split(b",")[0] != next_line.split(b",")[0]
        assert after.rows_before == lines[: after.start].count(b"\n") - 1


def test_forked_parts_equal_one_process(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, split_small_files: None
) -> None:
    one = _score(
        trained_registry,
        small_cohort / "sessions.csv",
        small_cohort / "clients.csv",
        tmp_path / "one.csv",
        workers=1,
    )
    two = _score(
        trained_registry,
        small_cohort / "sessions.csv",
        small_cohort / "clients.csv",
        tmp_path / "two.csv",
        workers=2,
    )
    pd.testing.assert_frame_equal(one, two)
    assert len(two) == 1500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.csv", "two.csv"]


def test_error_in_second_part_has_true_line(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, split_small_files: None
) -> None:
    sessions = pd.read_csv(small_cohort / "sessions.csv")
    row = len(sessions) - 10
    sessions.loc[row, "srs_total"] = 44
    path = tmp_path / "sessions.csv"
    sessions.to_csv(path, index=False)
    with pytest.raises(ContractError) as info:
        _score(trained_registry, path, None, tmp_path / "p.csv", workers=2)
    assert info.value.problems == [
        f"sessions.csv:{row + 2}: column srs_total: value 44 is not a number from 0 to 40"
    ]
    assert not (tmp_path / "p.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.csv"]


def test_client_split_across_parts_is_named(
    trained_registry: Path, small_cohort: Path, tmp_path: Path, split_small_files: None
) -> None:
    sessions = pd.read_csv(small_cohort / "sessions.csv")
    moved = sessions["client_id"] == "C000002"
    first_row = sessions[moved].iloc[[0]]
    split = pd.concat([sessions.drop(first_row.index), first_row.assign(session_number=99)])
    path = tmp_path / "sessions.csv"
    split.to_csv(path, index=False)
    with pytest.raises(ContractError) as info:
        _score(trained_registry, path, None, tmp_path / "p.csv", workers=2)
    assert info.value.problems == [
        "sessions.csv: rows of client 'C000002' are not contiguous; sort the file by "
        "client_id (predict reads it in chunks)"
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_sessions_file_with_a_header_and_no_rows_is_refused(
    trained_registry: Path, tmp_path: Path, split_small_files: None, workers: int
) -> None:
    """As `validate` says it (training.contract), in each of predict's paths: no
    traceback from an empty chunk, no output file."""
    path = tmp_path / "sessions.csv"
    path.write_text("client_id,session_number,session_date,wai_goal,srs_total\n")
    with pytest.raises(ContractError) as info:
        _score(trained_registry, path, None, tmp_path / "p.csv", workers=workers)
    assert info.value.problems == ["sessions.csv: the file has a header but no data rows"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sessions.csv"]


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_fast_predictor_equals_predict_proba(method: str) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, len(FEATURES)))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 5] = np.nan  # an instrument this cohort never collected: kept as a constant
    y = (rng.random(4000) < 1 / (1 + np.exp(-np.nan_to_num(X[:, 1])))).astype(np.int8)
    base = clone(candidates(0)["logistic_regression"]).fit(X, y)
    raw = base.predict_proba(X)[:, 1]
    model = CalibratedModel(base, method).with_parts(base, fit_calibrator(method, raw, y))
    fast = predictor(model)
    assert type(fast).__name__ == "LinearPredictor"
    np.testing.assert_allclose(fast(X), model.predict_proba(X)[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast(X[:1]), model.predict_proba(X[:1])[:, 1], atol=1e-12)
    calibrator = model.calibrator_
    sklearn_p = (
        calibrator.predict_proba(np.log(raw / (1 - raw))[:, None])[:, 1]
        if method == "sigmoid"
        else calibrator.predict(raw)
    )
    np.testing.assert_allclose(
        model.predict_proba(X)[:, 1], np.clip(sklearn_p, 0.001, 0.999), atol=1e-9
    )
