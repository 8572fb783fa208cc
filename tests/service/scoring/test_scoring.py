"""service.scoring.score: the compiled paths agree with each other and with the model, and
episodes before the first landmark get their reason instead of a risk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from service.core.prediction import NotAtLandmark, Prediction
from service.core.schemas import EpisodeIn
from service.scoring import score as scoring
from service.scoring.episodes import grid_from_episodes
from service.scoring.score import score
from tests.support.helpers import REPO, updated_version
from training.explanation.attribution import contributions, explain
from training.features import latest_landmark_features
from training.model import LinearPredictor
from training.registry import LoadedModel, Registry


@pytest.fixture(scope="module")
def shipped() -> LoadedModel:
    return Registry(REPO / "models").load()


def _session(rng: np.random.Generator, number: int) -> dict[str, Any]:
    """One session with a random subset of measures in either of their forms."""
    session: dict[str, Any] = {"number": number}
    if rng.random() < 0.8:
        if rng.random() < 0.5:
            session["wai"] = {"items": rng.integers(1, 6, 12).tolist()}
        else:
            session["wai"] = {"goal": float(rng.integers(4, 21)) / 4, "bond": 4.5}
    if rng.random() < 0.8:
        if rng.random() < 0.5:
            session["srs"] = {"total": round(float(rng.uniform(10, 40)), 1)}
        else:
            parts = ("relationship", "goals", "approach", "overall")
            session["srs"] = {k: round(float(rng.uniform(2, 10)), 1) for k in parts}
    if rng.random() < 0.6:
        session["ors"] = {"total": round(float(rng.uniform(0, 40)), 1)}
    if rng.random() < 0.6:
        session["phq9"] = {"total": int(rng.integers(0, 28))}
    if rng.random() < 0.7:
        session["date"] = f"2026-0{number if number < 10 else 9}-{int(rng.integers(1, 28)):02d}"
    return session  # possibly without measures: attended, counted for landmark and gaps


def assorted(n: int, seed: int = 5) -> list[EpisodeIn]:
    """Episodes of 1 to 6 sessions (some with gaps), with and without age and gender."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        count = int(rng.integers(1, 7))
        numbers = sorted(rng.choice(np.arange(1, 9), size=count, replace=False).tolist())
        body: dict[str, Any] = {
            "client_id": f"C-{i}",
            "sessions": [_session(rng, k) for k in numbers],
        }
        if rng.random() < 0.8:
            body["age"] = int(rng.integers(12, 90))
        if rng.random() < 0.8:
            body["gender"] = str(rng.choice(["female", "male", "nonbinary"]))
        out.append(EpisodeIn.model_validate(body))
    return out


def generic(model: LoadedModel, **metadata: Any) -> LoadedModel:
    """The same model behind a plain callable: scored by the generic (three-call) path."""

    def predict(X: Any) -> Any:
        return model.probability(X)

    return LoadedModel(model.model, {**model.metadata, **metadata}, predict)


def test_the_shipped_model_takes_the_single_compiled_call(shipped: LoadedModel) -> None:
    assert isinstance(shipped.probability, LinearPredictor)
    assert shipped.probability.sigmoid_terms() is not None


def test_linear_and_generic_paths_give_identical_answers(shipped: LoadedModel) -> None:
    episodes = assorted(400)
    fused = score(shipped, episodes)
    assert fused == score(generic(shipped), episodes)
    assert all(isinstance(r, Prediction) for r in fused)
    probabilities = [r.probability for r in fused if isinstance(r, Prediction)]
    assert len(set(probabilities)) > 200  # real, varied risks, not a constant
    assert {r.risk_level for r in fused if isinstance(r, Prediction)} == {"low", "moderate", "high"}


def test_a_batch_equals_each_episode_alone(shipped: LoadedModel) -> None:
    episodes = assorted(60, seed=9)
    assert score(shipped, episodes) == [score(shipped, [e])[0] for e in episodes]


def test_the_compiled_path_equals_the_sklearn_pipeline_on_thousands_of_clients(
    shipped: LoadedModel,
) -> None:
    """The issue's rule for fast paths: max abs difference 1e-9 against the sklearn
    pipeline, on the contributions (every occluded row) and the published probability."""
    episodes = assorted(3000, seed=21)
    grid = grid_from_episodes(episodes, 3)
    rows, marks, X, p, _, C = scoring._numbers(shipped, scoring._serving(shipped, None), grid)
    assert rows.tolist() == list(range(3000))  # all reached a landmark

    def sklearn(rows: Any) -> Any:
        return shipped.model.predict_proba(rows)[:, 1]

    expected_p, expected_C = contributions(sklearn, X, marks, shipped.metadata["reference"])
    assert np.max(np.abs(C - expected_C)) < 1e-9
    assert np.array_equal(p, np.round(expected_p, 4))
    assert np.abs(C).max() > 0.05  # real contributions, not zeros on both sides


def test_the_factors_are_those_of_explain(shipped: LoadedModel) -> None:
    episodes = assorted(150, seed=11)
    X, marks = latest_landmark_features(grid_from_episodes(episodes, 3), (1, 2, 3))
    expected = explain(shipped.probability, X, marks, shipped.metadata["reference"])
    answers = [r for r in score(shipped, episodes) if isinstance(r, Prediction)]
    assert [list(r.factors) for r in answers] == expected
    assert sum(len(f) for f in expected) > 300  # most clients have three factors


@pytest.mark.parametrize("path", ["linear", "generic"])
def test_episodes_before_the_first_landmark_get_the_reason(shipped: LoadedModel, path: str) -> None:
    later = {**shipped.metadata, "landmarks": [2, 3]}
    model = LoadedModel(shipped.model, later, shipped.probability)
    if path == "generic":
        model = generic(shipped, landmarks=[2, 3])
    two = assorted(2, seed=4)[1]
    first_only = EpisodeIn.model_validate(
        {"client_id": "early", "sessions": [{"number": 1, "srs": {"total": 33.0}}]}
    )
    results = score(model, [first_only, two, first_only])
    assert isinstance(results[0], NotAtLandmark)
    assert "not reached session 2, the first landmark" in results[0].reason
    assert isinstance(results[1], Prediction)
    assert results[1].landmark_session >= 2
    assert isinstance(results[2], NotAtLandmark)
    alone = score(model, [first_only])
    assert len(alone) == 1
    assert isinstance(alone[0], NotAtLandmark)


def test_a_landmark_cap_scores_at_the_capped_landmark(shipped: LoadedModel) -> None:
    three = EpisodeIn.model_validate(
        {
            "client_id": "A",
            "sessions": [{"number": k, "srs": {"total": 38.0 - 3 * k}} for k in (1, 2, 3)],
        }
    )
    first = EpisodeIn.model_validate(
        {"client_id": "A", "sessions": [{"number": 1, "srs": {"total": 35.0}}]}
    )
    capped = score(shipped, [three], max_landmark=1)[0]
    assert isinstance(capped, Prediction)
    assert capped.landmark_session == 1
    assert capped == score(shipped, [first])[0]
    uncapped = score(shipped, [three])[0]
    assert isinstance(uncapped, Prediction)
    assert uncapped.landmark_session == 3
    assert uncapped.probability != capped.probability


def test_the_service_clips_features_to_the_training_range(shipped: LoadedModel) -> None:
    """Two episodes whose SRS lies below the training range of every SRS feature get the
    same risk: the serving path clips as training did (metadata feature_range)."""
    ranges = shipped.metadata["feature_range"]
    floor = min(ranges[name][0] for name in ("srs_mean", "srs_last", "srs_min"))
    assert floor > 3.0  # the model never saw SRS this low

    def episode(srs: float) -> EpisodeIn:
        sessions = [{"number": k, "srs": {"total": srs}} for k in (1, 2, 3)]
        return EpisodeIn.model_validate({"client_id": "A", "age": 30, "sessions": sessions})

    low, lower, inside = (score(shipped, [episode(s)])[0] for s in (floor - 1.0, 1.0, floor + 8.0))
    assert isinstance(low, Prediction)
    assert isinstance(lower, Prediction)
    assert isinstance(inside, Prediction)
    assert low.probability == lower.probability
    assert inside.probability < low.probability  # inside the range SRS still counts


def test_the_service_scores_an_updated_model_like_a_trained_one(updated_registry: Path) -> None:
    """The service's scoring (the generic path: an UpdatedPredictor is not the linear
    kernel) gives the sklearn estimator's probabilities and contributions, to 1e-9."""
    loaded = Registry(updated_registry).load(updated_version(updated_registry))
    episodes = assorted(500, seed=23)
    serving = scoring._serving(loaded, None)
    assert serving.linear is None
    _, marks, X, p, _, C = scoring._numbers(loaded, serving, grid_from_episodes(episodes, 3))

    def sklearn(rows: np.ndarray) -> np.ndarray:
        return np.asarray(loaded.model.predict_proba(rows)[:, 1])

    expected_p, expected_C = contributions(sklearn, X, marks, loaded.metadata["reference"])
    assert np.max(np.abs(C - expected_C)) < 1e-9
    assert np.array_equal(p, np.round(expected_p, 4))
    answers = [r for r in score(loaded, episodes[:50]) if isinstance(r, Prediction)]
    assert {a.model.version for a in answers} == {loaded.version}


def test_the_kernel_map_names_each_compiled_kernel_where_it_is_defined() -> None:
    """KERNELS (and the table in score.py's docstring) lists compiled numba kernels, each
    found in the module it names, each following the `<what>_kernel` scheme; and every
    compiled function of those modules is in the map, or is the batch path's own."""
    import importlib

    from numba.core.registry import CPUDispatcher

    listed = set(scoring.KERNELS)
    for module, name in scoring.KERNELS:
        kernel = getattr(importlib.import_module(module), name)
        assert isinstance(kernel, CPUDispatcher), (module, name)
        assert name.endswith("_kernel"), name
        assert kernel.py_func.__name__.endswith("_loop"), name
        assert f"`{name}`" in (scoring.__doc__ or ""), name
    for module in {m for m, _ in scoring.KERNELS}:
        compiled = {
            (module, n)
            for n, v in vars(importlib.import_module(module)).items()
            if isinstance(v, CPUDispatcher) and v.py_func.__module__ == module
        }
        assert compiled - listed <= {("training.model", "_linear_logit_kernel")}, module
