"""What every `dropout-risk` command shares: the two consoles, `fail`, and the one place a
domain error (`DropoutRiskError` and its subclasses) becomes one `error:` line on stderr
and exit status 2, never a traceback.

Kept apart from training/cli.py (the command tree) so that service's command modules
can use it without importing the tree, and light (typer and rich only) so that
`dropout-risk --help` stays quick.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer import _click as click  # typer 0.29 runs on its own copy of click
from typer.core import TyperGroup

from training.errors import DropoutRiskError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)


def fail(message: str) -> NoReturn:
    """A value the user can fix: one `error:` line on stderr, exit status 2."""
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(2)


def output_file(option: str, path: Path) -> Path:
    """`path` if a command can write it as a file, checked before the work starts (which
    can take minutes): otherwise fail naming the option, the path and why."""
    if path.is_dir():
        fail(f"{option}: {str(path)!r} is a folder; give the file's name")
    folder = path.parent
    if not folder.is_dir():
        fail(f"{option}: the folder of {str(path)!r} does not exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{option}: cannot write in the folder of {str(path)!r} (permission denied)")
    return path


def output_folder(option: str, path: Path) -> Path:
    """`path` if a command can write in it as a folder (creating it and its parents when
    it writes), checked before the work starts and without creating anything, so that
    bad input leaves no empty folder behind: otherwise fail naming the option, the path
    and why."""
    if path.exists() and not path.is_dir():
        fail(f"{option}: {str(path)!r} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        fail(f"{option}: cannot create the folder {str(path)!r} ({str(existing)!r} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        fail(f"{option}: cannot write in the folder {str(existing)!r} (permission denied)")
    return path


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class DomainErrorGroup(TyperGroup):
    """A command group whose commands' domain errors exit 2 with one message, whether
    the group runs as `dropout-risk` or on its own (tests invoke `keys_app` directly).
    So does a file the system would not let a command read or write (a full disk, a
    folder that went away, /proc): its path and the reason, never a traceback; the
    output options are checked before the work (output_file, output_folder), this is
    the net under them."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DropoutRiskError as exc:
            fail(str(exc))
        except OSError as exc:
            where = f"{exc.filename!s}: " if exc.filename is not None else ""
            fail(f"{where}{_reason(exc)}")


def command_group(help_text: str, cls: type[DomainErrorGroup] = DomainErrorGroup) -> typer.Typer:
    """A command group (the tree, `keys`, `db`, `models`) with the CLI's shared settings."""
    return typer.Typer(
        help=help_text,
        cls=cls,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
