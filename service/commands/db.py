"""`dropout-risk db upgrade`, `export` and `audit`: the stored data from the command line.

Errors the user can fix (a bad date, an unknown clinic, an unreachable database) print one
`error:` line on stderr and exit with status 2.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.exc import SQLAlchemyError

from service.commands.demo import seed_demo
from service.storage import repository as repo
from service.storage.database import Storage
from service.storage.engine import StorageUnavailable, normalise_url
from training.cli_support import command_group, fail
from training.contract import CLIENT_COLUMNS, SESSION_COLUMNS
from training.errors import DropoutRiskError
from training.registry import Registry
from training.vocabulary import ID_RULE, URGENT_FIRST, is_id

DEFAULT_DATABASE_URL = "sqlite:///var/dropout-risk.db"

db_app = command_group("The service's database (SQLite by default, PostgreSQL via DATABASE_URL).")

DatabaseUrlOpt = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar=["DROPOUT_RISK_DATABASE_URL", "DATABASE_URL"],
        help="SQLAlchemy URL of the database (default: the SQLite file var/dropout-risk.db).",
        show_default=False,
    ),
]
ClinicOpt = Annotated[str, typer.Option("--clinic", help="The clinic (tenant) whose data to read.")]


class DatabaseFailed(DropoutRiskError):
    """A database error at the command line, named by its type only (never its text,
    which may quote stored values)."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Storage errors as domain errors, with the hint the command line can give."""
    try:
        yield
    except StorageUnavailable as exc:
        raise StorageUnavailable(f"{exc} (check --database-url / DATABASE_URL)") from None
    except SQLAlchemyError as exc:
        raise DatabaseFailed(f"database: {type(exc).__name__}") from None


def open_storage(url: str) -> Storage:
    return Storage(normalise_url(url), migrate=True)


def _check_clinic(clinic: str) -> str:
    if not is_id(clinic):
        fail(f"--clinic: value {clinic!r} must be {ID_RULE}")
    return clinic


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL) -> None:
    """Apply the database migrations (the server also applies them at start-up)."""
    with user_errors():
        storage = open_storage(database_url)
        with storage.session():
            pass
        storage.close()
    typer.echo("database is at the latest migration")


def _cell(value: Any) -> Any:
    """Blank for missing, 1/0 for the dropout label (the contract's spelling)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    return value


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: _cell(row.get(c)) for c in columns})


def export(
    clinic: ClinicOpt,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for sessions.csv and clients.csv (created).")
    ],
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Write a clinic's stored data in the cohort contract (docs/contract.md), so analysts
    can validate and retrain on what the service collected."""
    _check_clinic(clinic)
    with user_errors():
        storage = open_storage(database_url)
        with storage.session() as s:
            sessions, clients = repo.export_tables(s, clinic)
        storage.close()
    write_export(out, sessions, clients)
    typer.echo(
        f"exported {len(clients)} clients and {len(sessions)} sessions of clinic {clinic} "
        f"to {out}/sessions.csv and {out}/clients.csv"
    )


def write_export(out: Path, sessions: list[dict[str, Any]], clients: list[dict[str, Any]]) -> None:
    """sessions.csv and clients.csv in `out` (created), in the cohort contract's columns.
    Written beside the target and renamed, so a failed export never leaves half a file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            _write_csv(Path(tmp) / "sessions.csv", [c.name for c in SESSION_COLUMNS], sessions)
            _write_csv(Path(tmp) / "clients.csv", [c.name for c in CLIENT_COLUMNS], clients)
            for name in ("sessions.csv", "clients.csv"):
                os.replace(Path(tmp) / name, out / name)
    except OSError as exc:  # a file in the way, no permission, a full disk
        reason = exc.strerror or type(exc).__name__
        fail(f"--out: cannot write to {str(out)!r} ({reason})")


def _since(text: str) -> datetime:
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        fail(f"--since: value {text!r} must be a date written YYYY-MM-DD")
    return day.replace(tzinfo=UTC)


def audit(
    clinic: ClinicOpt,
    since: Annotated[str, typer.Option("--since", help="First day to show, YYYY-MM-DD (UTC).")],
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Print the clinic's audit trail: when, who, what, which client (pseudonym), model."""
    _check_clinic(clinic)
    start = _since(since)
    with user_errors():
        storage = open_storage(database_url)
        with storage.session() as s:
            rows = repo.list_audit(s, clinic, start)
        storage.close()
    if not rows:
        typer.echo(f"no audit entries for clinic {clinic} since {since}")
        return
    typer.echo("AT\tACTOR\tACTION\tCLIENT\tMODEL")
    for r in rows:
        cells = [r.at.isoformat(), r.actor, r.action, r.client_pseudonym, r.model_version]
        typer.echo("\t".join("-" if c is None else c for c in cells))


def demo(
    clinic: Annotated[str, typer.Option("--clinic", help="The demo clinic (tenant).")] = "demo",
    clients: Annotated[
        int, typer.Option("--clients", min=3, max=1000, help="How many clients to seed.")
    ] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Simulator seed.")] = 2026,
    models_dir: Annotated[
        Path, typer.Option("--models-dir", help="Model registry directory.")
    ] = Path("models"),
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Seed a demo clinic with a simulated early-phase caseload (a mix of risk levels),
    stored as the EHR API would store it; does nothing if the clinic has clients already."""
    _check_clinic(clinic)
    model = Registry(models_dir).load()  # a missing or broken registry: exit 2 naming it
    with user_errors():
        storage = open_storage(database_url)
        try:
            seeded = seed_demo(storage, model, clinic, clients, seed)
        finally:
            storage.close()
    if seeded.already_there:
        typer.echo(f"clinic {clinic} already has clients; nothing seeded")
        return
    levels = ", ".join(f"{seeded.by_level.get(k, 0)} {k}" for k in URGENT_FIRST)
    typer.echo(
        f"seeded clinic {clinic}: {seeded.clients} simulated clients ({levels}), "
        f"{seeded.sessions} sessions"
    )
