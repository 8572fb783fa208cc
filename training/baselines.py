"""The rules a clinic already uses, scored on the same landmark rows as the model.

A model is only worth deploying if it beats what the clinic does today, so every report puts
these next to it, on the same clients and at the same flag rate:

- ``srs_last_below_36``: "last SRS < 36" (PCOMS; score ``36 - srs_last``),
- ``srs_any_below_36``: "any SRS < 36 so far" (score ``36 - srs_min``),
- ``wai_mean_logistic``: a logistic regression on the mean WAI-SR alone (``wai_mean``).

API (other modules code against it):

- ``BASELINES``: the names above, in report order.
- ``fit_baselines(X, y) -> Baselines``: learns the WAI logistic on the given rows (columns of
  ``X`` in the order of ``training.features.FEATURES``; rows without a WAI are left out).
- ``Baselines.scores(X) -> dict[str, FloatArray]``: one score per row, higher = more risk,
  NaN where the rule cannot apply (no SRS taken, no WAI taken). For the SRS rules the score is
  positive exactly when the rule fires, so ``at_threshold(y, s, 0.0)`` is the rule as a clinic
  applies it, and ranking by the score is what the rule would do at another flag rate.
- ``at_flag_rate(y, score, rate) -> ScoreStats``: AUC, sensitivity and PPV of flagging the
  ``rate`` share of highest-scoring rows, among the rows where the score applies. Ties at the
  cut are credited fractionally (the expected value of breaking them at random), so a
  coarse rule is compared at exactly the model's flag rate, deterministically.
- ``at_threshold(y, score, threshold) -> ScoreStats``: the same, flagging ``score > threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression

from training.evaluation import auc
from training.features import FEATURES, SRS_CUTOFF

FloatArray = npt.NDArray[np.float64]

SRS_LAST, SRS_ANY, WAI_LOGISTIC = "srs_last_below_36", "srs_any_below_36", "wai_mean_logistic"
BASELINES: tuple[str, ...] = (SRS_LAST, SRS_ANY, WAI_LOGISTIC)
LABELS: dict[str, str] = {
    SRS_LAST: "last SRS < 36",
    SRS_ANY: "any SRS < 36 so far",
    WAI_LOGISTIC: "logistic on mean WAI-SR",
}

_COLUMN = {name: FEATURES.index(name) for name in ("srs_last", "srs_min", "wai_mean")}


@dataclass(frozen=True)
class ScoreStats:
    """How a score does on the rows where it applies; NaN where a figure is undefined."""

    n: int  # rows where the score applies
    n_positive: int  # dropouts among them
    auc: float
    flag_rate: float
    sensitivity: float
    ppv: float


@dataclass(frozen=True)
class Baselines:
    """The fitted clinic rules; only the WAI logistic has parameters (None if not fitted)."""

    wai_coef: float | None
    wai_intercept: float | None

    def scores(self, X: npt.ArrayLike) -> dict[str, FloatArray]:
        """Risk score of every baseline per row (higher = more risk; NaN = does not apply)."""
        x = _matrix(X)
        wai = x[:, _COLUMN["wai_mean"]]
        if self.wai_coef is None or self.wai_intercept is None:
            wai_score = np.full(x.shape[0], np.nan)
        else:
            wai_score = 1.0 / (1.0 + np.exp(-(self.wai_intercept + self.wai_coef * wai)))
        return {
            SRS_LAST: SRS_CUTOFF - x[:, _COLUMN["srs_last"]],
            SRS_ANY: SRS_CUTOFF - x[:, _COLUMN["srs_min"]],
            WAI_LOGISTIC: wai_score,
        }


def _matrix(X: npt.ArrayLike) -> FloatArray:
    """Feature rows as a float matrix; a wrong column count fails loudly."""
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(FEATURES):
        raise ValueError(f"X must have {len(FEATURES)} columns (FEATURES), got shape {x.shape}")
    return x


def fit_baselines(X: npt.ArrayLike, y: npt.ArrayLike) -> Baselines:
    """Fit the WAI logistic (unpenalised) on rows with a WAI; unfitted if a class is absent."""
    x = _matrix(X)
    labels = np.asarray(y, dtype=np.float64).ravel()
    if labels.size != x.shape[0]:
        raise ValueError(f"length mismatch: X {x.shape[0]} rows, y {labels.size}")
    wai = x[:, _COLUMN["wai_mean"]]
    known = np.isfinite(wai)
    if np.unique(labels[known]).size < 2:
        return Baselines(None, None)
    model = LogisticRegression(C=np.inf).fit(wai[known, None], labels[known].astype(np.int64))
    return Baselines(float(model.coef_[0, 0]), float(model.intercept_[0]))


def _applicable(y: npt.ArrayLike, score: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Labels and scores of the rows where the score is defined."""
    labels = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if labels.size != s.size:
        raise ValueError(f"length mismatch: y {labels.size}, score {s.size}")
    keep = np.isfinite(s)
    return labels[keep], s[keep]


def _stats(labels: FloatArray, s: FloatArray, flagged: float, true_pos: float) -> ScoreStats:
    """Assemble the figures; ranks make any score a valid input to the AUC in [0, 1]."""
    n, positives = labels.size, float(labels.sum())
    ranks = rankdata(s) / n if n else s
    return ScoreStats(
        n=int(n),
        n_positive=int(positives),
        auc=auc(labels, ranks) if n else float("nan"),
        flag_rate=flagged / n if n else float("nan"),
        sensitivity=true_pos / positives if positives > 0 else float("nan"),
        ppv=true_pos / flagged if flagged > 0 else float("nan"),
    )


def at_flag_rate(y: npt.ArrayLike, score: npt.ArrayLike, rate: float) -> ScoreStats:
    """Flag the top `rate` share of applicable rows; ties at the cut count fractionally."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"flag rate must lie in [0, 1], got {rate}")
    labels, s = _applicable(y, score)
    k = rate * labels.size
    if k <= 0:
        return _stats(labels, s, 0.0, 0.0)
    order = np.argsort(-s, kind="stable")
    cut = s[order[min(int(np.ceil(k)), labels.size) - 1]]
    above, tied = s > cut, s == cut
    share = (k - float(above.sum())) / float(tied.sum())
    true_pos = float(labels[above].sum()) + share * float(labels[tied].sum())
    return _stats(labels, s, k, true_pos)


def at_threshold(y: npt.ArrayLike, score: npt.ArrayLike, threshold: float) -> ScoreStats:
    """Flag applicable rows with score > threshold (threshold 0 is the SRS rule itself)."""
    labels, s = _applicable(y, score)
    flag = s > threshold
    return _stats(labels, s, float(flag.sum()), float(labels[flag].sum()))
