"""The reference profile: the development data summarised for monitoring, at train time.

`build_reference_profile` is what `dropout-risk train` stores in metadata.json (as
`reference_profile`, typed by training/profile_schema.py); tests and later commands
(update) compute one from any development cohort through the same function.

The unit is a client at the latest landmark it reached, as in a monitoring window
(training/monitoring.py), and never a landmark row: a client counts once. Clients at
landmark 1 differ from those at landmark 3 on almost every feature (a change needs two
sessions, missing counts grow with the landmark), so a window that catches more clients
early (new clients, or a service whose clients leave sooner) would look drifted on all of
them. The window is therefore reweighted to the reference's landmark mix before it is
compared (`landmark_weights`), and the profile stores the landmark mix with the pooled
bins; storing every bin per landmark would triple the profile for the same comparison.

Bins are deciles of the non-missing development values (`BIN_QUANTILES`), taken as data
values (inverted CDF) and deduplicated, so a discrete feature (a missing count, a
0/1 indicator) gets one bin per value; an edge at the maximum is dropped, so no bin is
empty by construction. Edges are rounded to 6 significant digits and the shares computed
with the rounded edges, so the stored shares are exactly those of the stored bins.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from training.features import FEATURES, FloatArray, IntArray
from training.monitoring_stats import pair_auc, ratio
from training.profile_schema import (
    Bins,
    Estimate,
    ExpectedReference,
    FeatureReference,
    LandmarkReference,
    ReferenceProfile,
)
from training.vocabulary import Thresholds

BIN_QUANTILES = tuple(q / 10 for q in range(1, 10))
EDGE_DIGITS = 6
SHARE_DIGITS = 4
LANDMARK = FEATURES.index("landmark")
# Features compared between window and reference: all but the landmark, which the window
# is reweighted on (its mix says when in treatment the window caught clients, not who).
MONITORED: tuple[str, ...] = tuple(name for name in FEATURES if name != "landmark")
# Instrument (metadata["instruments"] vocabulary) -> the missing count telling whether a
# client had at least one value of it: fewer sessions lack it than the landmark has.
INSTRUMENT_MISSING: dict[str, str] = {
    "wai_sr": "wai_missing",
    "srs": "srs_missing",
    "ors": "ors_missing",
    "phq9": "phq9_missing",
}


def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}")


def bin_edges(values: FloatArray) -> FloatArray:
    """Decile edges of the observed values (module docstring)."""
    if not values.size:
        return np.zeros(0)
    q = np.quantile(values, BIN_QUANTILES, method="inverted_cdf")
    edges = np.unique([_round(float(e), EDGE_DIGITS) for e in q])
    kept: FloatArray = edges[edges < values.max()]
    return kept


def bin_shares(values: FloatArray, edges: FloatArray, w: FloatArray | None = None) -> FloatArray:
    """Share of the (weighted) values in each bin of `edges` (right-closed)."""
    which = np.searchsorted(edges, values, side="left")
    counts = np.bincount(which, weights=w, minlength=edges.size + 1).astype(np.float64)
    total = counts.sum()
    shares: FloatArray = counts / total if total > 0 else counts
    return shares


def outside_range(rows: FloatArray, low: FloatArray, high: FloatArray) -> npt.NDArray[np.bool_]:
    """Per client and feature: outside the model's training range (NaN is not outside)."""
    out: npt.NDArray[np.bool_] = (rows < low) | (rows > high)
    return out


def instrument_presence(X: FloatArray) -> dict[str, npt.NDArray[np.bool_]]:
    """Per instrument, whether each client had at least one value of it."""
    k = X[:, LANDMARK]
    return {name: X[:, FEATURES.index(missing)] < k for name, missing in INSTRUMENT_MISSING.items()}


def landmark_weights(
    landmark: IntArray, reference: Sequence[LandmarkReference]
) -> FloatArray | None:
    """Weights that give a window the reference's landmark mix (reference share over
    window share per landmark), or None when the window has no client at a landmark the
    reference holds: such a window cannot be made comparable by weighting."""
    total = sum(ref.clients for ref in reference)
    w = np.zeros(landmark.size)
    for ref in reference:
        at = landmark == ref.landmark
        count = int(np.count_nonzero(at))
        if ref.clients and not count:
            return None
        if count:
            w[at] = (ref.clients / total) / (count / landmark.size)
    return w


def flagged(p: FloatArray, thresholds: Thresholds) -> tuple[npt.NDArray[np.bool_], ...]:
    """(moderate or high, high) per client, as training.publish assigns risk levels."""
    return p >= thresholds.moderate, p >= thresholds.high


def expected_auc(p: FloatArray, w: FloatArray) -> Estimate:
    """The AUC the probabilities imply (CBPE), with its sampling standard error."""
    got = pair_auc(p, w * p, w * (1.0 - p))
    return _estimate(got.value, got.se)


def expected_reference(p: FloatArray, thresholds: Thresholds, w: FloatArray) -> ExpectedReference:
    """CBPE's figures over (weighted) clients: AUC, sensitivity of each level, dropout rate."""
    moderate, high = flagged(p, thresholds)
    sens_moderate = ratio(p * moderate, p, w)
    sens_high = ratio(p * high, p, w)
    rate = ratio(p, np.ones_like(p), w)
    return ExpectedReference(
        auc=expected_auc(p, w),
        sensitivity_moderate=_estimate(sens_moderate.value, sens_moderate.se),
        sensitivity_high=_estimate(sens_high.value, sens_high.se),
        dropout_rate=_estimate(rate.value, rate.se),
    )


def _estimate(value: float, se: float) -> Estimate:
    def finite(x: float) -> float | None:
        return _round(x, SHARE_DIGITS) if np.isfinite(x) else None

    return Estimate(value=finite(value), se=finite(se))


def _shares(shares: FloatArray) -> list[float]:
    return [_round(float(s), SHARE_DIGITS) for s in shares]


def build_reference_profile(
    X: FloatArray,
    landmark: IntArray,
    p: FloatArray,
    thresholds: Thresholds,
    low: FloatArray,
    high: FloatArray,
    parameters: int,
) -> ReferenceProfile:
    """The profile of development clients: one row each at its latest landmark.

    Args:
        X: feature rows (FEATURES order) of the development clients at their latest
            landmark (training.features.latest_landmark_features).
        landmark: each row's landmark.
        p: the model's calibrated probability for each row.
        thresholds: the model's moderate and high cut-offs.
        low, high: the model's training range per feature (training.model.feature_clip).
        parameters: predictor parameters of the model (training.sample_size), which the
            sample-size rule for a retrain needs.
    """
    n = X.shape[0]
    if not (landmark.shape == p.shape == (n,)) or n == 0:
        raise ValueError("one landmark and one probability per row, and at least one row")
    ones = np.ones(n)
    outside = outside_range(X, low, high)
    features: dict[str, FeatureReference] = {}
    for name in MONITORED:
        j = FEATURES.index(name)
        column = X[:, j]
        seen = column[~np.isnan(column)]
        edges = bin_edges(seen)
        features[name] = FeatureReference(
            edges=[float(e) for e in edges],
            shares=_shares(bin_shares(seen, edges)) if seen.size else [],
            missing=_round(1.0 - seen.size / n, SHARE_DIGITS),
            outside=_round(float(outside[:, j].mean()), SHARE_DIGITS),
        )
    moderate, flag_high = flagged(p, thresholds)
    landmarks = []
    for k in sorted({int(v) for v in landmark}):
        at = landmark == k
        landmarks.append(
            LandmarkReference(
                landmark=k,
                clients=int(at.sum()),
                moderate=_round(float(moderate[at].mean()), SHARE_DIGITS),
                high=_round(float(flag_high[at].mean()), SHARE_DIGITS),
                expected_auc=expected_auc(p[at], ones[at]),
            )
        )
    score_edges = bin_edges(p)
    return ReferenceProfile(
        clients=n,
        parameters=parameters,
        landmarks=landmarks,
        features=features,
        instruments={
            name: _round(float(has.mean()), SHARE_DIGITS)
            for name, has in instrument_presence(X).items()
        },
        outside_any=_round(float(outside.any(axis=1).mean()), SHARE_DIGITS),
        score=Bins(
            edges=[float(e) for e in score_edges], shares=_shares(bin_shares(p, score_edges))
        ),
        expected=expected_reference(p, thresholds, ones),
    )
