"""`dropout-risk keys`: create, list and revoke the service's API keys.

`keys create` prints the token alone on stdout, so `KEY=$(dropout-risk keys create ...)`
captures it; it is shown once and only its SHA-256 is stored. Errors print one
`error: ...` line on stderr and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from service.commands.db import DEFAULT_DATABASE_URL, DatabaseUrlOpt, open_storage
from service.security.api_keys import SCOPES
from service.security.key_store import DbKeyStore
from training.cli_support import command_group, err
from training.vocabulary import ID_RULE

keys_app = command_group("Create, list and revoke API keys for the service (stored hashed).")


@contextmanager
def _store(database_url: str) -> Iterator[DbKeyStore]:
    storage = open_storage(database_url)
    try:
        storage.ensure_migrated()
        yield DbKeyStore(storage.factory)
    finally:
        storage.close()


@keys_app.command("create")
def keys_create(
    name: Annotated[
        str, typer.Option("--name", help="Who or what uses the key (1-64 printable characters).")
    ],
    tenant: Annotated[
        str, typer.Option("--tenant", help=f"The clinic the key acts for ({ID_RULE}).")
    ],
    scopes: Annotated[
        str,
        typer.Option("--scopes", help=f"Comma-separated, from: {','.join(SCOPES)}."),
    ],
    therapist: Annotated[
        str | None,
        typer.Option("--therapist", help="Bind a clinician's key to one therapist id (optional)."),
    ] = None,
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Create a key and print its token alone on stdout (shown only this once)."""
    granted = [s.strip() for s in scopes.split(",") if s.strip()]
    with _store(database_url) as store:
        key, token = store.create(name, tenant, granted, therapist)
    typer.echo(token)
    err.print(
        f"created key {key.key_id} ({key.name!r}, tenant {key.tenant}, scopes "
        f"{','.join(s for s in SCOPES if s in key.scopes)}); "
        "store the token now: it cannot be shown again",
        markup=False,
    )


@keys_app.command("list")
def keys_list(database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL) -> None:
    """List keys that are not revoked: id, name, tenant, scopes, created (never secrets)."""
    with _store(database_url) as store:
        keys = store.list()
    if not keys:
        typer.echo("no API keys")
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
    database_url: DatabaseUrlOpt = DEFAULT_DATABASE_URL,
) -> None:
    """Revoke a key: its token stops working (running servers notice within 5 seconds) and
    its clinician view sessions end at once."""
    with _store(database_url) as store:
        store.revoke(key_id)
    typer.echo(f"revoked {key_id}")
