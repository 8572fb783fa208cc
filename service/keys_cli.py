"""`dropout-risk keys`: create, list and revoke the service's API keys.

`keys create` prints the token alone on stdout, so `KEY=$(dropout-risk keys create ...)`
captures it; it is shown once and only its SHA-256 is stored. Errors print one
`error: ...` line on stderr and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.keys import SCOPES, KeyStore, KeyStoreError

KEYS_FILE_ENV = "DROPOUT_RISK_KEYS_FILE"
DEFAULT_KEYS_FILE = Path("var/keys.json")

keys_app = typer.Typer(
    help="Create, list and revoke API keys for the service (stored hashed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

err = Console(stderr=True, highlight=False, soft_wrap=True)

KeysFileOpt = Annotated[
    Path,
    typer.Option(
        "--keys-file",
        envvar=KEYS_FILE_ENV,
        help="Keys file (JSON, mode 600; created with its directory when missing).",
    ),
]


@contextmanager
def _user_errors() -> Iterator[None]:
    """KeyStoreError -> one `error:` line and exit 2, also when keys_app runs on its own."""
    try:
        yield
    except KeyStoreError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None


@keys_app.command("create")
def keys_create(
    name: Annotated[
        str, typer.Option("--name", help="Who or what uses the key (1-64 printable characters).")
    ],
    tenant: Annotated[
        str, typer.Option("--tenant", help="The clinic the key acts for (A-Z a-z 0-9 . _ -).")
    ],
    scopes: Annotated[
        str,
        typer.Option("--scopes", help=f"Comma-separated, from: {','.join(SCOPES)}."),
    ],
    keys_file: KeysFileOpt = DEFAULT_KEYS_FILE,
) -> None:
    """Create a key and print its token alone on stdout (shown only this once)."""
    granted = [s.strip() for s in scopes.split(",") if s.strip()]
    with _user_errors():
        key, token = KeyStore(keys_file).create(name, tenant, granted)
    typer.echo(token)
    err.print(
        f"created key {key.key_id} ({key.name!r}, tenant {key.tenant}, scopes "
        f"{','.join(s for s in SCOPES if s in key.scopes)}) in {keys_file}; "
        "store the token now: it cannot be shown again",
        markup=False,
    )


@keys_app.command("list")
def keys_list(keys_file: KeysFileOpt = DEFAULT_KEYS_FILE) -> None:
    """List keys that are not revoked: id, name, tenant, scopes, created (never secrets)."""
    with _user_errors():
        keys = KeyStore(keys_file).list()
    if not keys:
        typer.echo(f"no API keys in {keys_file}")
        return
    rows = [("KEY_ID", "NAME", "TENANT", "SCOPES", "CREATED")]
    rows += [
        (k.key_id, k.name, k.tenant, ",".join(s for s in SCOPES if s in k.scopes), k.created_at)
        for k in keys
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[4]]))


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="Id of the key (from `keys list`).")],
    keys_file: KeysFileOpt = DEFAULT_KEYS_FILE,
) -> None:
    """Revoke a key: its token stops working (a running server notices within a second)."""
    with _user_errors():
        KeyStore(keys_file).revoke(key_id)
    typer.echo(f"revoked {key_id}")
