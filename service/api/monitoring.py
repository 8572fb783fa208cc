"""`GET /v1/monitoring`: the monitoring report of the caller's clinic (models:admin or
monitoring:read; the page /ui/monitoring shows the same report).

The report (training.monitoring.monitor) on the clinic's stored window
(service.scoring.monitoring_window): computed when asked, here, never on a prediction's
path; the last reports are kept in the app's ReportCache (a repeated request costs two
aggregates until the clinic's next write). The handler is a plain `def`: it waits on the
database and the figures' arithmetic, so FastAPI runs it in its thread pool and the event
loop keeps serving predictions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from service.api.deps import ERRORS, Db, Model, MonitoringKey, Reports
from service.core.observability import record_monitoring
from service.scoring.monitoring_window import WINDOW_RULE, clinic_report, parse_window
from training.monitoring import Figure, MonitoringReport, Status

router = APIRouter(prefix="/v1", tags=["monitoring"])
_STATUS_CODE = {Status.OK: 1, Status.WATCH: 2, Status.ALERT: 3}  # else 0: unrated


class FigureOut(BaseModel):
    """One monitored quantity: its value against its reference, its size and status."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str
    subject: str
    landmark: int | None
    value: float | None
    reference: float | None
    n: float
    p_value: float | None
    interval: tuple[float, float] | None
    status: str
    rule: str
    next_step: str
    note: str


class PeriodOut(BaseModel):
    """One consecutive period of the window (oldest first): its clients, its labelled
    episodes and the figures over time (the flag rates, the expected AUC over all
    landmarks, the realised AUC and calibration slope per landmark), rated as the
    window's own figures are."""

    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime
    clients: int
    labelled: int
    figures: list[FigureOut]


class MonitoringOut(BaseModel):
    """A clinic's monitoring report over a window: the worst status, and every figure."""

    model_config = ConfigDict(extra="forbid")

    clinic: str
    window_days: int
    model_version: str
    status: str
    clients: int
    labelled: int
    labelled_episodes: int
    labels_required: int
    landmark_clients: dict[str, int]
    cbpe_valid: bool | None
    alerts: list[str]
    messages: list[str]
    figures: list[FigureOut]
    periods: list[PeriodOut]


def _finite(x: float | None) -> float | None:
    """JSON has no NaN: an undefined number is null."""
    return None if x is None or x != x or x in (float("inf"), float("-inf")) else x


def _figure_out(f: Figure) -> FigureOut:
    return FigureOut(
        name=f.name,
        kind=f.kind,
        subject=f.subject,
        landmark=f.landmark,
        value=_finite(f.value),
        reference=_finite(f.reference),
        n=_finite(f.n) or 0.0,
        p_value=_finite(f.p_value),
        interval=(
            None
            if f.interval is None or None in map(_finite, f.interval)
            else (float(f.interval[0]), float(f.interval[1]))
        ),
        status=str(f.status),
        rule=f.rule,
        next_step=f.next_step,
        note=f.note,
    )


def report_out(report: MonitoringReport, days: int) -> MonitoringOut:
    """The report as the API answers it (also what `dropout-risk monitor --json` would
    print)."""
    return MonitoringOut(
        clinic=report.clinic,
        window_days=days,
        model_version=report.model_version,
        status=str(report.status),
        clients=report.clients,
        labelled=report.labelled,
        labelled_episodes=report.labelled_episodes,
        labels_required=report.labels_required,
        landmark_clients={str(k): v for k, v in report.landmark_clients.items()},
        cbpe_valid=report.cbpe_valid,
        alerts=[f.name for f in report.alerts()],
        messages=list(report.messages),
        figures=[_figure_out(f) for f in report.figures],
        periods=[
            PeriodOut(
                start=p.start,
                end=p.end,
                clients=p.clients,
                labelled=p.labelled,
                figures=[_figure_out(f) for f in p.figures],
            )
            for p in report.periods
        ],
    )


@router.get("/monitoring", response_model=MonitoringOut, responses=ERRORS)
def monitoring(
    key: MonitoringKey,
    db: Db,
    model: Model,
    reports: Reports,
    window: Annotated[str, Query(description=f"The window: {WINDOW_RULE}.")] = "90d",
) -> Any:
    """Drift, expected and realised performance of the serving model at the caller's
    clinic over the window's stored clients, each figure rated (ok, watch, alert, too few,
    no reference profile), with the next step on each alert."""
    days = parse_window(window)  # InvalidWindow: 422 naming `window` (service.api.errors)
    with db.snapshot() as s:
        report = clinic_report(s, key.tenant, model, days, cache=reports)
    record_monitoring(
        report.clinic,
        report.model_version,
        [(f.name, f.value, _STATUS_CODE.get(f.status, 0)) for f in report.figures],
    )
    return report_out(report, days)
