"""`dropout-risk retrain --clinic C`: the loop from the service's own data to a challenger.

Three steps an analyst could run by hand, in one command so that nothing is mixed up on the
way: export the clinic's stored episodes that have an outcome (the `export` command's
files), `update --method auto` from the model serving the clinic (its champion, else the
network default), and `compare` the challenger with that same model on the same clients.
It never promotes: it prints where the challenger and the comparison are and the command
that would promote it (docs/updating.md). Bad input exits 2 with one `error:` line.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    write_export,
)
from service.storage import repository as repo
from training.cli import run_compare, run_update
from training.cli_support import fail, out
from training.registry import Registry
from training.update import UpdateConfig


def _folder(out_dir: Path | None, clinic: str) -> Path:
    """Where the export and the comparison go: --out, else var/retrain/<clinic>-<UTC time>."""
    if out_dir is not None:
        return out_dir
    return Path("var") / "retrain" / f"{clinic}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"


def retrain(
    clinic: ClinicOpt,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for the export and compare.html (default: var/retrain/<clinic>-<time>).",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
    models_dir: Annotated[
        Path, typer.Option("--models-dir", help="Model registry directory.")
    ] = Path("models"),
    seed: Annotated[int, typer.Option("--seed", help="Seed for folds and refits.")] = 0,
) -> None:
    """Update the clinic's model on its stored, labelled episodes (closed test) and compare
    the challenger with it; prints the challenger's version last (never promoted)."""
    _check_clinic(clinic)
    registry = Registry(models_dir)
    parent = registry.entry("champion", clinic).version  # a broken registry: exit 2 naming it
    with user_errors():
        storage = open_storage(database_url)
        try:
            with storage.session() as s:
                sessions, clients = repo.export_tables(s, clinic, labelled_only=True)
        finally:
            storage.close()
    if not clients:
        fail(
            f"--clinic: clinic {clinic!r} has no stored episode with an outcome "
            "(record outcomes with PUT /v1/clients/{client_id}/outcome)"
        )
    folder = _folder(out_dir, clinic)
    write_export(folder, sessions, clients)
    out.print(
        f"exported    {len(clients):,} clients with an outcome ({len(sessions):,} sessions) "
        f"of clinic {clinic} to {folder}",
        markup=False,
    )
    files = folder / "sessions.csv", folder / "clients.csv"
    config = UpdateConfig(method="auto", clinic=clinic, seed=seed)
    update = run_update(models_dir, parent, *files, config)
    page = folder / "compare.html"
    comparison = run_compare(models_dir, parent, update.version, *files, clinic, page)
    out.print(f"challenger  {update.folder} (registered, not promoted)", markup=False)
    out.print(f"comparison  {page} (kept in the registry)", markup=False)
    out.print(comparison.verdict_line(), markup=False)
    out.print(
        f"to promote  dropout-risk models promote {update.version} --clinic {clinic}",
        markup=False,
    )
    out.print(update.version)
