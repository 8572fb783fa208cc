"""The clinic rules against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from training.baselines import (
    BASELINES,
    SRS_ANY,
    SRS_LAST,
    WAI_LOGISTIC,
    at_flag_rate,
    at_threshold,
    fit_baselines,
)
from training.features import FEATURES


def rows(
    srs_last: list[float], srs_min: list[float], wai_mean: list[float]
) -> npt.NDArray[np.float64]:
    """Feature rows with only the columns the baselines read filled in."""
    x = np.zeros((len(srs_last), len(FEATURES)))
    x[:, FEATURES.index("srs_last")] = srs_last
    x[:, FEATURES.index("srs_min")] = srs_min
    x[:, FEATURES.index("wai_mean")] = wai_mean
    return x


def test_srs_rules_score_positive_exactly_when_the_rule_fires() -> None:
    x = rows([30.0, 38.0, np.nan, 36.0], [30.0, 34.0, np.nan, 36.0], [4.0, 5.0, 6.0, 3.0])
    y = np.array([1, 0, 1, 0])
    scores = fit_baselines(x, y).scores(x)
    assert list(scores) == list(BASELINES)
    np.testing.assert_array_equal(scores[SRS_LAST], [6.0, -2.0, np.nan, 0.0])
    np.testing.assert_array_equal(scores[SRS_ANY], [6.0, 2.0, np.nan, 0.0])
    fired = at_threshold(y, scores[SRS_ANY], 0.0)
    # Rows with an SRS: 3 (one dropout). "any < 36" fires on rows 0 and 1: TP 1 of 2 flagged.
    assert (fired.n, fired.n_positive) == (3, 1)
    assert fired.flag_rate == pytest.approx(2 / 3)
    assert fired.sensitivity == 1.0
    assert fired.ppv == 0.5


def test_wai_logistic_matches_the_maximum_likelihood_fit() -> None:
    rng = np.random.default_rng(3)
    wai = rng.normal(4.0, 1.0, 4000)
    y = (rng.random(wai.size) < 1.0 / (1.0 + np.exp(-(2.0 - 0.8 * wai)))).astype(np.int8)
    x = rows([40.0] * wai.size, [40.0] * wai.size, list(wai))
    x[:5, FEATURES.index("wai_mean")] = np.nan
    fitted = fit_baselines(x, y)
    assert fitted.wai_coef == pytest.approx(-0.8, abs=0.1)
    assert fitted.wai_intercept == pytest.approx(2.0, abs=0.4)
    score = fitted.scores(x)[WAI_LOGISTIC]
    assert np.isnan(score[:5]).all()
    # Score equation of an unpenalised logistic: the fitted probabilities sum to the dropouts.
    assert float(np.nansum(score)) == pytest.approx(float(y[5:].sum()), rel=1e-4)


def test_wai_logistic_is_left_unfitted_when_a_class_is_absent() -> None:
    x = rows([30.0, 40.0], [30.0, 40.0], [4.0, 5.0])
    fitted = fit_baselines(x, np.array([0, 0]))
    assert fitted.wai_coef is None
    assert np.isnan(fitted.scores(x)[WAI_LOGISTIC]).all()


def test_flag_rate_credits_ties_at_the_cut_fractionally() -> None:
    # Scores 3, 2, 2, 2, 1, NaN; labels 1, 1, 0, 0, 0, 1. The NaN row does not apply (n = 5).
    score = np.array([3.0, 2.0, 2.0, 2.0, 1.0, np.nan])
    y = np.array([1, 1, 0, 0, 0, 1])
    stats = at_flag_rate(y, score, 0.4)  # flag 2 of 5: row 0 and one third of each tie
    assert (stats.n, stats.n_positive) == (5, 2)
    assert stats.flag_rate == pytest.approx(0.4)
    # TP = 1 + (2 - 1) / 3 * 1 = 4/3 of 2 dropouts; PPV = (4/3) / 2.
    assert stats.sensitivity == pytest.approx(2 / 3)
    assert stats.ppv == pytest.approx(2 / 3)
    # Pairs (pos, neg): 3 beats all three negatives; 2 ties two, beats one: (3 + 1 + 1) / 6.
    assert stats.auc == pytest.approx(5 / 6)


def test_flag_rate_zero_flags_nothing_and_bad_rate_is_refused() -> None:
    stats = at_flag_rate(np.array([1, 0]), np.array([1.0, 0.0]), 0.0)
    assert stats.sensitivity == 0.0
    assert math.isnan(stats.ppv)
    with pytest.raises(ValueError, match=r"flag rate must lie in \[0, 1\], got 1.5"):
        at_flag_rate(np.array([1, 0]), np.array([1.0, 0.0]), 1.5)


def test_wrong_column_count_is_refused() -> None:
    with pytest.raises(ValueError, match="columns"):
        fit_baselines(np.zeros((2, 3)), np.array([0, 1]))
