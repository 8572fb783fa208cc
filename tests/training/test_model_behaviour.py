"""Behaviour of the shipped model (models/ champion): direction and invariance tests on
clients that differ in one respect only (Made-With-ML style behavioural tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.support.helpers import REPO
from training.features import grid_from_tables
from training.predict import score_grid
from training.registry import LoadedModel, Registry


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return Registry(REPO / "models").load()


def _client(wai: list[float] | None, srs: list[float] | None, **client: object) -> pd.DataFrame:
    n = len(wai or srs or [])
    return pd.DataFrame(
        {
            "client_id": "X",
            "session_number": range(1, n + 1),
            "session_date": pd.to_datetime(["2026-03-02", "2026-03-09", "2026-03-16"][:n]),
            "wai_goal": wai or [np.nan] * n,
            "wai_task": wai or [np.nan] * n,
            "wai_bond": wai or [np.nan] * n,
            "srs_total": srs or [np.nan] * n,
            "ors_total": [18.0, 19.0, 20.0][:n],
            "phq9_total": [14.0, 13.0, 12.0][:n],
        }
    )


def _risk(
    model: LoadedModel, sessions: pd.DataFrame, age: float = 35, gender: str = "female"
) -> float:
    clients = pd.DataFrame({"client_id": ["X"], "age": [age], "gender": [gender]})
    _, grid = grid_from_tables(sessions, clients, 3)
    p, _ = score_grid(model, grid)
    return float(p[0])


def test_lower_alliance_raises_risk(shipped: LoadedModel) -> None:
    high = _risk(shipped, _client([4.25] * 3, [38.0] * 3))
    low = _risk(shipped, _client([3.0] * 3, [32.0] * 3))
    assert low > high + 0.03


def test_falling_alliance_raises_risk(shipped: LoadedModel) -> None:
    rising = _risk(shipped, _client([3.25, 3.75, 4.25], [34.0, 36.0, 38.0]))
    falling = _risk(shipped, _client([4.25, 3.75, 3.25], [38.0, 36.0, 34.0]))
    assert falling > rising + 0.02


def test_srs_only_site_lower_srs_raises_risk(shipped: LoadedModel) -> None:
    assert _risk(shipped, _client(None, [33.0] * 3)) > _risk(shipped, _client(None, [39.0] * 3))


def test_younger_client_higher_risk(shipped: LoadedModel) -> None:
    sessions = _client([3.75] * 3, [37.0] * 3)
    assert _risk(shipped, sessions, age=19) > _risk(shipped, sessions, age=60)


def test_later_sessions_do_not_change_landmark_score(shipped: LoadedModel) -> None:
    three = _client([3.5, 3.5, 3.0], [36.0, 35.0, 33.0])
    four = pd.concat([three, three.iloc[[2]].assign(session_number=4, wai_goal=5.0)])
    assert _risk(shipped, three) == _risk(shipped, four)


def test_probabilities_are_plausible(shipped: LoadedModel) -> None:
    p = _risk(shipped, _client([3.75] * 3, [37.0] * 3))
    assert 0.05 < p < 0.4


def test_shipped_model_is_small_and_simulated(shipped: LoadedModel) -> None:
    folder = REPO / "models" / shipped.version
    assert (folder / "model.joblib").stat().st_size < 5_000_000
    assert shipped.metadata["training_data"]["simulated"] is True


def test_lower_alliance_never_lowers_risk(shipped: LoadedModel) -> None:
    """Known directions hold for every client, not only on average: lowering any alliance
    feature (or raising an alliance fall) of a real feature row never lowers the risk."""
    from training.features import FEATURES, landmark_examples
    from training.simulate import simulate
    from training.transport import KNOWN_SIGNS

    clients, sessions = simulate(2000, seed=3)  # sites of every instrument kind
    _, grid = grid_from_tables(
        sessions.assign(session_date=pd.to_datetime(sessions["session_date"])), clients, 3
    )
    X = landmark_examples(grid, (1, 2, 3)).X
    base = shipped.probability(X)
    for name, sign in KNOWN_SIGNS.items():
        worse = X.copy()
        worse[:, FEATURES.index(name)] += sign * 1.0  # one unit the risky way
        moved = shipped.probability(worse) - base
        assert (moved >= -1e-12).all(), name
    wai = FEATURES.index("wai_mean")
    worse = X.copy()
    worse[:, wai] -= 1.0
    assert (shipped.probability(worse) - base)[~np.isnan(X[:, wai])].max() > 0.01
