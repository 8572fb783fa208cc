"""Monitoring a model at one clinic: drift, expected and realised performance, a status each.

A window is a set of the clinic's clients, each counted once at the latest landmark it
reached in the window (the caller builds it: stored predictions in the service, a cohort's
tables with `window_from_tables`). `monitor` compares it with the model's reference
profile (training/monitoring_profile.py) and returns a `MonitoringReport`: one `Figure`
per quantity, each with its size, p-value, status and, on an alert, the next step.

The figures (docs/monitoring.md says what each means and why its thresholds):

- input drift, per feature: PSI and a two-sample KS test against the reference bins, the
  change in missing rate; the instrument mix; the share outside the training range;
- score drift: PSI and KS of the calibrated probability; flag rates per landmark against
  the reference's, and over all landmarks;
- expected performance without labels (CBPE): the AUC, the sensitivity of each level and
  the dropout rate that the model's own probabilities imply, against the reference's.
  Valid only while the model is calibrated at this clinic: each says whether the realised
  calibration confirms that (`MonitoringReport.cbpe_valid`);
- realised performance, once outcomes exist: AUC (against the AUC expected on the same
  clients), calibration intercept and slope, ECE, per landmark, on every labelled episode
  that reached the landmark (`Outcomes` says why not at its latest landmark).

Status rules (`RULES`): a figure is "alert" when its size passes the alert size *and* its
p-value is below P_ALERT, "watch" at the watch size and P_WATCH, else "ok"; "too few" when
the window is below the figure's minimum size. The p-values come from each figure's null
distribution at the window's size (training/monitoring_stats.py), so the false-alarm
rate stays bounded however small the window (tests/training/test_monitoring.py measures it). Drift
figures are computed on the window reweighted to the reference's landmark mix.

Nothing in a report identifies a client: figure names are built from feature, instrument
and level names and landmarks only (bounded, fit for metric labels).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from training.artifact_schema import ModelMetadata
from training.evaluation import (
    EPS,
    MIN_CLIENTS_PER_CLASS,
    auc,
    calibration_slope_intercept,
    too_few_clients,
)
from training.features import (
    FEATURES,
    FloatArray,
    IntArray,
    grid_from_tables,
    landmark_examples,
    latest_landmark_features,
)
from training.input_shift import FLAG_RATE_GAP, OUTSIDE_SHARE, range_arrays
from training.monitoring_profile import (
    INSTRUMENT_MISSING,
    MONITORED,
    bin_shares,
    expected_auc,
    expected_reference,
    flagged,
    instrument_presence,
    landmark_weights,
    outside_range,
)
from training.monitoring_stats import (
    Shift,
    dot,
    ece_check,
    effective_size,
    ks_from_bins,
    pair_auc,
    proportion_shift,
    psi,
    psi_p_value,
    two_sided,
    wald_interval,
)
from training.profile_schema import Bins, Estimate, ReferenceProfile
from training.sample_size import required_sample_size
from training.transport import ECE_BINS, ece
from training.updating import INTERCEPT_SUPPORT
from training.vocabulary import ID_RULE, INSTRUMENT_NAMES, Thresholds, is_id

P_WATCH = 0.01
P_ALERT = 0.001
MIN_WINDOW = 100  # clients (with a value) below which a distribution figure is "too few"
MIN_LANDMARK = 30  # clients at one landmark for its own flag rates and expected AUC
MIN_LABELLED = 50  # labelled episodes for a realised figure, with MIN_CLIENTS_PER_CLASS each
# Features that are never missing by construction: no missing-rate figure for them.
NEVER_MISSING = frozenset(
    {"gender_female", "gender_male", "gender_other", *INSTRUMENT_MISSING.values()}
)
# What a feature is made of, by its name's first word, for the next steps' wording.
_FIELD_NAMES = {**{k.split("_")[0]: v for k, v in INSTRUMENT_NAMES.items()}, "gap": "session dates"}
NO_PROFILE = (
    "no reference profile: this model was trained before profiles were stored, so drift "
    "and the expected figures have nothing to compare with; train (or update) the model "
    "again to store one"
)


class Status(StrEnum):
    """A figure's verdict. "too few": the window is below the figure's minimum size (or
    the figure is undefined on it), so no number is shown; "no reference profile": the
    model's artifact predates profiles, so there is nothing to compare with."""

    OK = "ok"
    WATCH = "watch"
    ALERT = "alert"
    TOO_FEW = "too few"
    NO_REFERENCE = "no reference profile"


_SEVERITY = {Status.ALERT: 3, Status.WATCH: 2, Status.OK: 1, Status.TOO_FEW: 0}


@dataclass(frozen=True)
class Rule:
    """When a figure's size makes it "watch" or "alert": `size` passes `watch` (or
    `alert`) in the rule's direction and the p-value is below P_WATCH (or P_ALERT)."""

    watch: float
    alert: float
    direction: Literal["both", "up", "down"]
    measure: str  # what the size is, for the rule's text

    def status(self, size: float, p_value: float) -> Status:
        signed = {"both": abs(size), "up": size, "down": -size}[self.direction]
        if not (np.isfinite(signed) and np.isfinite(p_value)):
            return Status.OK
        if signed >= self.alert and p_value < P_ALERT:
            return Status.ALERT
        if signed >= self.watch and p_value < P_WATCH:
            return Status.WATCH
        return Status.OK

    def describe(self) -> str:
        how = {"both": "|{m}|", "up": "{m}", "down": "-{m}"}[self.direction].format(m=self.measure)
        return (
            f"watch: {how} >= {self.watch:g} and p < {P_WATCH:g}; "
            f"alert: {how} >= {self.alert:g} and p < {P_ALERT:g}"
        )


# Sizes: PSI's conventional 0.1 / 0.25; shares in points (0.05 = 5 points); the flag-rate
# and outside-range alerts at the sizes `predict` warns at (training/input_shift.py).
RULES: dict[str, Rule] = {
    "psi": Rule(0.10, 0.25, "up", "PSI"),
    "ks": Rule(0.10, 0.20, "up", "KS distance"),
    "missing": Rule(0.05, 0.10, "both", "change in missing share"),
    "instrument": Rule(0.05, 0.10, "both", "change in share of clients with the instrument"),
    "outside_range": Rule(0.02, OUTSIDE_SHARE, "up", "excess share outside the training range"),
    "flag_rate": Rule(0.05, FLAG_RATE_GAP, "both", "change in flag rate"),
    "expected_auc": Rule(0.03, 0.05, "down", "change in expected AUC"),
    "expected_sensitivity": Rule(0.05, 0.10, "down", "change in expected sensitivity"),
    "expected_dropout_rate": Rule(0.05, 0.10, "both", "change in expected dropout rate"),
    "realised_auc": Rule(0.03, 0.05, "down", "realised minus expected AUC"),
    "calibration_intercept": Rule(0.2, 0.4, "both", "intercept"),
    "calibration_slope": Rule(0.2, 0.4, "both", "slope - 1"),
    "ece": Rule(0.03, 0.05, "up", "ECE"),
}


@dataclass(frozen=True)
class Figure:
    """One monitored quantity of a window.

    `reference` is what `value` is compared with (the reference share, the expected AUC on
    the same clients, 0 for the intercept, 1 for the slope); `n` the window size it rests
    on (the effective size where the window is reweighted); `interval` a 95% interval of
    `value` where one is defined; `rule` the thresholds as text; `next_step` what to do,
    on an alert; `note` anything the number needs to be read right.
    """

    name: str
    kind: str
    subject: str
    landmark: int | None  # None: all landmarks
    value: float | None
    reference: float | None
    n: float
    p_value: float | None
    interval: tuple[float, float] | None
    status: Status
    rule: str
    next_step: str = ""
    note: str = ""


@dataclass(frozen=True)
class Outcomes:
    """Labelled episodes, with the model's probability at every landmark each reached.

    Why not the window's rows: an ended episode's latest landmark depends on its outcome (a
    client who left after session 1 is at landmark 1 because they left), so realised
    figures at each client's latest landmark would be biased, nearly all dropouts at the
    early landmarks. At landmark k the model is calibrated for every client who reached k,
    and that is what each row here is: one per episode and landmark it reached.
    `episode` is any integer key per episode (it only counts them; never an id).
    """

    episode: IntArray
    landmark: IntArray
    p: FloatArray
    y: FloatArray  # 1 dropped out, 0 completed

    def __post_init__(self) -> None:
        n = self.episode.shape[0]
        if not (self.landmark.shape == self.p.shape == self.y.shape == (n,)):
            raise ValueError("one landmark, probability and outcome per outcome row")
        if not np.isin(self.y, (0.0, 1.0)).all():
            raise ValueError("outcomes must be 0 or 1")

    @cached_property
    def episodes(self) -> int:
        """Distinct episodes (counted once: a report asks for it per period)."""
        return int(np.unique(self.episode).size)


@dataclass(frozen=True)
class Window:
    """The clients of one window, each once at its latest landmark, and the outcomes known.

    X: feature rows in FEATURES order; landmark: each row's landmark; p: the model's
    calibrated probability for each row; outcomes: the labelled episodes (`Outcomes`),
    or None when none is known yet.
    """

    X: FloatArray
    landmark: IntArray
    p: FloatArray
    outcomes: Outcomes | None = None

    def __post_init__(self) -> None:
        n = self.X.shape[0]
        if self.X.ndim != 2 or self.X.shape[1] != len(FEATURES):
            raise ValueError(f"X must have one column per feature ({len(FEATURES)})")
        if self.landmark.shape != (n,) or self.p.shape != (n,):
            raise ValueError("one landmark and one probability per row of X")
        if n and not (np.isfinite(self.p).all() and (self.p >= 0).all() and (self.p <= 1).all()):
            raise ValueError("p must be probabilities in [0, 1]")

    @property
    def clients(self) -> int:
        return int(self.X.shape[0])

    @property
    def labelled(self) -> int:
        """Labelled episodes."""
        return 0 if self.outcomes is None else self.outcomes.episodes


@dataclass(frozen=True)
class MonitoredModel:
    """What monitoring reads of a model: its thresholds, training range and profile."""

    version: str
    thresholds: Thresholds
    low: FloatArray
    high: FloatArray
    profile: ReferenceProfile | None
    parameters: int

    @classmethod
    def from_metadata(cls, meta: ModelMetadata) -> MonitoredModel:
        """From a loaded model's typed metadata (training.registry.LoadedModel.meta)."""
        low, high = range_arrays(meta.feature_range)
        profile, size = meta.reference_profile, meta.sample_size
        recorded = size.parameters if size else None
        parameters = profile.parameters if profile else recorded or len(FEATURES)
        thresholds = meta.thresholds.cutoffs
        return cls(meta.version, thresholds, low, high, profile, parameters)


@dataclass(frozen=True)
class PeriodSplit:
    """Which consecutive period of the window each client falls in (the caller's rule:
    the service's is service.scoring.monitoring_window.period_bounds).

    bounds: each period's (start, end), oldest first; rows: the period (an index into
    bounds) of each row of Window.X; outcome_rows: that of each Outcomes row (its
    episode's client's period)."""

    bounds: tuple[tuple[datetime, datetime], ...]
    rows: IntArray
    outcome_rows: IntArray


@dataclass(frozen=True)
class Period:
    """The window's clients of one period and the figures over time
    (PERIOD_FIGURES, PERIOD_REALISED): the same functions, names, minimum sizes and
    statuses as the report's own figures, on the period's clients alone."""

    start: datetime
    end: datetime
    clients: int
    labelled: int  # labelled episodes among the period's clients
    figures: tuple[Figure, ...]

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)


@dataclass(frozen=True)
class MonitoringReport:
    """Every figure of one window, and what they add up to."""

    clinic: str
    model_version: str
    clients: int
    labelled: int  # labelled episodes in the window
    labelled_episodes: int  # labelled episodes the clinic has for a retrain
    labels_required: int  # the sample-size minimum for a refit (Riley et al. 2020)
    landmark_clients: dict[int, int]
    cbpe_valid: bool | None  # None: not checked (too few labelled episodes)
    figures: tuple[Figure, ...]
    messages: tuple[str, ...] = field(default_factory=tuple)
    # The window's calibrated probabilities in the reference profile's score bins
    # (ReferenceProfile.score), reweighted to its landmark mix as the score's PSI is: what
    # a plot of the distribution now against the reference needs. None without a profile,
    # or when the score's PSI is not computed (below MIN_WINDOW, a landmark missing).
    score_shares: tuple[float, ...] | None = None
    # The window split into consecutive periods (monitor's `periods`), oldest first: the
    # flag rates, expected and realised figures over time. Empty: not split.
    periods: tuple[Period, ...] = ()

    @property
    def status(self) -> Status:
        """The worst status of any figure (alert > watch > ok > too few)."""
        rated = [f.status for f in self.figures if f.status in _SEVERITY]
        return max(rated, key=_SEVERITY.__getitem__, default=Status.TOO_FEW)

    def figure(self, name: str) -> Figure:
        for item in self.figures:
            if item.name == name:
                return item
        raise KeyError(name)

    def alerts(self) -> list[Figure]:
        return [f for f in self.figures if f.status is Status.ALERT]


def figure_name(kind: str, subject: str, landmark: int | None) -> str:
    """kind.subject.landmark_k (or .all): stable, and free of client data."""
    where = "all" if landmark is None else f"landmark_{landmark}"
    return ".".join(part for part in (kind, subject, where) if part)


def _figure(
    kind: str,
    subject: str,
    landmark: int | None,
    value: float | None,
    reference: float | None,
    n: float,
    shift: Shift,
    interval: tuple[float, float] | None = None,
    note: str = "",
) -> Figure:
    """A rated figure: the status from RULES[kind] on the shift's size and p-value; "too
    few" when the value itself is undefined on this window (a fit that did not converge)."""
    if _number(value) is None:
        return _unrated(kind, subject, landmark, Status.TOO_FEW, n, "undefined on this window")
    rule = RULES[kind]
    return Figure(
        figure_name(kind, subject, landmark),
        kind,
        subject,
        landmark,
        _number(value),
        _number(reference),
        float(n),
        _number(shift.p_value),
        interval,
        rule.status(shift.delta, shift.p_value),
        rule.describe(),
        note=note,
    )


def _unrated(
    kind: str, subject: str, landmark: int | None, status: Status, n: float, note: str
) -> Figure:
    """A figure without a number: too few clients, or nothing to compare with."""
    return Figure(
        figure_name(kind, subject, landmark),
        kind,
        subject,
        landmark,
        None,
        None,
        float(n),
        None,
        None,
        status,
        RULES[kind].describe(),
        note=note,
    )


def _number(x: float | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


def _too_few(need: float, have: float, what: str = "clients") -> str:
    return f"{have:.0f} {what}, {max(need - have, 1):.0f} more needed (minimum {need:g})"


# --- drift ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Weighted:
    """A window reweighted to the reference's landmark mix."""

    w: FloatArray
    n: float  # effective size: what the statistics use
    count: int  # clients with a weight: what the minimum window counts


def _bins_figures(
    subject: str, values: FloatArray, w: FloatArray, ref: Bins, n_ref: float
) -> list[Figure]:
    """PSI and KS of values (weighted) against reference bins."""
    seen = ~np.isnan(values) & (w > 0)
    n, count = effective_size(w[seen]), int(seen.sum())
    if not ref.shares or len(ref.shares) < 2:
        return []
    if count < MIN_WINDOW or n_ref < MIN_WINDOW:
        note = _too_few(MIN_WINDOW, min(count, n_ref), "clients with a value")
        return [_unrated(kind, subject, None, Status.TOO_FEW, n, note) for kind in ("psi", "ks")]
    edges = np.asarray(ref.edges)
    shares = bin_shares(values[seen], edges, w[seen])
    expected = np.asarray(ref.shares)
    value = psi(shares, expected, n, n_ref)
    p_psi = psi_p_value(value, shares.size, n, n_ref)
    distance, p_ks = ks_from_bins(shares, expected, n, n_ref)
    return [
        _figure("psi", subject, None, value, 0.0, n, Shift(value, p_psi)),
        _figure("ks", subject, None, distance, 0.0, n, Shift(distance, p_ks)),
    ]


def _share_figure(
    kind: str,
    subject: str,
    has: npt.NDArray[np.bool_],
    win: _Weighted,
    ref_share: float,
    n_ref: int,
) -> Figure:
    if win.count < MIN_WINDOW:
        note = _too_few(MIN_WINDOW, win.count)
        return _unrated(kind, subject, None, Status.TOO_FEW, win.n, note)
    share = dot(win.w, has) / float(win.w.sum())
    return _figure(
        kind,
        subject,
        None,
        share,
        ref_share,
        win.n,
        proportion_shift(share, win.n, ref_share, n_ref),
    )


def _feature_figures(
    X: FloatArray, win: _Weighted, profile: ReferenceProfile, outside: npt.NDArray[np.bool_]
) -> list[Figure]:
    out: list[Figure] = []
    n_ref = profile.clients
    for name in MONITORED:
        ref = profile.features.get(name)
        if ref is None:
            continue
        column = X[:, FEATURES.index(name)]
        n_seen = n_ref * (1.0 - ref.missing)
        out += _bins_figures(name, column, win.w, ref, n_seen)
        if name not in NEVER_MISSING:
            out.append(_share_figure("missing", name, np.isnan(column), win, ref.missing, n_ref))
    for name, has in instrument_presence(X).items():
        out.append(_share_figure("instrument", name, has, win, profile.instruments[name], n_ref))
    any_outside = np.any(outside, axis=1)
    figure = _share_figure("outside_range", "", any_outside, win, profile.outside_any, n_ref)
    if figure.value is not None:
        figure = _with_note(figure, _outside_note(outside, win, profile))
    out.append(figure)
    return out


def _outside_note(outside: npt.NDArray[np.bool_], win: _Weighted, profile: ReferenceProfile) -> str:
    """The features whose share outside the range rose most (at most three)."""
    share = np.einsum("i,ij->j", win.w, outside) / win.w.sum()
    excess = [
        (float(share[FEATURES.index(name)] - ref.outside), name)
        for name, ref in profile.features.items()
        if name in FEATURES
    ]
    top = [f"{name} +{gap:.1%}" for gap, name in sorted(excess, reverse=True)[:3] if gap > 0.005]
    return f"most outside: {', '.join(top)}" if top else ""


def _with_note(figure: Figure, note: str) -> Figure:
    """The figure with `note` added to its own."""
    return replace(figure, note="; ".join(text for text in (figure.note, note) if text))


def _flag_figures(
    window: Window, win: _Weighted, thresholds: Thresholds, profile: ReferenceProfile
) -> list[Figure]:
    moderate, high = flagged(window.p, thresholds)
    out: list[Figure] = []
    for level, hit in (("moderate", moderate), ("high", high)):
        for ref in profile.landmarks:
            at = window.landmark == ref.landmark
            n = int(at.sum())
            rate = getattr(ref, level)
            if n < MIN_LANDMARK or ref.clients < MIN_LANDMARK:
                note = _too_few(MIN_LANDMARK, min(n, ref.clients), "clients at this landmark")
                out.append(_unrated("flag_rate", level, ref.landmark, Status.TOO_FEW, n, note))
                continue
            share = float(hit[at].mean())
            shift = proportion_shift(share, n, rate, ref.clients)
            out.append(_figure("flag_rate", level, ref.landmark, share, rate, n, shift))
        pooled = sum(getattr(r, level) * r.clients for r in profile.landmarks) / profile.clients
        figure = _share_figure("flag_rate", level, hit, win, pooled, profile.clients)
        out.append(figure)
    return out


def _expected_figures(
    window: Window, win: _Weighted, thresholds: Thresholds, profile: ReferenceProfile
) -> list[Figure]:
    """CBPE over the (reweighted) window against the reference's, and per landmark."""
    out: list[Figure] = []
    if win.count < MIN_WINDOW:
        note = _too_few(MIN_WINDOW, win.count)
        for kind, subject in _EXPECTED_ALL:
            out.append(_unrated(kind, subject, None, Status.TOO_FEW, win.n, note))
    else:
        now = expected_reference(window.p, thresholds, win.w)
        ref, ref_n = profile.expected, profile.clients
        for (kind, subject), (mine, theirs) in zip(
            _EXPECTED_ALL,
            (
                (now.auc, ref.auc),
                (now.sensitivity_moderate, ref.sensitivity_moderate),
                (now.sensitivity_high, ref.sensitivity_high),
                (now.dropout_rate, ref.dropout_rate),
            ),
            strict=True,
        ):
            out.append(_estimate_figure(kind, subject, None, mine, theirs, win.n, ref_n))
    for landmark_ref in profile.landmarks:
        at = window.landmark == landmark_ref.landmark
        n = int(at.sum())
        if n < MIN_LANDMARK or landmark_ref.clients < MIN_LANDMARK:
            note = _too_few(MIN_LANDMARK, min(n, landmark_ref.clients), "clients at this landmark")
            out.append(_unrated("expected_auc", "", landmark_ref.landmark, Status.TOO_FEW, n, note))
            continue
        mine = expected_auc(window.p[at], np.ones(n))
        out.append(
            _estimate_figure(
                "expected_auc",
                "",
                landmark_ref.landmark,
                mine,
                landmark_ref.expected_auc,
                n,
                landmark_ref.clients,
            )
        )
    return out


_EXPECTED_ALL = (
    ("expected_auc", ""),
    ("expected_sensitivity", "moderate"),
    ("expected_sensitivity", "high"),
    ("expected_dropout_rate", ""),
)


def _estimate_figure(
    kind: str,
    subject: str,
    landmark: int | None,
    mine: Estimate,
    theirs: Estimate,
    n: float,
    n_ref: float,
) -> Figure:
    """An expected figure against the reference's. The test uses the spread the figure
    would have at this window's size were the window drawn from the reference (the
    reference's standard error scaled by sqrt(n_ref / n)), not the window's own: with a
    few hundred clients the window's own error is noisy and shrinks exactly when the
    estimate is extreme (few flagged clients), which made the test over-confident."""
    if mine.value is None or theirs.value is None or theirs.se is None:
        return _unrated(kind, subject, landmark, Status.TOO_FEW, n, "undefined on this window")
    null_se = theirs.se * float(np.sqrt(n_ref / n + 1.0))
    delta = mine.value - theirs.value
    interval = wald_interval(mine.value, mine.se or float("nan"))
    shift = Shift(delta, _p_value(delta, null_se))
    return _figure(kind, subject, landmark, mine.value, theirs.value, n, shift, interval=interval)


def _weighted(window: Window, profile: ReferenceProfile) -> tuple[_Weighted, str]:
    """The window reweighted to the reference's landmark mix, and "" ; or no weight at all
    and the note saying which landmark the window lacks (then the figures over all
    landmarks are "too few"; those of one landmark need no weights)."""
    w = landmark_weights(window.landmark, profile.landmarks)
    if w is None:
        absent = [r.landmark for r in profile.landmarks if r.landmark not in window.landmark]
        note = (
            f"no client at landmark {', '.join(map(str, absent))}, which the reference holds: "
            "the window cannot be given the reference's landmark mix"
        )
        return _Weighted(np.zeros(window.clients), 0.0, 0), note
    return _Weighted(w, effective_size(w), int(np.count_nonzero(w))), ""


def _drift_figures(
    window: Window, model: MonitoredModel, profile: ReferenceProfile
) -> list[Figure]:
    weighted, note = _weighted(window, profile)
    figures = _drift_figures_weighted(window, model, profile, weighted)
    if note:
        return [replace(f, note=note) if f.landmark is None else f for f in figures]
    return figures


def _drift_figures_weighted(
    window: Window, model: MonitoredModel, profile: ReferenceProfile, win: _Weighted
) -> list[Figure]:
    outside = outside_range(window.X, model.low, model.high)
    figures = _feature_figures(window.X, win, profile, outside)
    figures += _bins_figures("score", window.p, win.w, profile.score, profile.clients)
    figures += _flag_figures(window, win, model.thresholds, profile)
    figures += _expected_figures(window, win, model.thresholds, profile)
    return figures


def _no_profile_figures(window: Window, model: MonitoredModel) -> list[Figure]:
    """Without a profile: the expected figures as numbers, with nothing to rate them by."""
    out: list[Figure] = []
    if window.clients < MIN_WINDOW:
        return out
    now = expected_reference(window.p, model.thresholds, np.ones(window.clients))
    for (kind, subject), mine in zip(
        _EXPECTED_ALL,
        (now.auc, now.sensitivity_moderate, now.sensitivity_high, now.dropout_rate),
        strict=True,
    ):
        interval = wald_interval(mine.value or float("nan"), mine.se or float("nan"))
        out.append(
            Figure(
                figure_name(kind, subject, None),
                kind,
                subject,
                None,
                mine.value,
                None,
                float(window.clients),
                None,
                interval,
                Status.NO_REFERENCE,
                RULES[kind].describe(),
                note=NO_PROFILE,
            )
        )
    return out


# --- realised performance ------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationErrors:
    """Standard errors of the calibration slope and intercept."""

    slope: float
    intercept: float


def calibration_errors(
    y: FloatArray, p: FloatArray, slope: float, intercept: float
) -> CalibrationErrors:
    """Wald standard errors of the calibration slope and intercept (training.evaluation's
    definitions), from the Fisher information at the estimates.

    The slope's model is logit P(y) = a + b logit(p); its a, given b, is the intercept of
    calibration_slope_intercept on the probabilities expit(b logit(p)), so both numbers
    come from training.evaluation's own fits."""
    x = np.log(np.clip(p, EPS, 1 - EPS)) - np.log1p(-np.clip(p, EPS, 1 - EPS))
    se_intercept = se_slope = float("nan")
    if np.isfinite(intercept):
        mu = 1.0 / (1.0 + np.exp(-(intercept + x)))
        info = float(np.sum(mu * (1.0 - mu)))
        se_intercept = 1.0 / np.sqrt(info) if info > 0 else float("nan")
    if np.isfinite(slope):
        _, a = calibration_slope_intercept(y, 1.0 / (1.0 + np.exp(-np.clip(slope * x, -700, 700))))
        if np.isfinite(a):
            mu = 1.0 / (1.0 + np.exp(-(a + slope * x)))
            v = mu * (1.0 - mu)
            h00, h01, h11 = float(v.sum()), dot(v, x), dot(v * x, x)
            det = h00 * h11 - h01 * h01
            se_slope = float(np.sqrt(h00 / det)) if det > 0 else float("nan")
    return CalibrationErrors(se_slope, se_intercept)


def _p_value(delta: float, se: float) -> float:
    """Two-sided p-value of delta / se; NaN (never rated) when either is undefined."""
    if not (np.isfinite(delta) and np.isfinite(se)) or se <= 0:
        return float("nan")
    return two_sided(delta / se)


_REALISED = ("realised_auc", "calibration_intercept", "calibration_slope", "ece")


def _realised_figures(
    window: Window, seed: int, kinds: tuple[str, ...] = _REALISED
) -> list[Figure]:
    """Per landmark: every labelled episode that reached it, at its prediction there (the
    figures of `kinds` only, in _REALISED's order)."""
    got = window.outcomes
    landmarks = sorted(
        _landmarks(window.landmark) | _landmarks(None if got is None else got.landmark)
    )
    out: list[Figure] = []
    for landmark in landmarks:
        if got is None:
            out += _realised_panel(np.zeros(0), np.zeros(0), landmark, seed, kinds)
            continue
        at = got.landmark == landmark
        out += _realised_panel(got.y[at], got.p[at], landmark, seed, kinds)
    return out


def _landmarks(landmark: IntArray | None) -> set[int]:
    """The landmarks present (small non-negative integers: counted, not sorted)."""
    if landmark is None or not landmark.size:
        return set()
    return set(np.flatnonzero(np.bincount(landmark)).tolist())


def _realised_panel(
    y: FloatArray, p: FloatArray, landmark: int, seed: int, kinds: tuple[str, ...]
) -> list[Figure]:
    n = y.size
    if n < MIN_LABELLED or too_few_clients(y, None):
        dropouts = int(y.sum())
        note = (
            f"{n} labelled episodes ({dropouts} dropouts): need {MIN_LABELLED} or more with "
            f"{MIN_CLIENTS_PER_CLASS} or more of each outcome"
        )
        return [_unrated(kind, "", landmark, Status.TOO_FEW, n, note) for kind in kinds]
    # sorted once: the figures below each sort by p (stably, so the same order), which
    # costs little on sorted values; tens of thousands of episodes per landmark
    order = np.argsort(p, kind="stable")
    y, p = y[order], p[order]
    out: list[Figure] = []
    if "realised_auc" in kinds:
        realised = auc(y, p)
        delong = pair_auc(p, y, 1.0 - y)
        expected = pair_auc(p, p, 1.0 - p)
        gap = realised - expected.value
        out.append(
            _figure(
                "realised_auc",
                "",
                landmark,
                realised,
                expected.value,
                n,
                Shift(gap, _p_value(gap, expected.se_labels)),
                interval=wald_interval(realised, delong.se),
                note="compared with the AUC expected on the same clients under calibration (CBPE)",
            )
        )
    if "calibration_intercept" in kinds or "calibration_slope" in kinds:
        slope, intercept = calibration_slope_intercept(y, p)
        errors = calibration_errors(y, p, slope, intercept)
        calibration = (
            ("calibration_intercept", intercept, 0.0, errors.intercept),
            ("calibration_slope", slope, 1.0, errors.slope),
        )
        out += [
            _figure(
                kind,
                "",
                landmark,
                value,
                ideal,
                n,
                Shift(value - ideal, _p_value(value - ideal, se)),
                interval=wald_interval(value, se),
            )
            for kind, value, ideal, se in calibration
            if kind in kinds
        ]
    if "ece" in kinds:
        observed_ece = ece(y, p)
        check = ece_check(y, p, observed_ece, ECE_BINS, seed)
        out.append(
            _figure(
                "ece",
                "",
                landmark,
                observed_ece,
                check.expected,
                n,
                Shift(observed_ece, check.p_value),
                interval=check.interval,
                note="reference: the mean ECE of a calibrated model on these probabilities",
            )
        )
    return out


# --- the report ----------------------------------------------------------------------------


def _cbpe_valid(figures: list[Figure]) -> bool | None:
    """Whether the realised calibration supports CBPE's assumption: False when the
    intercept or slope alerts at a landmark, True when checked at one at least, None when
    there were too few labelled episodes to check it anywhere."""
    checks = [f for f in figures if f.kind in ("calibration_intercept", "calibration_slope")]
    if any(f.status is Status.ALERT for f in checks):
        return False
    if all(f.status is Status.TOO_FEW for f in checks):
        return None
    return True


def _cbpe_note(valid: bool | None, labelled: int) -> str:
    if valid is None:
        return (
            "assumes the model is calibrated at this clinic; not checked yet "
            f"({labelled} labelled episodes)"
        )
    if valid:
        return f"valid while the model is calibrated here: confirmed on {labelled} labelled"
    return "not valid here: the realised calibration is off (calibration_* figures)"


def labels_required(parameters: int, prevalence: float) -> int:
    """Labelled episodes a full refit needs: the minimum of training/sample_size.py (the
    retrain's closed test allows a refit from there; lesser updates need far fewer)."""
    clipped = min(max(prevalence, 0.01), 0.99)
    return required_sample_size(parameters, clipped).minimum


def _retrain(clinic: str, dropouts: int, completers: int) -> str:
    """The retrain itself once the clinic's labelled episodes support the least update it
    can make (an intercept: INTERCEPT_SUPPORT of each outcome, training/updating.py; its
    closed test decides how far to go, a refit only from the sample-size minimum), else
    what is missing."""
    command = f"dropout-risk retrain --clinic {clinic}"
    missing = [
        (INTERCEPT_SUPPORT - n, what)
        for n, what in ((dropouts, "dropout"), (completers, "completion"))
        if n < INTERCEPT_SUPPORT
    ]
    short = [
        f"{k} more labelled episode{'' if k == 1 else 's'} that ended in {what}"
        for k, what in missing
    ]
    if not short:
        return command
    return (
        f"{' and '.join(short)} needed before `{command}` (have {dropouts} dropouts and "
        f"{completers} completers; the least local update needs {INTERCEPT_SUPPORT} of each: "
        "docs/updating.md)"
    )


def _display(feature: str) -> str:
    return _FIELD_NAMES.get(feature.split("_")[0], feature)


def _next_step(figure: Figure, retrain: str) -> str:
    kind, subject = figure.kind, figure.subject
    if kind in ("instrument", "missing"):
        what = INSTRUMENT_NAMES[subject] if kind == "instrument" else _display(subject)
        return f"check that {what} is still recorded and exported here; if meant: {retrain}"
    if kind == "outside_range":
        return f"check for unit or entry errors ({figure.note}); if the values are right: {retrain}"
    if kind in ("psi", "ks") and subject != "score":
        return f"this clinic's clients differ on {subject}: {retrain}"
    if kind == "realised_auc":
        return f"the model ranks clients worse here than its probabilities imply: {retrain}"
    if kind in ("calibration_intercept", "calibration_slope", "ece"):
        return f"the model is miscalibrated here: {retrain}"
    return f"the risk distribution moved: {retrain}"


# --- over time ------------------------------------------------------------------------------

# The figures of each period: the flag rates against the design rates and CBPE's expected
# AUC over all landmarks (reweighted to the reference's mix, as in the report), and per
# landmark the realised AUC (with the AUC expected on the same rows as its reference) and
# calibration intercept and slope (one fit gives both). No ECE: its null distribution is
# drawn, and a period adds nothing to what the window's ECE says.
PERIOD_FIGURES = ("flag_rate.moderate.all", "flag_rate.high.all", "expected_auc.all")
PERIOD_REALISED = ("realised_auc", "calibration_intercept", "calibration_slope")


def _sub_window(window: Window, rows: npt.NDArray[np.bool_], got: npt.NDArray[np.bool_]) -> Window:
    outcomes = window.outcomes
    part = None
    if outcomes is not None and got.any():
        part = Outcomes(
            outcomes.episode[got], outcomes.landmark[got], outcomes.p[got], outcomes.y[got]
        )
    return Window(window.X[rows], window.landmark[rows], window.p[rows], part)


def period_figures(model: MonitoredModel, window: Window, seed: int = 0) -> tuple[Figure, ...]:
    """A period's figures (PERIOD_FIGURES, then PERIOD_REALISED per landmark), computed by
    the report's own functions on the period's window: so each is exactly the figure of
    that name that `monitor` gives for a window of these clients."""
    out: list[Figure] = []
    profile = model.profile
    if profile is None:
        out += [f for f in _no_profile_figures(window, model) if f.name in PERIOD_FIGURES]
    else:
        win, note = _weighted(window, profile)
        rated = _flag_figures(window, win, model.thresholds, profile)
        rated += _expected_figures(window, win, model.thresholds, profile)
        chosen = [f for f in rated if f.name in PERIOD_FIGURES]
        out += [replace(f, note=note) for f in chosen] if note else chosen
    return (*out, *_realised_figures(window, seed, PERIOD_REALISED))


def _periods(
    model: MonitoredModel, window: Window, split: PeriodSplit, seed: int, cbpe_note: str
) -> tuple[Period, ...]:
    """The window's periods; the expected figures carry the window's CBPE note (whether
    the model is calibrated here is checked on the whole window, not on a period)."""
    got = window.outcomes
    if split.rows.shape != (window.clients,) or (
        got is not None and split.outcome_rows.shape != got.episode.shape
    ):
        raise ValueError("one period per window row and per outcome row")
    out = []
    for k, (start, end) in enumerate(split.bounds):
        part = _sub_window(window, split.rows == k, split.outcome_rows == k)
        figures = tuple(
            _with_note(f, cbpe_note) if f.kind.startswith("expected") and f.value is not None else f
            for f in period_figures(model, part, seed)
        )
        out.append(Period(start, end, part.clients, part.labelled, figures))
    return tuple(out)


def monitor(
    model: MonitoredModel,
    window: Window,
    clinic: str,
    labelled_outcomes: tuple[int, int] | None = None,
    seed: int = 0,
    periods: PeriodSplit | None = None,
) -> MonitoringReport:
    """Every figure of a window, rated, with the next step on each alert.

    Args:
        model: the model's thresholds, training range and reference profile.
        window: the clinic's clients, each once at its latest landmark.
        clinic: the clinic's id (it appears in the next steps).
        labelled_outcomes: the clinic's labelled episodes available to a retrain, as
            (dropouts, completers) (default: those in the window).
        seed: seeds the draws of ECE's null distribution (same inputs, same report).
        periods: the window's clients by consecutive period, for the figures over time
            (MonitoringReport.periods; default: none).
    """
    if not is_id(clinic):
        raise ValueError(f"clinic must be an id: {ID_RULE}")
    labelled = window.labelled
    messages: list[str] = []
    figures: list[Figure] = []
    if model.profile is None:
        messages.append(NO_PROFILE)
        figures += _no_profile_figures(window, model)
    else:
        figures += _drift_figures(window, model, model.profile)
    realised = _realised_figures(window, seed)
    valid = _cbpe_valid(realised)
    note = _cbpe_note(valid, labelled)
    figures = [
        _with_note(f, note) if f.kind.startswith("expected") and f.value is not None else f
        for f in figures
    ]
    figures += realised
    # The outcome rate the sample-size rule needs: observed once both outcomes are common
    # enough (at the first landmark, which every episode reached), else what the model
    # expects here.
    got = window.outcomes
    first = got.landmark == got.landmark.min() if got is not None and got.y.size else None
    y = got.y[first] if got is not None and first is not None else np.zeros(0)
    if y.size and not too_few_clients(y, None):
        prevalence = float(y.mean())
    else:
        prevalence = float(window.p.mean()) if window.clients else 0.5
    need = labels_required(model.parameters, prevalence)
    window_outcomes = (int(y.sum()), int(y.size - y.sum()))
    dropouts, completers = labelled_outcomes or window_outcomes
    have = dropouts + completers
    retrain = _retrain(clinic, dropouts, completers)
    figures = [
        replace(f, next_step=_next_step(f, retrain)) if f.status is Status.ALERT else f
        for f in figures
    ]
    marks, counts = np.unique(window.landmark, return_counts=True)
    return MonitoringReport(
        clinic=clinic,
        model_version=model.version,
        clients=window.clients,
        labelled=labelled,
        labelled_episodes=have,
        labels_required=need,
        landmark_clients={int(k): int(c) for k, c in zip(marks, counts, strict=True)},
        cbpe_valid=valid,
        figures=tuple(figures),
        messages=tuple(messages),
        score_shares=_score_shares(window, model.profile),
        periods=() if periods is None else _periods(model, window, periods, seed, note),
    )


def _score_shares(window: Window, profile: ReferenceProfile | None) -> tuple[float, ...] | None:
    """MonitoringReport.score_shares: the shares the score's PSI compares (_bins_figures),
    or None where it is not computed."""
    if profile is None or len(profile.score.shares) < 2:
        return None
    w = landmark_weights(window.landmark, profile.landmarks)
    if w is None or np.count_nonzero(w) < MIN_WINDOW or profile.clients < MIN_WINDOW:
        return None
    shares = bin_shares(window.p, np.asarray(profile.score.edges), w)
    return tuple(float(x) for x in shares)


def window_from_tables(
    sessions: pd.DataFrame,
    clients: pd.DataFrame | None,
    probability: Callable[[FloatArray], FloatArray],
    landmarks: tuple[int, ...],
) -> Window:
    """A window of a cohort's clients (the contract's tables), each at its latest landmark,
    through the one feature builder; outcomes from clients["dropout"] where known, at
    every landmark each labelled client reached."""
    ids, grid = grid_from_tables(sessions, clients, max(landmarks))
    X, landmark = latest_landmark_features(grid, landmarks)
    keep = landmark > 0
    rows = X[keep]
    outcomes = None
    if clients is not None and "dropout" in clients.columns:
        label = clients.set_index("client_id")["dropout"].reindex(ids)
        y = label.to_numpy(dtype=np.float64, na_value=np.nan)
        examples = landmark_examples(grid, landmarks)
        known = np.isin(y[examples.row_client], (0.0, 1.0))
        outcomes = Outcomes(
            episode=examples.row_client[known].astype(np.int64),
            landmark=examples.landmark[known],
            p=probability(examples.X[known]),
            y=y[examples.row_client[known]],
        )
    return Window(rows, landmark[keep], probability(rows), outcomes)
