"""What the monitoring page (/ui/monitoring) shows, from a clinic's MonitoringReport: plain
data for its template.

Every plot is inline SVG laid out here in fixed pixel sizes, as the client page's charts
are (service.ui.views): no script, nothing fetched. Each plot has a title, a description
of its values for screen readers and a table of the same numbers; series differ by shape
or fill, not by colour alone. The numbers are the report's own (training.monitoring): the
page draws, it computes no figure.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from training.artifact_schema import ComparisonRecord
from training.monitoring import RULES, Figure, MonitoringReport, Status
from training.profile_schema import ReferenceProfile

PLOT_W, PLOT_H = 420, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 16, 44
TOP_FEATURES = 8  # the features that moved most: this many PSI bars


def _fmt(x: float) -> str:
    return f"{x:.1f}"


def figure_value(value: float | None, kind: str = "") -> str:
    """A figure's number for reading: shares and rates as percentages, others to 3 places."""
    if value is None or not math.isfinite(value):
        return "–"
    if kind in ("missing", "instrument", "outside_range", "flag_rate") or kind.startswith(
        ("expected_sensitivity", "expected_dropout")
    ):
        return f"{value * 100:.1f}%"
    return f"{value:.3f}"


def _interval(f: Figure) -> str:
    if f.interval is None or not all(math.isfinite(x) for x in f.interval):
        return "–"
    return f"{figure_value(f.interval[0], f.kind)} to {figure_value(f.interval[1], f.kind)}"


@dataclass(frozen=True)
class Text:
    x: str
    y: str
    text: str
    anchor: str = "middle"
    css: str = "tick"
    rotated: bool = False  # read bottom to top (the y axis's label)


@dataclass(frozen=True)
class Bar:
    x: str
    y: str
    width: str
    height: str
    css: str
    text: str  # the bar's value, as its <title>


@dataclass(frozen=True)
class Point:
    x: str
    y: str
    low: str | None  # the interval's ends (y), when there is one
    high: str | None
    css: str
    shape: str  # circle or square: readable without colour
    text: str


@dataclass(frozen=True)
class Rule:
    x1: str
    y1: str
    x2: str
    y2: str
    css: str
    label: Text


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True)
class Margins:
    """Room around a plot's drawing area, in pixels (for the axes' ticks and labels)."""

    left: int = _LEFT
    right: int = _RIGHT
    top: int = _TOP
    bottom: int = _BOTTOM


@dataclass
class Plot:
    """One plot: its drawing area is the SVG less its margins."""

    id: str
    title: str
    description: str
    table: Table
    width: int = PLOT_W
    height: int = PLOT_H
    margins: Margins = Margins()
    labels: list[Text] = field(default_factory=list)  # ticks and axis labels
    grid: list[str] = field(default_factory=list)  # y of each horizontal grid line
    bars: list[Bar] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (name, css)
    empty: str | None = None  # why there is nothing to draw

    @property
    def left(self) -> int:
        return self.margins.left

    @property
    def right(self) -> int:
        return self.width - self.margins.right

    @property
    def top(self) -> int:
        return self.margins.top

    @property
    def bottom(self) -> int:
        return self.height - self.margins.bottom


def _y_axis(plot: Plot, low: float, high: float, ticks: Sequence[float], label: str) -> None:
    for t in ticks:
        y = _fmt(_scale(t, low, high, plot.bottom, plot.top))
        plot.grid.append(y)
        plot.labels.append(Text(_fmt(plot.left - 6), y, f"{t:g}", "end"))
    middle = (plot.top + plot.bottom) // 2
    plot.labels.append(Text("12", str(middle), label, css="axis-label", rotated=True))


def _scale(v: float, low: float, high: float, a: float, b: float) -> float:
    """v in [low, high] to [a, b], clamped."""
    v = min(max(v, low), high)
    return a + (b - a) * (v - low) / (high - low)


def _reference_line(
    plot: Plot, value: float, low: float, high: float, label: str, left: bool = False
) -> None:
    """A dashed horizontal line across the drawing area at `value` (a design rate, an
    ideal), labelled at its right end (or its left)."""
    at = _scale(value, low, high, plot.bottom, plot.top)
    x, anchor = (plot.left + 4, "start") if left else (plot.right - 2, "end")
    tag = Text(str(x), _fmt(at - 4), label, anchor, "rule-label")
    line = _fmt(at)
    plot.rules.append(Rule(str(plot.left), line, str(plot.right), line, "rule-reference", tag))


# --- score distribution now against the reference ------------------------------------------


def _bin_label(edges: Sequence[float], i: int) -> str:
    lo = 0.0 if i == 0 else edges[i - 1]
    hi = 1.0 if i == len(edges) else edges[i]
    return f"{lo * 100:.0f}–{hi * 100:.0f}%"


def score_plot(report: MonitoringReport, profile: ReferenceProfile | None) -> Plot:
    """The window's score distribution (MonitoringReport.score_shares) beside the
    reference's, in the reference's bins."""
    title = "Risk distribution: this window against the reference"
    headers = ("Risk bin", "Reference share", "Window share")
    if profile is None or report.score_shares is None:
        why = (
            "No reference profile in this model."
            if profile is None
            else "Too few clients "
            "in the window (or a landmark without clients) to compare the distribution."
        )
        return Plot("plot-score", title, why, Table(headers, []), empty=why)
    edges, ref, now = profile.score.edges, profile.score.shares, report.score_shares
    plot = Plot("plot-score", title, "", Table(headers, []))
    top = max(max(ref), max(now), 0.05)
    high = math.ceil(top * 10) / 10
    _y_axis(plot, 0.0, high, [high * k / 4 for k in range(5)], "Share of clients")
    step = (plot.right - plot.left) / len(ref)
    width = step * 0.38
    words = []
    for i, (r, n) in enumerate(zip(ref, now, strict=True)):
        label = _bin_label(edges, i)
        x0 = plot.left + i * step + step * 0.1
        for j, (share, css, who) in enumerate(
            ((r, "bar-reference", "reference"), (n, "bar-window", "window"))
        ):
            y = _scale(share, 0.0, high, plot.bottom, plot.top)
            plot.bars.append(
                Bar(
                    _fmt(x0 + j * width),
                    _fmt(y),
                    _fmt(width),
                    _fmt(plot.bottom - y),
                    css,
                    f"{label}, {who}: {share:.1%}",
                )
            )
        if i % max(1, -(-len(ref) // 5)) == 0:
            plot.labels.append(Text(_fmt(x0 + width), str(plot.bottom + 14), label))
        plot.table.rows.append((label, f"{r:.1%}", f"{n:.1%}"))
        words.append(f"{label}: reference {r:.1%}, window {n:.1%}")
    plot.labels.append(
        Text(str((plot.left + plot.right) // 2), str(plot.height - 6), "Risk", css="axis-label")
    )
    plot.legend = [("Reference (development data)", "bar-reference"), ("This window", "bar-window")]
    psi = _find(report, "psi.score.all")
    said = f" Score PSI {figure_value(psi.value)} ({psi.status})." if psi else ""
    plot.description = "Share of clients per risk bin. " + "; ".join(words) + "." + said
    return plot


def _find(report: MonitoringReport, name: str) -> Figure | None:
    return next((f for f in report.figures if f.name == name), None)


# --- the features that moved most -----------------------------------------------------------


def psi_plot(report: MonitoringReport) -> Plot:
    """PSI per feature, largest first (at most TOP_FEATURES), with the watch and alert
    sizes of the PSI rule (training.monitoring.RULES)."""
    title = "Features that moved most (PSI against the reference)"
    headers = ("Feature", "PSI", "Clients", "Status")
    moved = sorted(
        (
            f
            for f in report.figures
            if f.kind == "psi" and f.subject != "score" and f.value is not None
        ),
        key=lambda f: -(f.value or 0.0),
    )[:TOP_FEATURES]
    if not moved:
        why = "No feature's PSI on this window (too few clients, or no reference profile)."
        return Plot("plot-psi", title, why, Table(headers, []), empty=why)
    rule = RULES["psi"]
    rows = len(moved)
    height = _TOP + 24 * rows + _BOTTOM
    plot = Plot("plot-psi", title, "", Table(headers, []), height=height, margins=Margins(left=150))
    high = max(rule.alert * 1.2, max(f.value or 0.0 for f in moved) * 1.1)
    for t in (0.0, high / 2, high):
        x = _fmt(_scale(t, 0.0, high, plot.left, plot.right))
        plot.labels.append(Text(x, str(plot.bottom + 14), f"{t:.2f}"))
    for size, css, name in (
        (rule.watch, "rule-watch", "watch"),
        (rule.alert, "rule-alert", "alert"),
    ):
        x = _fmt(_scale(size, 0.0, high, plot.left, plot.right))
        label = Text(x, str(plot.top - 4), f"{name} {size:g}", css=f"rule-label {css}")
        plot.rules.append(Rule(x, str(plot.top), x, str(plot.bottom), css, label))
    words = []
    for i, f in enumerate(moved):
        value = f.value or 0.0
        y = plot.top + 24 * i + 4
        plot.bars.append(
            Bar(
                str(plot.left),
                str(y),
                _fmt(_scale(value, 0.0, high, plot.left, plot.right) - plot.left),
                "16",
                f"bar-psi status-{str(f.status).replace(' ', '-')}",
                f"{f.subject}: PSI {value:.3f}, {f.status}",
            )
        )
        plot.labels.append(Text(str(plot.left - 6), str(y + 12), f.subject, "end"))
        plot.table.rows.append((f.subject, f"{value:.3f}", f"{f.n:.0f}", str(f.status)))
        words.append(f"{f.subject} {value:.3f} ({f.status})")
    plot.labels.append(
        Text(str((plot.left + plot.right) // 2), str(plot.height - 6), "PSI", css="axis-label")
    )
    plot.legend = [
        (f"Watch from {rule.watch:g}", "rule-watch"),
        (f"Alert from {rule.alert:g}", "rule-alert"),
    ]
    plot.description = "PSI by feature, largest first: " + ", ".join(words) + "."
    return plot


# --- expected and realised performance, calibration -----------------------------------------


@dataclass(frozen=True)
class LandmarkPlot:
    """A plot of figures per landmark: which figures, on which scale."""

    id: str
    title: str
    series: tuple[tuple[str, str, str, str], ...]  # (name, figure kind, css, shape)
    domain: tuple[float, float]
    ticks: tuple[float, ...]
    y_label: str
    references: tuple[tuple[float, str], ...] = ()  # (value, label): dashed lines


def _landmark_plot(spec: LandmarkPlot, report: MonitoringReport) -> Plot:
    """Figures per landmark as points with their 95% intervals, one series per kind."""
    series = spec.series
    kinds = {kind for _, kind, _, _ in series}
    landmarks = sorted(
        {f.landmark for f in report.figures if f.landmark is not None and f.kind in kinds}
    )
    headers = ("Landmark", *(name for name, *_ in series))
    plot = Plot(spec.id, spec.title, "", Table(headers, []))
    low, high = spec.domain
    _y_axis(plot, low, high, spec.ticks, spec.y_label)
    step = (plot.right - plot.left) / max(len(landmarks), 1)
    words = []
    drawn = 0
    for i, landmark in enumerate(landmarks):
        centre = plot.left + step * (i + 0.5)
        plot.labels.append(Text(_fmt(centre), str(plot.bottom + 14), f"session {landmark}"))
        cells = [str(landmark)]
        for j, (name, kind, css, shape) in enumerate(series):
            f = _find(report, f"{kind}.landmark_{landmark}")
            if f is None or f.value is None or not math.isfinite(f.value):
                why = "too few" if f is None else str(f.status)
                cells.append(f"– ({why})")
                words.append(f"{name} at session {landmark}: {why}")
                continue
            x = centre + (j - (len(series) - 1) / 2) * 14
            y = _scale(f.value, low, high, plot.bottom, plot.top)
            ends = None
            if f.interval is not None and all(math.isfinite(v) for v in f.interval):
                ends = (
                    _fmt(_scale(f.interval[0], low, high, plot.bottom, plot.top)),
                    _fmt(_scale(f.interval[1], low, high, plot.bottom, plot.top)),
                )
            text = f"{name} at session {landmark}: {f.value:.3f} (95% {_interval(f)}), {f.status}"
            plot.points.append(
                Point(
                    _fmt(x),
                    _fmt(y),
                    ends[0] if ends else None,
                    ends[1] if ends else None,
                    css,
                    shape,
                    text,
                )
            )
            drawn += 1
            cells.append(f"{f.value:.3f} ({_interval(f)}), {f.status}")
            words.append(text)
        plot.table.rows.append(tuple(cells))
    for ideal, label in spec.references:
        _reference_line(plot, ideal, low, high, label)
    plot.labels.append(
        Text(str((plot.left + plot.right) // 2), str(plot.height - 6), "Landmark", css="axis-label")
    )
    plot.legend = [(name, f"{css} shape-{shape}") for name, _, css, shape in series]
    plot.description = "; ".join(words) + "." if words else "No figure per landmark."
    if not drawn:
        plot.empty = "Too few clients or labelled episodes per landmark yet."
    return plot


LANDMARK_PLOTS = (
    # expected AUC without labels (CBPE) against the realised AUC on stored outcomes
    LandmarkPlot(
        "plot-auc",
        "Expected (CBPE) and realised AUC by landmark",
        (
            ("Expected AUC (CBPE)", "expected_auc", "series-expected", "circle"),
            ("Realised AUC", "realised_auc", "series-realised", "square"),
        ),
        (0.5, 1.0),
        (0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
        "AUC",
    ),
    # realised calibration: slope (ideal 1) and intercept (ideal 0)
    LandmarkPlot(
        "plot-calibration",
        "Realised calibration by landmark",
        (
            ("Calibration slope", "calibration_slope", "series-slope", "circle"),
            ("Calibration intercept", "calibration_intercept", "series-intercept", "square"),
        ),
        (-1.0, 2.0),
        (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0),
        "Slope, intercept",
        ((1.0, "ideal slope 1"), (0.0, "ideal intercept 0")),
    ),
)


# --- over time: the report's periods ---------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One series of a plot over time: the figure of this name in every period."""

    label: str
    figure: str  # a name of MonitoringReport.periods' figures
    css: str
    shape: str


def _span(start: datetime, end: datetime) -> str:
    return f"{start:%d %b}–{end:%d %b %Y}"


def _period_plot(
    plot: Plot,
    report: MonitoringReport,
    series: Sequence[Series],
    domain: tuple[float, float],
    kind: str,
) -> Plot:
    """The figures of `series` in each period (oldest left) as points with their 95%
    intervals, side by side in the period's slot; a period's figure without a number is
    said in the table and description ("too few"), not drawn."""
    low, high = domain
    periods = report.periods
    step = (plot.right - plot.left) / max(len(periods), 1)
    every = max(1, -(-len(periods) // 6))  # at most about six date labels
    words, drawn = [], 0
    for i, period in enumerate(periods):
        centre = plot.left + step * (i + 0.5)
        span = _span(period.start, period.end)
        if i % every == 0 or i == len(periods) - 1:
            plot.labels.append(Text(_fmt(centre), str(plot.bottom + 14), f"{period.end:%d %b}"))
        cells = [span, str(period.clients), str(period.labelled)]
        for j, line in enumerate(series):
            f = period.figure(line.figure)
            if f is None or f.value is None or not math.isfinite(f.value):
                why = "too few" if f is None else str(f.status)
                cells.append(f"– ({why})")
                words.append(f"{line.label}, {span}: {why}")
                continue
            x = centre + (j - (len(series) - 1) / 2) * min(10.0, step / (len(series) + 1))
            ends = None
            if f.interval is not None and all(math.isfinite(v) for v in f.interval):
                ends = tuple(_fmt(_scale(v, low, high, plot.bottom, plot.top)) for v in f.interval)
            value = figure_value(f.value, kind)
            text = f"{line.label}, {span}: {value} (n {f.n:.0f}), {f.status}"
            y = _fmt(_scale(f.value, low, high, plot.bottom, plot.top))
            plot.points.append(
                Point(
                    _fmt(x),
                    y,
                    ends[0] if ends else None,
                    ends[1] if ends else None,
                    line.css,
                    line.shape,
                    text,
                )
            )
            drawn += 1
            cells.append(f"{value} (n {f.n:.0f}), {f.status}")
            words.append(text)
        plot.table.rows.append(tuple(cells))
    plot.labels.append(
        Text(
            str((plot.left + plot.right) // 2),
            str(plot.height - 6),
            "Period (end date)",
            css="axis-label",
        )
    )
    plot.legend = [(line.label, f"{line.css} shape-{line.shape}") for line in series]
    plot.description = "; ".join(words) + "." if words else "No period in this window."
    if not drawn:
        plot.empty = "Too few clients (or labelled episodes) in every period to show a figure."
    return plot


def flag_rate_plot(report: MonitoringReport, profile: ReferenceProfile | None) -> Plot:
    """The shares flagged moderate-or-high and high per period (reweighted to the
    reference's landmark mix, as flag_rate.*.all), with the design rates (the reference's
    pooled flag rates: each figure's `reference`) as dashed lines."""
    title = "Flag rate over time against the design rates"
    series = (
        Series("Moderate or high", "flag_rate.moderate.all", "series-moderate", "circle"),
        Series("High", "flag_rate.high.all", "series-high", "square"),
    )
    headers = ("Period", "Clients", "Labelled", *(line.label for line in series))
    plot = Plot("plot-flag-time", title, "", Table(headers, []))
    figures = [
        f for p in report.periods for line in series if (f := p.figure(line.figure)) is not None
    ]
    design = {f.name: f.reference for f in figures if f.reference is not None}
    if profile is None or not report.periods:
        why = (
            "No reference profile in this model: no design rates to compare with."
            if profile is None
            else "No period in this window."
        )
        return Plot(plot.id, title, why, plot.table, empty=why)
    values = [f.value for f in figures if f.value is not None] + list(design.values())
    high = max(0.1, math.ceil(max(values, default=0.1) * 10 + 0.5) / 10)
    _y_axis(plot, 0.0, high, [high * k / 4 for k in range(5)], "Share flagged")
    for line in series:
        rate = design.get(line.figure)
        if rate is not None:
            _reference_line(plot, rate, 0.0, high, f"design {line.label.lower()} {rate:.1%}")
    plot = _period_plot(plot, report, series, (0.0, high), "flag_rate")
    said = "; ".join(f"design {name.split('.')[1]} {rate:.1%}" for name, rate in design.items())
    plot.description = f"{plot.description} {said}." if said else plot.description
    return plot


_REALISED_SHAPES = ("square", "diamond", "triangle")


def _landmark_series(report: MonitoringReport, kind: str, label: str, css: str) -> list[Series]:
    """One series per landmark at which some period has a `kind` figure (rated or not),
    told apart by shape (_REALISED_SHAPES, landmark by landmark)."""
    landmarks = sorted(
        {
            f.landmark
            for p in report.periods
            for f in p.figures
            if f.kind == kind and f.landmark is not None
        }
    )
    return [
        Series(
            f"{label}, session {k}",
            f"{kind}.landmark_{k}",
            css,
            _REALISED_SHAPES[i % len(_REALISED_SHAPES)],
        )
        for i, k in enumerate(landmarks)
    ]


def auc_time_plot(report: MonitoringReport) -> Plot:
    """CBPE's expected AUC over all the period's clients, and the realised AUC on its
    labelled episodes at each landmark (points left to right by landmark), per period."""
    title = "Expected (CBPE) and realised AUC over time"
    series = [Series("Expected AUC (CBPE)", "expected_auc.all", "series-expected", "circle")]
    series += _landmark_series(report, "realised_auc", "Realised AUC", "series-realised")
    headers = ("Period", "Clients", "Labelled", *(line.label for line in series))
    plot = Plot("plot-auc-time", title, "", Table(headers, []))
    if not report.periods:
        why = "No period in this window."
        return Plot(plot.id, title, why, plot.table, empty=why)
    _y_axis(plot, 0.5, 1.0, (0.5, 0.6, 0.7, 0.8, 0.9, 1.0), "AUC")
    return _period_plot(plot, report, series, (0.5, 1.0), "realised_auc")


@dataclass(frozen=True)
class TimePlot:
    """A plot over time of one realised figure per landmark: which figure, the scale it
    starts from (widened to hold every value, so no point is clamped to the edge: ticks
    0.5, 1, 2, 5, 10, ... apart, at most six intervals), and its ideal (a dashed line)."""

    id: str
    title: str
    kind: str  # a figure kind of PERIOD_REALISED (training.monitoring)
    label: str  # each series': "<label>, session k"
    css: str
    domain: tuple[float, float]
    ideal: float


# Realised calibration over time: the slope and the intercept apart, each on its own scale
# with its ideal, since the two on one axis would leave six points a period told apart by
# colour alone.
CALIBRATION_TIME_PLOTS = (
    TimePlot(
        "plot-slope-time",
        "Realised calibration slope over time",
        "calibration_slope",
        "Calibration slope",
        "series-slope",
        (0.0, 2.0),
        1.0,
    ),
    TimePlot(
        "plot-intercept-time",
        "Realised calibration intercept over time",
        "calibration_intercept",
        "Calibration intercept",
        "series-intercept",
        (-1.0, 1.0),
        0.0,
    ),
)


def calibration_time_plot(spec: TimePlot, report: MonitoringReport) -> Plot:
    """The realised calibration slope (or intercept) of each period's labelled episodes at
    each landmark, with its Wald interval and the ideal as a dashed line. A period below
    the minimum (50 labelled episodes at the landmark, 10 of each outcome) is a gap: no
    point, "too few" in the table, never a zero."""
    series = _landmark_series(report, spec.kind, spec.label, spec.css)
    headers = ("Period", "Clients", "Labelled", *(line.label for line in series))
    plot = Plot(spec.id, spec.title, "", Table(headers, []))
    if not report.periods:
        why = "No period in this window."
        return Plot(plot.id, spec.title, why, plot.table, empty=why)
    values = [
        f.value
        for p in report.periods
        for line in series
        if (f := p.figure(line.figure)) is not None
        and f.value is not None
        and math.isfinite(f.value)
    ]
    low = min(spec.domain[0], min(values, default=0.0))
    high = max(spec.domain[1], max(values, default=0.0))
    # the first of 0.5, 1, 2, 5, 10, 20, ... that leaves at most six intervals
    steps = (m * 10.0**e for e in itertools.count(0) for m in (1, 2, 5))
    step = next(x for x in itertools.chain((0.5,), steps) if (high - low) / x <= 6 + 1e-9)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step
    ticks = [low + step * k for k in range(round((high - low) / step) + 1)]
    _y_axis(plot, low, high, ticks, spec.label)
    # labelled at the left: the recent periods, at the right, hold the points
    _reference_line(plot, spec.ideal, low, high, f"ideal {spec.ideal:g}", left=True)
    return _period_plot(plot, report, series, (low, high), spec.kind)


def plots(report: MonitoringReport, profile: ReferenceProfile | None) -> list[Plot]:
    """The page's plots: the score distribution, the features that moved most,
    LANDMARK_PLOTS, then those over time (flag rate, expected and realised AUC,
    CALIBRATION_TIME_PLOTS)."""
    by_landmark = [_landmark_plot(spec, report) for spec in LANDMARK_PLOTS]
    over_time = [flag_rate_plot(report, profile), auc_time_plot(report)]
    over_time += [calibration_time_plot(spec, report) for spec in CALIBRATION_TIME_PLOTS]
    return [score_plot(report, profile), psi_plot(report), *by_landmark, *over_time]


# --- the status table and the last comparison -----------------------------------------------


@dataclass(frozen=True)
class FigureRow:
    name: str
    value: str
    reference: str
    interval: str
    n: str
    status: str
    css: str
    rule: str
    next_step: str
    note: str


def figure_rows(report: MonitoringReport) -> list[FigureRow]:
    """Every figure of the report, in its order."""
    return [
        FigureRow(
            name=f.name,
            value=figure_value(f.value, f.kind),
            reference=figure_value(f.reference, f.kind),
            interval=_interval(f),
            n=f"{f.n:.0f}",
            status=str(f.status),
            css=f"status-{str(f.status).replace(' ', '-')}",
            rule=f.rule,
            next_step=f.next_step,
            note=f.note,
        )
        for f in report.figures
    ]


def status_counts(report: MonitoringReport) -> list[tuple[str, int]]:
    """How many figures have each status, worst first (statuses with none left out)."""
    order = (Status.ALERT, Status.WATCH, Status.OK, Status.TOO_FEW, Status.NO_REFERENCE)
    counts = [(str(s), sum(f.status is s for f in report.figures)) for s in order]
    return [(s, n) for s, n in counts if n]


@dataclass(frozen=True)
class LastComparison:
    verdict: str  # the line `dropout-risk compare` printed
    challenger: str
    champion: str
    compared_at: str
    n_clients: int
    css: str  # worse, better or "": the verdict box's colour (ComparisonRecord.kind)
    has_page: bool  # the registry keeps its page (/ui/monitoring/comparison)


def last_comparison(record: ComparisonRecord | None) -> LastComparison | None:
    if record is None:
        return None
    return LastComparison(
        record.verdict_line(),
        record.challenger,
        record.champion,
        record.compared_at,
        record.n_clients,
        record.kind,
        record.page_sha256 is not None,
    )
