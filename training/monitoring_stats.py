"""The statistics behind the monitoring figures: each is a size and a p-value.

Why both: a clinic's window is small (a few hundred clients), so a figure that only looks
at size false-alarms. PSI is the classic case: the conventional 0.1 / 0.25 cut-offs were
made for large samples, and with 100 current against 500 reference clients and no drift at
all PSI passes 0.1 about half the time (docs/monitoring.md). Every figure here therefore
comes with its null distribution, and training/monitoring.py raises a status only when the
size is large enough to matter *and* the chance of seeing it without drift is small.

- PSI: with a small-count correction (0.5 added to every bin of both sides, so an empty
  bin is not infinitely surprising). Without drift, PSI is close to the chi-square
  statistic of the binned comparison divided by the sample size: PSI ~ chi2(bins - 1) *
  (1/n + 1/N) for a window of n against a reference of N, which gives its p-value.
- KS from bins: the reference is stored binned, so the two-sample Kolmogorov-Smirnov
  distance is taken over the reference's bin edges only (where both cumulative shares are
  known exactly). The supremum over a subset of points is never larger than over all of
  them, so the p-value from the asymptotic Kolmogorov distribution is conservative: it
  under-states drift, never over-states it, and discrete features (ties) make it more so.
- Proportions (missing rates, instrument mix, flag rates, the share outside the training
  range): the two-sample z-test with the pooled share.
- Weighted Mann-Whitney sums over pairs (`pair_auc`): the realised AUC's DeLong variance
  (DeLong, DeLong & Clarke-Pearson 1988) and the AUC a model's own probabilities imply
  (CBPE, below) are one computation with different masses per client.

Windows can be weighted (training/monitoring.py reweights a window to the reference's
landmark mix); a weighted sample counts as its effective size (sum w)^2 / sum w^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import chi2, kstwobign, norm

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

PSI_CORRECTION = 0.5  # added to every bin's count, window and reference alike
ECE_NULL_DRAWS = 20_000  # draws of the calibrated null of ECE: p-values down to 5e-5
ECE_INTERVAL_DRAWS = 2_000


def dot(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Inner product without BLAS: OpenBLAS threads spin when the cores are busy, which made
    a monitoring report several times slower on a loaded machine (the same reason as
    training.evaluation's); numpy's own einsum loop stays on one thread."""
    return float(np.einsum("i,i->", a, b))


def effective_size(w: FloatArray) -> float:
    """Kish's effective sample size of weights w: n for equal weights, less otherwise."""
    total = float(w.sum())
    return total * total / dot(w, w) if total > 0 else 0.0


def psi(window: FloatArray, reference: FloatArray, n: float, n_ref: float) -> float:
    """Population stability index of the window's bin shares against the reference's,
    each as counts (share x size) plus PSI_CORRECTION per bin."""
    bins = window.size
    a = (window * n + PSI_CORRECTION) / (n + PSI_CORRECTION * bins)
    e = (reference * n_ref + PSI_CORRECTION) / (n_ref + PSI_CORRECTION * bins)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_p_value(value: float, bins: int, n: float, n_ref: float) -> float:
    """P(PSI >= value) without drift, by PSI ~ chi2(bins - 1) * (1/n + 1/n_ref)."""
    if bins < 2:
        return 1.0
    return float(chi2.sf(value / (1.0 / n + 1.0 / n_ref), bins - 1))


def psi_null_quantile(q: float, bins: int, n: float, n_ref: float) -> float:
    """The q-quantile of PSI without drift: where a threshold of that level lies at n."""
    return float(chi2.ppf(q, bins - 1) * (1.0 / n + 1.0 / n_ref))


def ks_from_bins(
    window: FloatArray, reference: FloatArray, n: float, n_ref: float
) -> tuple[float, float]:
    """(distance, p-value): the largest gap between the cumulative shares at the bin edges,
    and the asymptotic two-sample p-value at the effective size n * N / (n + N)."""
    gap = np.abs(np.cumsum(window)[:-1] - np.cumsum(reference)[:-1])
    distance = float(gap.max()) if gap.size else 0.0
    scale = np.sqrt(n * n_ref / (n + n_ref))
    return distance, float(kstwobign.sf(distance * scale))


@dataclass(frozen=True)
class Shift:
    """A difference (two shares, two estimates) and its two-sided p-value."""

    delta: float
    p_value: float


def proportion_shift(share: float, n: float, share_ref: float, n_ref: float) -> Shift:
    """Window share minus reference share, with the pooled two-sample z-test."""
    pooled = (share * n + share_ref * n_ref) / (n + n_ref)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n_ref))
    delta = share - share_ref
    if se <= 0:
        return Shift(delta, 1.0 if delta == 0 else 0.0)
    return Shift(delta, two_sided(delta / se))


def two_sided(z: float) -> float:
    """Two-sided normal p-value of a z statistic."""
    return float(2.0 * norm.sf(abs(z)))


@dataclass(frozen=True)
class PairAuc:
    """A weighted Mann-Whitney AUC with two standard errors.

    `se` is its sampling error when the clients are a sample (the DeLong variance when the
    masses are 0/1 outcomes). `se_labels` is how far a realised AUC on these very clients
    would stray from `value` through the outcomes alone, were each client's outcome drawn
    with its mass as probability: what a realised AUC is compared with (CBPE)."""

    value: float
    se: float
    se_labels: float


def pair_auc(
    score: FloatArray, pos: FloatArray, neg: FloatArray, order: IntArray | None = None
) -> PairAuc:
    """AUC of `score` when client i weighs `pos[i]` as a positive and `neg[i]` as a
    negative: sum over pairs i != j of pos_i neg_j h(s_i, s_j) over sum of pos_i neg_j,
    h = 1 if s_i > s_j, 1/2 on ties. Outcomes (pos = y, neg = 1 - y) give the usual AUC;
    probabilities (pos = p, neg = 1 - p) give the AUC expected under calibration, exactly,
    since self-pairs are left out.

    Both standard errors come from first-order expansions around the per-client sums
    `below` (negative mass under a client) and `above` (positive mass over it), in one
    sort: O(n log n) for any window, where a bootstrap would cost hundreds of passes.
    `order` (argsort of score) may be passed when the same scores serve several calls.
    """
    if order is None:
        order = np.argsort(score, kind="stable")
    s, u, v = score[order], pos[order], neg[order]
    new = np.empty(s.size, dtype=bool)
    new[:1] = True
    new[1:] = s[1:] != s[:-1]
    group = np.cumsum(new) - 1
    u_group = np.bincount(group, weights=u)
    v_group = np.bincount(group, weights=v)
    v_under = np.cumsum(v_group) - v_group
    u_over = u_group[::-1].cumsum()[::-1] - u_group
    below = v_under[group] + 0.5 * (v_group[group] - v)  # self left out of the tie
    above = u_over[group] + 0.5 * (u_group[group] - u)
    total_u, total_v = float(u.sum()), float(v.sum())
    pairs = total_u * total_v - dot(u, v)
    if pairs <= 0:
        return PairAuc(float("nan"), float("nan"), float("nan"))
    value = dot(u, below) / pairs
    influence = u * below + v * above - value * (u * (total_v - v) + v * (total_u - u))
    se = float(np.sqrt(dot(influence, influence))) / pairs
    # Outcome k moves the numerator by (below_k - above_k) and the pairs by
    # (V - v_k) - (U - u_k); its variance is the Bernoulli variance of its mass.
    slope = (below - above) - value * ((total_v - v) - (total_u - u))
    bernoulli = np.clip(u / np.maximum(u + v, 1e-300), 0.0, 1.0)
    spread = (u + v) * slope
    se_labels = float(np.sqrt(dot(bernoulli * (1.0 - bernoulli) * spread, spread))) / pairs
    return PairAuc(value, se, se_labels)


@dataclass(frozen=True)
class Ratio:
    """A ratio of weighted sums with its sampling standard error (delta method)."""

    value: float
    se: float


def ratio(top: FloatArray, bottom: FloatArray, w: FloatArray) -> Ratio:
    """sum(w top) / sum(w bottom), with the linearised variance of a ratio estimator."""
    den = dot(w, bottom)
    if den <= 0:
        return Ratio(float("nan"), float("nan"))
    value = dot(w, top) / den
    resid = w * (top - value * bottom)
    return Ratio(value, float(np.sqrt(dot(resid, resid))) / den)


def ece_bins(p: FloatArray, bins: int) -> IntArray:
    """The equal-width bin of each probability, as training.transport.ece bins them."""
    which: IntArray = np.minimum((p * bins).astype(np.intp), bins - 1)
    return which


@dataclass(frozen=True)
class EceCheck:
    """ECE against its distribution under calibration, and its own interval.

    Why: ECE is never 0 on a finite sample, even for a perfectly calibrated model, since
    each bin's observed rate is noisy; the figure to compare with is its distribution
    when outcomes follow the probabilities. Per bin the gap between observed and expected
    dropouts is close to normal, with variance sum p(1 - p) under calibration and
    sum (y - p)^2 when clients are resampled, so both distributions are drawn per bin
    (bins x draws numbers, whatever the window's size)."""

    expected: float  # mean ECE under calibration
    p_value: float  # P(ECE >= observed) under calibration
    interval: tuple[float, float]  # normal approximation of the bootstrap, 95%


def ece_check(y: FloatArray, p: FloatArray, observed: float, bins: int, seed: int) -> EceCheck:
    """ECE's calibrated null and interval for outcomes y and probabilities p."""
    which = ece_bins(p, bins)
    null_sd = np.sqrt(np.bincount(which, p * (1.0 - p), bins))
    gap = np.bincount(which, y - p, bins)
    boot_sd = np.sqrt(np.bincount(which, (y - p) ** 2, bins))
    rng = np.random.default_rng(seed)
    n = float(y.size)
    null = np.abs(rng.standard_normal((ECE_NULL_DRAWS, bins)) * null_sd).sum(axis=1) / n
    draws = np.abs(gap + rng.standard_normal((ECE_INTERVAL_DRAWS, bins)) * boot_sd).sum(axis=1)
    lo, hi = np.percentile(draws / n, [2.5, 97.5])
    p_value = (1.0 + np.count_nonzero(null >= observed - 1e-12)) / (1.0 + ECE_NULL_DRAWS)
    return EceCheck(float(null.mean()), float(p_value), (float(lo), float(hi)))


def wald_interval(value: float, se: float, level: float = 0.95) -> tuple[float, float] | None:
    """value +- z se, or None when either is undefined."""
    if not (np.isfinite(value) and np.isfinite(se)):
        return None
    z = float(norm.ppf(0.5 + level / 2))
    return value - z * se, value + z * se
