"""What every `dropout-risk` command shares: the two consoles, `fail`, and the one place a
domain error (`DropoutRiskError` and its subclasses) becomes one `error:` line on stderr
and exit status 2, never a traceback.

Kept apart from training/cli.py (the command tree) so that service's command modules
can use it without importing the tree, and light (typer and rich only) so that
`dropout-risk --help` stays quick.
"""

from __future__ import annotations

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


class DomainErrorGroup(TyperGroup):
    """A command group whose commands' domain errors exit 2 with one message, whether
    the group runs as `dropout-risk` or on its own (tests invoke `keys_app` directly)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DropoutRiskError as exc:
            fail(str(exc))


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
