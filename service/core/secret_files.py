"""Installation secrets kept in files (pseudonym key, session-signing key): created once,
owner-only, by whichever worker starts first, and read by all."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from training.errors import DropoutRiskError

SECRET_BYTES = 32


class SecretFileError(DropoutRiskError):
    """A secret file that is not hex text of at least SECRET_BYTES bytes."""


def load_or_create_secret(path: Path) -> bytes:
    """The secret in `path`: read, or created (mode 600) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(SECRET_BYTES))
        except FileExistsError:
            pass  # another worker created it first
    try:
        key = bytes.fromhex(path.read_text().strip())
    except ValueError as exc:
        raise SecretFileError(f"{path}: the secret must be hex text") from exc
    if len(key) < SECRET_BYTES:
        raise SecretFileError(
            f"{path}: the secret must be at least {SECRET_BYTES} bytes (got {len(key)})"
        )
    return key
