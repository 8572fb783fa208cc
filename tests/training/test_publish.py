"""The published probability and level: one compiled rule for batch scoring and the API."""

from __future__ import annotations

import numpy as np

from training.publish import published, risk_levels
from training.vocabulary import Thresholds

THRESHOLDS = Thresholds(moderate=0.2, high=0.3)


def test_risk_levels_at_and_between_thresholds() -> None:
    p = np.array([0.0, 0.1999, 0.2, 0.25, 0.2999, 0.3, 0.95])
    levels = risk_levels(p, THRESHOLDS)
    assert levels.tolist() == ["low", "low", "moderate", "moderate", "moderate", "high", "high"]


def test_rounding_is_numpys_on_a_million_probabilities_and_every_halfway_case() -> None:
    rng = np.random.default_rng(3)
    halfway = (np.arange(10_000) + 0.5) / 10_000  # ties, where rounding rules differ
    p = np.concatenate([rng.random(1_000_000), halfway, [0.0, 1.0, 1e-12, 1 - 1e-12]])
    rounded, _ = published(p, THRESHOLDS)
    assert np.array_equal(rounded, np.round(p, 4))


def test_the_level_is_that_of_the_rounded_probability() -> None:
    rounded, levels = published([0.29996, 0.19994, 0.19995], THRESHOLDS)
    assert rounded.tolist() == [0.3, 0.1999, 0.2]
    assert levels.tolist() == ["high", "low", "moderate"]
