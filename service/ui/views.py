"""What the clinician pages show, computed from stored records: plain data for the templates.

Scores are read from the stored session payloads with the request schemas and the helpers
the model's features use (service.scoring.episodes), so a page shows exactly the values the risk was
computed from. Charts are inline SVG laid out here, in fixed pixel sizes (no layout shift):
every series has its own marker shape and line pattern besides its colour, and every chart
carries a text description of its values for screen readers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from service.core.schemas import SrsIn, WaiIn
from service.scoring.episodes import srs_total, wai_subscales
from service.storage.repository import PredictionRecord, SessionRecord
from training.vocabulary import PHQ9_TOTAL_RANGE, RISK_LEVELS, SRS_TOTAL_RANGE, WAI_ITEM_RANGE

LEVEL_LABELS: dict[str, str] = {level: level.capitalize() for level in RISK_LEVELS}
EARLY_SESSIONS = 5  # the caseload's sparkline: alliance over sessions 1 to 5
SRS_CUTOFF = 36.0  # SRS totals below 36 suggest a strained alliance (Duncan & Miller)


# --- formatting -----------------------------------------------------------------------------


def level_label(level: str) -> str:
    return LEVEL_LABELS.get(level, level.capitalize())


def percent(probability: float, decimals: int = 0) -> str:
    return f"{probability * 100:.{decimals}f}%"


def points(contribution: float) -> str:
    """A contribution in probability points: 0.07 -> '+7.0 points'."""
    return f"{contribution * 100:+.1f} points"


def when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def number(value: float | None) -> str:
    """A score for reading: integers without decimals, others with one."""
    if value is None:
        return "–"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


# --- scores ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """One stored session's scores: the WAI-SR mean of the subscales answered, the SRS, ORS
    and PHQ-9 totals (None when not measured)."""

    number: int
    date: str | None
    wai: float | None
    srs: float | None
    ors: float | None
    phq9: float | None

    def alliance(self) -> tuple[float, str] | None:
        """(value, source) on the WAI-SR's 1-5 scale: the WAI-SR mean, else SRS total / 10."""
        if self.wai is not None:
            return self.wai, "WAI-SR"
        if self.srs is not None:
            return self.srs / 10, "SRS"
        return None


def _wai_mean(raw: Any) -> float | None:
    if not raw:
        return None
    try:
        answered = [v for v in wai_subscales(WaiIn.model_validate(raw)) if v is not None]
    except ValidationError:
        return None  # stored payloads were validated on the way in; never expected
    return sum(answered) / len(answered) if answered else None


def _srs(raw: Any) -> float | None:
    if not raw:
        return None
    try:
        return srs_total(SrsIn.model_validate(raw))
    except ValidationError:
        return None


def _total(raw: Any) -> float | None:
    value = raw.get("total") if isinstance(raw, dict) else None
    return float(value) if isinstance(value, int | float) else None


def session_scores(record: SessionRecord) -> Scores:
    payload = record.payload
    day = record.session_date.isoformat() if record.session_date is not None else None
    return Scores(
        number=record.number,
        date=day,
        wai=_wai_mean(payload.get("wai")),
        srs=_srs(payload.get("srs")),
        ors=_total(payload.get("ors")),
        phq9=_total(payload.get("phq9")),
    )


# --- the caseload's sparkline ---------------------------------------------------------------

SPARK_W, SPARK_H, SPARK_PAD = 96, 32, 4
SPARK_MIN, SPARK_MAX = (
    float(WAI_ITEM_RANGE[0]),
    float(WAI_ITEM_RANGE[1]),
)  # the WAI-SR's scale; SRS / 10 below 1 is drawn at 1


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    segments: list[str]  # polyline `points`, broken where a session has no score
    dots: list[tuple[str, str]]
    label: str


def _fmt(value: float) -> str:
    return f"{value:.1f}"


def sparkline(scores: Iterable[Scores], sessions: int = EARLY_SESSIONS) -> Sparkline | None:
    """Alliance over sessions 1..`sessions` (None when none of them has a score)."""
    by_number = {s.number: s.alliance() for s in scores if 1 <= s.number <= sessions}
    if not any(v is not None for v in by_number.values()):
        return None
    step = (SPARK_W - 2 * SPARK_PAD) / max(sessions - 1, 1)
    span = SPARK_H - 2 * SPARK_PAD
    segments: list[str] = []
    dots: list[tuple[str, str]] = []
    words: list[str] = []
    current: list[str] = []
    last_scored = max(n for n, v in by_number.items() if v is not None)
    for n in range(1, sessions + 1):
        point = by_number.get(n)
        if point is None:
            if n < last_scored:
                words.append(f"session {n} no score")
            if current:
                segments.append(" ".join(current))
                current = []
            continue
        value, source = point
        clamped = min(max(value, SPARK_MIN), SPARK_MAX)
        x = _fmt(SPARK_PAD + (n - 1) * step)
        y = _fmt(SPARK_PAD + span * (SPARK_MAX - clamped) / (SPARK_MAX - SPARK_MIN))
        current.append(f"{x},{y}")
        dots.append((x, y))
        words.append(f"session {n} {value:.1f}" + (" (SRS total ÷ 10)" if source == "SRS" else ""))
    if current:
        segments.append(" ".join(current))
    label = "Alliance (WAI-SR mean, 1 to 5) by session: " + ", ".join(words)
    return Sparkline(SPARK_W, SPARK_H, [s for s in segments if " " in s], dots, label)


# --- the client page's charts ---------------------------------------------------------------

CHART_W, CHART_H = 360, 200
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 14, 14, 40


@dataclass(frozen=True)
class Marker:
    x: str
    y: str
    text: str  # e.g. "Session 2: 31"


@dataclass(frozen=True)
class Series:
    name: str
    css: str  # class: colour and line pattern
    shape: str  # circle, square or diamond: readable without colour
    segments: list[str]
    markers: list[Marker]


@dataclass(frozen=True)
class Tick:
    at: str
    label: str


@dataclass(frozen=True)
class Cutoff:
    y: str
    label: str
    value: str


@dataclass
class Chart:
    id: str
    title: str
    y_label: str
    description: str
    width: int = CHART_W
    height: int = CHART_H
    left: int = _LEFT
    right: int = CHART_W - _RIGHT
    top: int = _TOP
    bottom: int = CHART_H - _BOTTOM
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    cutoff: Cutoff | None = None
    empty: bool = True


def _x_ticks(numbers: Sequence[int], x: Any) -> list[Tick]:
    every = max(1, -(-len(numbers) // 10))  # at most about 10 labels
    return [Tick(_fmt(x(n)), str(n)) for i, n in enumerate(numbers) if i % every == 0]


def chart(
    chart_id: str,
    title: str,
    y_label: str,
    domain: tuple[float, float],
    ticks: Sequence[float],
    numbers: Sequence[int],
    series: Sequence[tuple[str, str, str, dict[int, float]]],
    cutoff: tuple[float, str] | None = None,
) -> Chart:
    """One chart over the sessions `numbers`; series are (name, css, shape, {session: value})."""
    low, high = domain
    out = Chart(id=chart_id, title=title, y_label=y_label, description="")
    first, last = (numbers[0], numbers[-1]) if numbers else (1, 1)
    width = out.right - out.left

    def x(n: int) -> float:
        return out.left + (width / 2 if last == first else width * (n - first) / (last - first))

    def y(v: float) -> float:
        clamped = min(max(v, low), high)
        return out.bottom - (out.bottom - out.top) * (clamped - low) / (high - low)

    out.x_ticks = _x_ticks(numbers, x)
    out.y_ticks = [Tick(_fmt(y(t)), number(t)) for t in ticks]
    if cutoff is not None:
        out.cutoff = Cutoff(_fmt(y(cutoff[0])), cutoff[1], number(cutoff[0]))
    words: list[str] = []
    for name, css, shape, values in series:
        segments: list[str] = []
        markers: list[Marker] = []
        current: list[str] = []
        for n in numbers:
            if n not in values:
                if current:
                    segments.append(" ".join(current))
                current = []
                continue
            px, py = _fmt(x(n)), _fmt(y(values[n]))
            current.append(f"{px},{py}")
            markers.append(Marker(px, py, f"{name}, session {n}: {number(values[n])}"))
        if current:
            segments.append(" ".join(current))
        out.series.append(Series(name, css, shape, [s for s in segments if " " in s], markers))
        if values:
            listed = ", ".join(f"session {n} {number(values[n])}" for n in sorted(values))
            words.append(f"{name}: {listed}.")
        else:
            words.append(f"{name}: no scores.")
    out.empty = not any(s.markers for s in out.series)
    described = " ".join(words)
    if cutoff is not None:
        described += f" Dashed line: {cutoff[1]}."
    out.description = described
    return out


def charts(scores: Sequence[Scores]) -> list[Chart]:
    """Alliance (1-5), SRS and ORS (0-40, with the SRS cutoff) and PHQ-9 (0-27) by session."""
    numbers = [s.number for s in scores]

    def values(attr: str) -> dict[int, float]:
        return {s.number: v for s in scores if (v := getattr(s, attr)) is not None}

    return [
        chart(
            "chart-alliance",
            "Alliance: WAI-SR mean by session",
            "WAI-SR mean (1–5)",
            (float(WAI_ITEM_RANGE[0]), float(WAI_ITEM_RANGE[1])),
            tuple(range(WAI_ITEM_RANGE[0], WAI_ITEM_RANGE[1] + 1)),
            numbers,
            [("WAI-SR mean", "series-wai", "circle", values("wai"))],
        ),
        chart(
            "chart-srs-ors",
            "SRS and ORS totals by session",
            "Total (0–40)",
            (float(SRS_TOTAL_RANGE[0]), float(SRS_TOTAL_RANGE[1])),
            tuple(range(SRS_TOTAL_RANGE[0], SRS_TOTAL_RANGE[1] + 1, 10)),
            numbers,
            [
                ("SRS total", "series-srs", "square", values("srs")),
                ("ORS total", "series-ors", "diamond", values("ors")),
            ],
            cutoff=(SRS_CUTOFF, f"SRS cutoff {SRS_CUTOFF:.0f}"),
        ),
        chart(
            "chart-phq9",
            "PHQ-9 total by session",
            "PHQ-9 total (0–27)",
            (float(PHQ9_TOTAL_RANGE[0]), float(PHQ9_TOTAL_RANGE[1])),
            (0, 5, 10, 15, 20, 27),
            numbers,
            [("PHQ-9 total", "series-phq9", "circle", values("phq9"))],
        ),
    ]


# --- risks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LandmarkRisk:
    landmark: int
    probability: str
    level: str
    level_label: str
    computed: str
    model_version: str


def risk_by_landmark(history: Sequence[PredictionRecord]) -> list[LandmarkRisk]:
    """The latest stored risk at each landmark session, in landmark order (history is
    newest first)."""
    latest: dict[int, PredictionRecord] = {}
    for record in history:
        latest.setdefault(record.landmark, record)
    return [
        LandmarkRisk(
            r.landmark,
            percent(r.probability),
            r.risk_level,
            level_label(r.risk_level),
            when(r.computed_at),
            r.model_version,
        )
        for r in (latest[k] for k in sorted(latest))
    ]
