"""Scoring request episodes: shared features, the verified model, factors and actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from service.actions import suggested_actions
from service.episodes import grid_from_episodes
from service.explain import explain_scored
from service.schemas import EpisodeIn
from training.errors import DropoutRiskError
from training.features import latest_landmark_features
from training.predict import risk_levels
from training.registry import LoadedModel

DISCLAIMER = "Decision support, not a diagnosis."


class NotAtLandmark(DropoutRiskError):
    """The episode has not reached the model's first landmark session."""


def _landmarks(model: LoadedModel, cap: int | None) -> tuple[int, ...]:
    marks = tuple(model.metadata["landmarks"])
    return tuple(k for k in marks if cap is None or k <= cap) or marks[:1]


def score(
    model: LoadedModel, episodes: Sequence[EpisodeIn], max_landmark: int | None = None
) -> list[dict[str, Any] | NotAtLandmark]:
    """One response body (or the reason there is none) per episode, in order."""
    landmarks = _landmarks(model, max_landmark)
    X, landmark = latest_landmark_features(grid_from_episodes(episodes, max(landmarks)), landmarks)
    marks = landmark.tolist()
    ok = [i for i, k in enumerate(marks) if k]
    if len(ok) < len(marks):  # some episodes have not reached a landmark: leave them out
        X, landmark = X[ok], landmark[ok]
    # explain scores the rows themselves with their occluded copies: one predict call
    raw, factors = explain_scored(model.predict, X, landmark, model.metadata["reference"])
    p = np.round(raw, 4)
    levels = risk_levels(p, model.metadata["thresholds"])
    common = _common(model)
    out: list[dict[str, Any] | NotAtLandmark] = [
        NotAtLandmark(
            f"the episode has not reached session {landmarks[0]}, the first "
            "landmark; no risk can be computed yet"
        )
    ] * len(episodes)
    for j, (i, probability, level) in enumerate(zip(ok, p.tolist(), levels, strict=True)):
        out[i] = {
            "client_id": episodes[i].client_id,
            "probability": probability,
            "risk_level": level,
            "landmark_session": marks[i],
            **common,
            "factors": [f.__dict__ for f in factors[j]],
            "suggested_actions": [a.__dict__ for a in suggested_actions(factors[j])],
        }
    return out


def _common(model: LoadedModel) -> dict[str, Any]:
    th = model.metadata["thresholds"]
    return {
        "model": {"version": model.version, "sha256": model.metadata["sha256"]},
        "thresholds": {"moderate": th["moderate"], "high": th["high"]},
        "disclaimer": DISCLAIMER,
    }
