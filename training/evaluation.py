"""Metrics with 95% intervals on a scored, labelled cohort.

A client contributes one example per landmark session, and clients of one therapist share
that therapist's effect on dropout (12.6% of its variance, Saxon et al. 2017), so rows are not
independent: intervals come from a cluster bootstrap. Where the cohort names therapists, the
cluster is the therapist (all landmark rows of all their clients move together; a client
without a therapist is its own cluster); otherwise it is the client. A new clinic brings new
therapists, so only the therapist bootstrap says how much the figures could move there.

Each replicate gives every cluster a Poisson(1) weight (the large-sample limit of the
multinomial counts of resampling with replacement), so the rows never move: sort orders and
per-row terms are computed once and each replicate is a handful of weighted sums. That keeps
200 replicates on 70,000 rows to seconds.

Metrics that need both outcomes (AUC, calibration, sensitivity, PPV, O/E) are reported as
"too few" rather than as a number when a panel has fewer than MIN_CLIENTS_PER_CLASS clients
who dropped out or who completed: clients, not rows, since a client's landmark rows share
one outcome. A percentile interval from a handful of clients is degenerate, not informative;
for the same reason no interval at all is given when the bootstrap has fewer than
MIN_CLUSTERS_FOR_INTERVALS clusters (four held-out clients of one therapist).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from training.features import FEATURES
from training.figures import (
    Bootstrap,
    Estimate,
    Evaluation,
    LandmarkFigures,
    LevelFigures,
    OverallFigures,
    SubgroupFigures,
)
from training.vocabulary import Thresholds

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

EPS = 1e-15
MIN_CLIENTS_PER_CLASS = 10
MIN_CLUSTERS_FOR_INTERVALS = 10  # fewer therapists (or clients) give no interval at all
TOO_FEW = "too few clients"
MIN_FINITE_SHARE = 0.5  # fewer defined replicates than this -> no interval
NEWTON_MAX_ITER = 50
NEWTON_TOL = 1e-8  # convergence is quadratic: after a step this small the error is ~1e-16
NEWTON_MAX_STEP = 5.0
MAX_ABS_INTERCEPT = 200.0  # beyond this the fit has diverged; also keeps exp() finite

GENDERS = ("female", "male", "other", "unknown")
AGE_BANDS = ("<25", "25-39", "40-59", "60+", "unknown")
VOLUME_BANDS = ("unknown therapist", "1-19", "20-49", "50+")
INSTRUMENT_SETS = ("WAI-SR and SRS/ORS", "WAI-SR only", "SRS/ORS only", "none")
_NEEDS_BOTH_CLASSES = frozenset(
    {
        "auc",
        "calibration_slope",
        "calibration_intercept",
        "observed_expected",
        "moderate.sensitivity",
        "moderate.ppv",
        "high.sensitivity",
        "high.ppv",
        "moderate.false_negative_rate",
    }
)


@dataclass(frozen=True)
class EvalData:
    """Scored landmark examples of a labelled cohort: one row per client x landmark."""

    y: np.ndarray  # int8, 1 = dropout
    p: np.ndarray  # float64 calibrated probability in [0, 1]
    client: np.ndarray  # client ids (str objects); the bootstrap resamples clients, not rows
    landmark: np.ndarray  # int, landmark session 1..K
    gender: np.ndarray  # str objects: "female" | "male" | "other" | "unknown"
    age: np.ndarray  # float64, NaN when missing
    therapist_volume: np.ndarray  # int, episodes of the client's therapist; 0 when unknown
    therapist: np.ndarray | None = None  # str objects, "" when unknown; None: no therapist_id
    features: np.ndarray | None = None  # landmark rows (FEATURES order): instrument sets


@dataclass(frozen=True)
class _Scored:
    """Labels and scores of a row set sorted by p, with the per-row terms replicates reuse."""

    y: FloatArray
    p: FloatArray
    logit: FloatArray
    odds: FloatArray  # p / (1 - p): the intercept fit then needs no exp per row
    sq_err: FloatArray
    loss: FloatArray
    tie: IntArray  # tie-group id per row: equal p share an id, so ties count 1/2 in the AUC
    n_ties: int


def _scored(y: FloatArray, p: FloatArray) -> _Scored:
    """Precompute everything that does not depend on the weights; y and p sorted by p."""
    clipped = np.clip(p, EPS, 1.0 - EPS)
    logit = np.log(clipped) - np.log1p(-clipped)
    loss = -(y * np.log(clipped) + (1.0 - y) * np.log1p(-clipped))
    new_value = np.empty(p.size, dtype=bool)
    new_value[:1] = True
    new_value[1:] = p[1:] != p[:-1]
    tie = np.cumsum(new_value) - 1
    n_ties = int(tie[-1]) + 1 if p.size else 0
    odds = clipped / (1.0 - clipped)
    return _Scored(y, p, logit, odds, (p - y) ** 2, loss, tie.astype(np.intp), n_ties)


def _validated(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Labels, scores and weights as float arrays; bad inputs fail loudly, never coerced."""
    y_arr = np.asarray(y, dtype=np.float64).ravel()
    p_arr = np.asarray(p, dtype=np.float64).ravel()
    w_arr = np.ones_like(p_arr) if w is None else np.asarray(w, dtype=np.float64).ravel()
    if not y_arr.size == p_arr.size == w_arr.size:
        raise ValueError(f"length mismatch: y {y_arr.size}, p {p_arr.size}, w {w_arr.size}")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must contain only 0 and 1")
    if not (np.isfinite(p_arr).all() and (p_arr >= 0).all() and (p_arr <= 1).all()):
        raise ValueError("p must be probabilities in [0, 1]")
    if not (np.isfinite(w_arr).all() and (w_arr >= 0).all()):
        raise ValueError("weights must be finite and non-negative")
    return y_arr, p_arr, w_arr


def _prepare(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None
) -> tuple[_Scored, FloatArray]:
    """Validated inputs of a public metric function, sorted by p."""
    y_arr, p_arr, w_arr = _validated(y, p, w)
    order = np.argsort(p_arr, kind="stable")
    return _scored(y_arr[order], p_arr[order]), w_arr[order]


def _dot(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Inner product without BLAS.

    A bootstrap makes tens of thousands of small dot products; OpenBLAS threads them, and its
    threads spin when the cores are busy (training in parallel, a test run under xdist),
    which made evaluate() 10-20 times slower. numpy's own einsum loop stays single-threaded.
    """
    return float(np.einsum("i,i->", a, b))


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when the denominator is empty (a metric undefined on this sample)."""
    return num / den if den > 0 else float("nan")


def _expit(z: FloatArray) -> FloatArray:
    """Logistic function; clipping keeps exp() finite, so no overflow warnings."""
    result: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -700.0, 700.0)))
    return result


def _auc(s: _Scored, w: FloatArray) -> float:
    """Weighted Mann-Whitney AUC: rows are already sorted, so one pass of sums per call."""
    pos = np.bincount(s.tie, weights=w * s.y, minlength=s.n_ties)
    neg = np.bincount(s.tie, weights=w * (1.0 - s.y), minlength=s.n_ties)
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return float("nan")
    neg_below = np.cumsum(neg) - neg
    return _dot(pos, neg_below + 0.5 * neg) / (n_pos * n_neg)


def _weighted_mean(values: FloatArray, w: FloatArray) -> float:
    return _ratio(_dot(w, values), float(w.sum()))


def _both_classes(s: _Scored, w: FloatArray) -> bool:
    return _dot(w, s.y) > 0 and _dot(w, 1.0 - s.y) > 0


def _intercept(s: _Scored, w: FloatArray, start: float = 0.0) -> float:
    """Calibration-in-the-large: a in logit P(y) = a + logit(p), by 1-D Newton-Raphson.

    Bootstrap replicates start from the full-sample estimate, so they converge in 2-3 steps.
    """
    if not _both_classes(s, w):
        return float("nan")
    observed = _dot(w, s.y)
    a = start
    for _ in range(NEWTON_MAX_ITER):
        odds = s.odds * np.exp(a)
        mu = odds / (1.0 + odds)
        expected = _dot(w, mu)
        hess = expected - _dot(w * mu, mu)
        if hess <= 0:
            return float("nan")
        step = float(np.clip((observed - expected) / hess, -NEWTON_MAX_STEP, NEWTON_MAX_STEP))
        a += step
        if abs(a) > MAX_ABS_INTERCEPT:
            return float("nan")
        if abs(step) < NEWTON_TOL:
            return a
    return float("nan")


def _slope(s: _Scored, w: FloatArray, start: float = 1.0) -> float:
    """Calibration slope: b in logit P(y) = a + b * logit(p), by 2-D Newton-Raphson.

    Bootstrap replicates start b from the full-sample estimate, which saves steps now that
    every landmark fits its own slope. Returns NaN when the fit does not converge (e.g. the
    scores separate the classes).
    """
    if not _both_classes(s, w):
        return float("nan")
    x = s.logit
    a, b = 0.0, start
    for _ in range(NEWTON_MAX_ITER):
        mu = _expit(a + b * x)
        resid = w * (s.y - mu)
        var = w * mu * (1.0 - mu)
        g0, g1 = float(resid.sum()), _dot(resid, x)
        h00, h01, h11 = float(var.sum()), _dot(var, x), _dot(var * x, x)
        det = h00 * h11 - h01 * h01
        if det <= 1e-12 * h00 * h11 or h00 <= 0:
            return float("nan")
        da = float(np.clip((h11 * g0 - h01 * g1) / det, -NEWTON_MAX_STEP, NEWTON_MAX_STEP))
        db = float(np.clip((h00 * g1 - h01 * g0) / det, -NEWTON_MAX_STEP, NEWTON_MAX_STEP))
        a, b = a + da, b + db
        if max(abs(da), abs(db)) < NEWTON_TOL:
            return b
    return float("nan")


def _level(s: _Scored, w: FloatArray, threshold: float) -> dict[str, float]:
    """Flag rate, sensitivity and PPV of flagging p >= threshold; rows sorted, so a suffix."""
    first = int(np.searchsorted(s.p, threshold, side="left"))
    flagged = float(w[first:].sum())
    true_pos = _dot(w[first:], s.y[first:])
    positives = _dot(w, s.y)
    sensitivity = _ratio(true_pos, positives)
    return {
        "flag_rate": _ratio(flagged, float(w.sum())),
        "sensitivity": sensitivity,
        "ppv": _ratio(true_pos, flagged),
        "false_negative_rate": 1.0 - sensitivity,
    }


def auc(y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None) -> float:
    """Area under the ROC curve (weighted Mann-Whitney; ties count 1/2); NaN if a class is absent.

    Args:
        y: 0/1 outcomes (1 = dropout).
        p: predicted probabilities.
        w: optional non-negative row weights (bootstrap weights).
    """
    s, weights = _prepare(y, p, w)
    return _auc(s, weights)


def brier(y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None) -> float:
    """Weighted mean squared error of the probabilities."""
    s, weights = _prepare(y, p, w)
    return _weighted_mean(s.sq_err, weights)


def log_loss(y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None) -> float:
    """Weighted mean negative log-likelihood, p clipped to [1e-15, 1 - 1e-15]."""
    s, weights = _prepare(y, p, w)
    return _weighted_mean(s.loss, weights)


def calibration_slope_intercept(
    y: npt.ArrayLike, p: npt.ArrayLike, w: npt.ArrayLike | None = None
) -> tuple[float, float]:
    """Calibration slope (ideal 1) and calibration-in-the-large intercept (ideal 0).

    The slope is b in logit P(y) = a + b logit(p): below 1 means predictions too extreme.
    The intercept is a in logit P(y) = a + logit(p) with the slope fixed at 1: above 0 means
    the model under-predicts risk on average. NaN when a class is absent or the fit diverges.
    """
    s, weights = _prepare(y, p, w)
    return _slope(s, weights), _intercept(s, weights)


def net_benefit(y: npt.ArrayLike, p: npt.ArrayLike, thresholds: npt.ArrayLike) -> FloatArray:
    """Net benefit TP/n - FP/n * t/(1-t) of flagging p >= t, for each threshold t in [0, 1)."""
    s, _ = _prepare(y, p, None)
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if not ((t >= 0).all() and (t < 1).all()):
        raise ValueError("thresholds must lie in [0, 1)")
    first = np.searchsorted(s.p, t, side="left")
    pos_from = np.concatenate([np.cumsum(s.y[::-1])[::-1], [0.0]])
    true_pos = pos_from[first]
    false_pos = (s.p.size - first) - true_pos
    n = max(s.p.size, 1)
    result: FloatArray = true_pos / n - false_pos / n * t / (1.0 - t)
    return result


def level_stats(
    y: npt.ArrayLike, p: npt.ArrayLike, threshold: float, w: npt.ArrayLike | None = None
) -> dict[str, float]:
    """Flag rate, sensitivity, PPV and false-negative rate of flagging p >= threshold."""
    s, weights = _prepare(y, p, w)
    return _level(s, weights, threshold)


def format_metric(m: Estimate | None, pct: bool = False, digits: int = 3) -> str:
    """'estimate (lo–hi)' for an evaluate() figure, as the report and model card print it.

    Args:
        m: the figure, or None where its panel does not report it ("n/a").
        pct: print as percentages with one decimal.
        digits: decimals otherwise.
    """
    if m is not None and m.too_few:
        return TOO_FEW
    if m is None or m.estimate is None:
        return "n/a"

    def number(x: float) -> str:
        return f"{100 * x:.1f}%" if pct else f"{x:.{digits}f}"

    lo, hi = m.ci95
    if lo is None or hi is None:
        return number(m.estimate)
    sep = " to " if min(lo, hi) < 0 else "–"  # "-0.05–0.13" would read as a range of minus
    return f"{number(m.estimate)} ({number(lo)}{sep}{number(hi)})"


# (rows, weights, thresholds, full-sample estimate or NaN) -> value; the estimate warm-starts fits
_Metric = Callable[[_Scored, FloatArray, Thresholds, float], float]

_METRICS: dict[str, _Metric] = {
    "auc": lambda s, w, th, _: _auc(s, w),
    "brier": lambda s, w, th, _: _weighted_mean(s.sq_err, w),
    "log_loss": lambda s, w, th, _: _weighted_mean(s.loss, w),
    "calibration_slope": lambda s, w, th, start: _slope(s, w, start if np.isfinite(start) else 1.0),
    "calibration_intercept": lambda s, w, th, start: _intercept(
        s, w, start if np.isfinite(start) else 0.0
    ),
    "observed_expected": lambda s, w, th, _: _ratio(_dot(w, s.y), _dot(w, s.p)),
    "moderate.flag_rate": lambda s, w, th, _: _level(s, w, th.moderate)["flag_rate"],
    "moderate.sensitivity": lambda s, w, th, _: _level(s, w, th.moderate)["sensitivity"],
    "moderate.ppv": lambda s, w, th, _: _level(s, w, th.moderate)["ppv"],
    "high.flag_rate": lambda s, w, th, _: _level(s, w, th.high)["flag_rate"],
    "high.sensitivity": lambda s, w, th, _: _level(s, w, th.high)["sensitivity"],
    "high.ppv": lambda s, w, th, _: _level(s, w, th.high)["ppv"],
    "moderate.false_negative_rate": lambda s, w, th, _: _level(s, w, th.moderate)[
        "false_negative_rate"
    ],
}

_OVERALL = (
    "auc",
    "brier",
    "log_loss",
    "calibration_slope",
    "calibration_intercept",
    "moderate.flag_rate",
    "moderate.sensitivity",
    "moderate.ppv",
    "high.flag_rate",
    "high.sensitivity",
    "high.ppv",
)
_LANDMARK = (
    "auc",
    "brier",
    "calibration_slope",
    "calibration_intercept",
    "high.flag_rate",
    "high.sensitivity",
)
_SUBGROUP = (
    "auc",
    "calibration_intercept",
    "observed_expected",
    "moderate.flag_rate",
    "high.flag_rate",
    "moderate.false_negative_rate",
)


@dataclass(frozen=True)
class _Panel:
    """A row subset (global indices sorted by p) and the metrics bootstrapped on it."""

    rows: IntArray
    scored: _Scored
    metrics: tuple[str, ...]
    too_few: bool  # fewer than MIN_CLIENTS_PER_CLASS clients of an outcome


def too_few_clients(y: npt.ArrayLike, clients: npt.ArrayLike | None) -> bool:
    """Fewer than MIN_CLIENTS_PER_CLASS distinct clients dropped out, or completed, among rows
    with outcomes y of these clients (None: each row is a client of its own): too few for
    any figure that needs both outcomes."""
    labels = np.asarray(y)
    if clients is None:
        counts = (int(np.count_nonzero(labels == value)) for value in (0, 1))
    else:
        owners = np.asarray(clients)
        counts = (np.unique(owners[labels == value]).size for value in (0, 1))
    return min(counts) < MIN_CLIENTS_PER_CLASS


def _panel(
    y: FloatArray, p: FloatArray, rows: IntArray, metrics: Sequence[str], client_idx: IntArray
) -> _Panel:
    """Build a panel; metrics needing both outcomes are dropped when either outcome has fewer
    than MIN_CLIENTS_PER_CLASS distinct clients (a client's rows share one outcome)."""
    s = _scored(y[rows], p[rows])
    too_few = too_few_clients(y[rows], client_idx[rows])
    if too_few:
        metrics = [m for m in metrics if m not in _NEEDS_BOTH_CLASSES]
    return _Panel(rows, s, tuple(metrics), too_few)


def _values(panel: _Panel, w: FloatArray, th: Thresholds, start: FloatArray) -> FloatArray:
    """The panel's metrics under weights w; start holds warm starts (NaN for none)."""
    return np.array(
        [
            _METRICS[m](panel.scored, w, th, float(x))
            for m, x in zip(panel.metrics, start, strict=True)
        ]
    )


def _estimates(panel: _Panel, th: Thresholds) -> FloatArray:
    """Full-sample values of the panel's metrics (every row weighted 1)."""
    no_start = np.full(len(panel.metrics), np.nan)
    return _values(panel, np.ones(panel.rows.size), th, no_start)


def _bootstrap(
    panels: Sequence[_Panel],
    estimates: Sequence[FloatArray],
    cluster_idx: IntArray,
    th: Thresholds,
    n_boot: int,
    seed: int,
) -> list[FloatArray]:
    """Replicate matrix (n_boot x metrics) per panel, from Poisson(1) cluster weights."""
    rng = np.random.default_rng(seed)
    n_clusters = int(cluster_idx.max()) + 1
    reps = [np.full((n_boot, len(panel.metrics)), np.nan) for panel in panels]
    for b in range(n_boot):
        w = rng.poisson(1.0, n_clusters).astype(np.float64)[cluster_idx]
        for panel, estimate, out in zip(panels, estimates, reps, strict=True):
            out[b] = _values(panel, w[panel.rows], th, estimate)
    return reps


def _json_float(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _summary(estimate: float, reps: FloatArray) -> Estimate:
    """Estimate and percentile 95% interval over the replicates where the metric is defined."""
    finite = reps[np.isfinite(reps)]
    if np.isfinite(estimate) and finite.size >= max(2, MIN_FINITE_SHARE * reps.size):
        lo, hi = np.percentile(finite, [2.5, 97.5])
        return Estimate(estimate=float(estimate), ci95=(float(lo), float(hi)))
    return Estimate(estimate=_json_float(estimate))


def _panel_results(panel: _Panel, estimates: FloatArray, reps: FloatArray) -> dict[str, Estimate]:
    """Estimate and interval per panel metric, keyed by metric name."""
    return {m: _summary(float(estimates[j]), reps[:, j]) for j, m in enumerate(panel.metrics)}


def _getter(summary: dict[str, Estimate], panel: _Panel) -> Callable[[str], Estimate]:
    """A panel's figure by metric name; one left out of a panel with too few clients says so."""

    def get(metric: str) -> Estimate:
        return summary.get(metric) or Estimate(too_few=panel.too_few)

    return get


def _age_band(age: FloatArray) -> npt.NDArray[np.object_]:
    """Age bands used for fairness reporting; NaN -> "unknown"."""
    bands = np.full(age.size, "unknown", dtype=object)
    known = np.isfinite(age)
    edges = np.array([25.0, 40.0, 60.0])
    bands[known] = np.array(AGE_BANDS[:4], dtype=object)[
        np.searchsorted(edges, age[known], "right")
    ]
    return bands


def _volume_band(volume: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    """Therapist caseload bands in the cohort; 0 means the therapist is unknown."""
    edges = np.array([1, 20, 50])
    labels = np.array(VOLUME_BANDS, dtype=object)
    return labels[np.searchsorted(edges, np.asarray(volume, dtype=np.int64), side="right")]


def _group_order(values: npt.NDArray[Any], canonical: Sequence[str]) -> list[str]:
    """Canonical groups present in the data, then any unexpected values, sorted."""
    present = {str(v) for v in np.unique(values)}
    return [g for g in canonical if g in present] + sorted(present - set(canonical))


def instrument_sets(features: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Which instruments a landmark row saw, from its missingness counts: a measure is present
    when fewer sessions lack it than the landmark has (INSTRUMENT_SETS names the groups)."""
    x = np.asarray(features, dtype=np.float64)
    k = x[:, FEATURES.index("landmark")]
    wai = x[:, FEATURES.index("wai_missing")] < k
    srs_ors = (x[:, FEATURES.index("srs_missing")] < k) | (x[:, FEATURES.index("ors_missing")] < k)
    names = np.array(INSTRUMENT_SETS, dtype=object)
    return names[np.where(wai, np.where(srs_ors, 0, 1), np.where(srs_ors, 2, 3))]


def _subgroup_panels(
    data: EvalData, y: FloatArray, p: FloatArray, order: IntArray, client_idx: IntArray
) -> list[tuple[str, str, _Panel]]:
    """(factor, group, panel) for every non-empty group of gender, age band, therapist volume
    and, when the rows' features are known, instrument set."""
    factors: list[tuple[str, npt.NDArray[Any], Sequence[str]]] = [
        ("gender", np.asarray(data.gender).astype(str), GENDERS),
        ("age_band", _age_band(np.asarray(data.age, dtype=np.float64)), AGE_BANDS),
        ("therapist_volume", _volume_band(data.therapist_volume), VOLUME_BANDS),
    ]
    if data.features is not None:
        factors.append(("instruments", instrument_sets(data.features), INSTRUMENT_SETS))
    panels = []
    for factor, labels, canonical in factors:
        labels_sorted = labels[order].astype(str)
        for group in _group_order(labels, canonical):
            rows = order[labels_sorted == group]
            panels.append((factor, group, _panel(y, p, rows, _SUBGROUP, client_idx)))
    return panels


def _clusters(data: EvalData, clients: npt.NDArray[Any]) -> tuple[IntArray, str]:
    """Bootstrap cluster of every row and the unit's name: the therapist where the cohort
    names one (a client without one is its own cluster), else the client."""
    if data.therapist is None:
        return np.unique(clients, return_inverse=True)[1].astype(np.intp), "client"
    therapist = np.asarray(data.therapist).astype(str)
    known = therapist != ""
    if not known.any():
        return np.unique(clients, return_inverse=True)[1].astype(np.intp), "client"
    label = np.where(known, np.char.add("t:", therapist), np.char.add("c:", clients))
    return np.unique(label, return_inverse=True)[1].astype(np.intp), "therapist"


def _check(data: EvalData) -> tuple[FloatArray, FloatArray]:
    """Labels and scores as float arrays, after checking the columns line up."""
    y, p, _ = _validated(data.y, data.p, None)
    columns = [data.client, data.landmark, data.gender, data.age, data.therapist_volume]
    columns += [c for c in (data.therapist, data.features) if c is not None]
    if any(len(c) != y.size for c in columns):
        raise ValueError("EvalData columns must all have one entry per row")
    if y.size == 0:
        raise ValueError("EvalData has no rows")
    return y, p


def evaluate(
    data: EvalData, thresholds: Thresholds, n_boot: int = 200, seed: int = 0
) -> Evaluation:
    """Overall, per-landmark and subgroup metrics, each with a cluster-bootstrap 95% CI.

    Args:
        data: scored landmark examples of a labelled cohort.
        thresholds: the moderate and high risk cut-offs.
        n_boot: bootstrap replicates (0 gives estimates without intervals).
        seed: seed of numpy's default_rng; same inputs and seed give identical output.

    Returns:
        The typed figures (training.figures; `to_json` gives metadata.json's "metrics"),
        NaN given as None: n_examples, n_clients, prevalence, overall, per_landmark,
        subgroups, and bootstrap (replicates, seed, unit: "therapist" or "client",
        clusters). Replicates in which a metric is undefined are left out of its interval;
        with fewer than half of them defined the interval is None, and with fewer than
        MIN_CLUSTERS_FOR_INTERVALS clusters no replicate is drawn. A metric that needs both
        outcomes on a panel with too few clients of one is Estimate(too_few=True).
    """
    y, p = _check(data)
    client_str = np.asarray(data.client).astype(str)
    clients, client_idx = np.unique(client_str, return_inverse=True)
    cluster_idx, unit = _clusters(data, client_str)
    order = np.argsort(p, kind="stable")
    landmark = np.asarray(data.landmark, dtype=np.int64)
    landmark_values = sorted({int(v) for v in landmark})
    overall = _panel(y, p, order, _OVERALL, client_idx)
    landmarks = [
        _panel(y, p, order[landmark[order] == k], _LANDMARK, client_idx) for k in landmark_values
    ]
    subgroups = _subgroup_panels(data, y, p, order, client_idx)
    panels = [overall, *landmarks, *(panel for _, _, panel in subgroups)]
    estimates = [_estimates(panel, thresholds) for panel in panels]
    n_clusters = int(cluster_idx.max()) + 1
    replicates = n_boot if n_clusters >= MIN_CLUSTERS_FOR_INTERVALS else 0
    reps = _bootstrap(panels, estimates, cluster_idx, thresholds, replicates, seed)
    summaries = [_panel_results(*args) for args in zip(panels, estimates, reps, strict=True)]
    return Evaluation(
        n_examples=int(y.size),
        n_clients=int(clients.size),
        prevalence=float(y.mean()),
        overall=_overall(summaries[0], overall),
        per_landmark=tuple(
            _landmark_row(k, panel, summary)
            for k, panel, summary in zip(
                landmark_values, landmarks, summaries[1 : 1 + len(landmarks)], strict=True
            )
        ),
        subgroups=_subgroup_rows(subgroups, summaries[1 + len(landmarks) :], client_idx),
        bootstrap=Bootstrap(
            replicates=int(replicates), seed=int(seed), unit=unit, clusters=n_clusters
        ),
    )


def _figures(metrics: Sequence[str], summary: dict[str, Estimate], panel: _Panel) -> dict[str, Any]:
    """A panel's figures as the keyword arguments of its type: a plain metric under its
    name, a level's ("high.flag_rate") gathered into that level's LevelFigures. The metric
    tuples (_OVERALL, _LANDMARK, _SUBGROUP) are thus the one list of what each reports."""
    get = _getter(summary, panel)
    levels: dict[str, dict[str, Estimate]] = {}
    for metric in metrics:
        level, _, figure = metric.partition(".")
        if figure:
            levels.setdefault(level, {})[figure] = get(metric)
    plain = {m: get(m) for m in metrics if "." not in m}
    return {**plain, **{level: LevelFigures(**found) for level, found in levels.items()}}


def _overall(summary: dict[str, Estimate], panel: _Panel) -> OverallFigures:
    return OverallFigures(**_figures(_OVERALL, summary, panel))


def _landmark_row(k: int, panel: _Panel, summary: dict[str, Estimate]) -> LandmarkFigures:
    return LandmarkFigures(
        landmark=k,
        n=int(panel.rows.size),
        prevalence=float(panel.scored.y.mean()),
        **_figures(_LANDMARK, summary, panel),
    )


def _subgroup_rows(
    subgroups: Sequence[tuple[str, str, _Panel]],
    summaries: Sequence[dict[str, Estimate]],
    client_idx: IntArray,
) -> dict[str, tuple[SubgroupFigures, ...]]:
    out: dict[str, list[SubgroupFigures]] = {"gender": [], "age_band": [], "therapist_volume": []}
    for (factor, group, panel), summary in zip(subgroups, summaries, strict=True):
        out.setdefault(factor, []).append(
            SubgroupFigures(
                group=group,
                n=int(panel.rows.size),
                n_clients=int(np.unique(client_idx[panel.rows]).size),
                prevalence=float(panel.scored.y.mean()),
                **_figures(_SUBGROUP, summary, panel),
            )
        )
    return {factor: tuple(rows) for factor, rows in out.items()}
