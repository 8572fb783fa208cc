"""`dropout-risk monitor`: a clinic's monitoring report from the command line.

The same report as `GET /v1/monitoring` (service.scoring.monitoring_window), printed as a
table: figure, value, n, status, next step. Exit status 1 when any figure alerts, 0
otherwise, 2 on bad input (one `error:` line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.commands.db import (
    DEFAULT_DATABASE_URL,
    ClinicOpt,
    DatabaseUrlOpt,
    _check_clinic,
    open_storage,
    user_errors,
)
from service.scoring.monitoring_window import InvalidWindow, clinic_report, parse_window
from training.cli_support import fail
from training.monitoring import Figure, MonitoringReport
from training.registry import Registry

COLUMNS = ("figure", "value", "n", "status", "next step")


def _number(x: float | None) -> str:
    return "-" if x is None or x != x else f"{x:.4g}"


def _row(f: Figure) -> tuple[str, ...]:
    return (f.name, _number(f.value), f"{f.n:.0f}", str(f.status), f.next_step or "-")


def table(report: MonitoringReport) -> str:
    """The report as tab-separated lines under a header (no client data: figure names are
    built from features, instruments, levels and landmarks only)."""
    lines = ["\t".join(COLUMNS), *("\t".join(_row(f)) for f in report.figures)]
    return "\n".join(lines)


def _cell(f: Figure | None) -> str:
    if f is None:
        return "-"
    return str(f.status) if f.value is None else f"{_number(f.value)} {f.status}"


def periods_table(report: MonitoringReport) -> str:
    """The figures over time, one line per period (oldest first), one column per figure:
    its value and status, or its status alone when it has no number ("too few")."""
    if not report.periods:
        return ""
    names = list(dict.fromkeys(f.name for p in report.periods for f in p.figures))
    lines = ["\t".join(("period", "clients", "labelled", *names))]
    for p in report.periods:
        span = f"{p.start:%Y-%m-%d %H:%M}..{p.end:%Y-%m-%d %H:%M}"
        cells = (_cell(p.figure(name)) for name in names)
        lines.append("\t".join((span, str(p.clients), str(p.labelled), *cells)))
    return "\n".join(lines)


def monitor(
    clinic: ClinicOpt,
    window: Annotated[
        str, typer.Option("--window", help="The window: <N>d, N from 1 to 730 days.")
    ] = "90d",
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
    models_dir: Annotated[
        Path, typer.Option("--models-dir", help="Model registry directory.")
    ] = Path("models"),
) -> None:
    """Monitor the champion at a clinic over its stored clients of the last N days: drift,
    expected and realised performance, each rated; exit 1 on any alert."""
    _check_clinic(clinic)
    try:
        days = parse_window(window)
    except InvalidWindow as exc:
        fail(f"--{exc}")
    # the model serving the clinic, as GET /v1/monitoring does: its own champion, else the
    # network default (a missing or broken registry: exit 2 naming it)
    model = Registry(models_dir).load("champion", clinic)
    with user_errors():
        storage = open_storage(database_url)
        try:
            with storage.snapshot() as s:
                report = clinic_report(s, clinic, model, days)
        finally:
            storage.close()
    typer.echo(
        f"clinic {clinic}, model {report.model_version}, last {days} days: "
        f"{report.clients} clients, {report.labelled} labelled; status {report.status}"
    )
    for message in report.messages:
        typer.echo(message)
    typer.echo(table(report))
    if report.periods:
        typer.echo("\nover time (each client in the period of its latest risk in the window):")
        typer.echo(periods_table(report))
    if report.alerts():
        raise typer.Exit(1)
