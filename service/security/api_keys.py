"""API keys: what a key grants, the token format and the checks on key input. The keys
themselves live in the database (service.security.key_store), created by `dropout-risk keys`.

A token looks like `drk_<key_id>_<secret>`. Only the SHA-256 of the secret is stored: the
secret is 256 random bits, so no search can invert the hash. Revoked keys stay stored (with
`revoked_at`) for the audit trail and so their ids are never reused.
"""

from __future__ import annotations

import builtins
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from training.errors import DropoutRiskError
from training.vocabulary import ID_RULE, is_id

# models:admin reads model metadata, its clinic's monitoring and promotes its clinic's own
# champion; models:network promotes the network default, which changes what every clinic
# without its own champion is served, so it is granted apart from it. monitoring:read
# reads its clinic's monitoring only (GET /v1/monitoring, the page /ui/monitoring): the
# role of analysts and clinic leads who watch the model but do not promote one.
SCOPES: tuple[str, ...] = (
    "predict",
    "models:admin",
    "models:network",
    "clients:write",
    "clients:read",
    "monitoring:read",
)

TOKEN_PREFIX = "drk"
NAME_MAX = 64

# key_id: secrets.token_hex(6); secret: secrets.token_urlsafe(32), 43 base64url characters.
_TOKEN_RE = re.compile(r"drk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
# Compared against when the key id is unknown, so a miss costs the same as a wrong secret.
_DUMMY_SHA256 = hashlib.sha256(b"dropout-risk: no such key").hexdigest()


class KeyStoreError(DropoutRiskError):
    """Bad key input (name, tenant, scopes, unknown id) or an unreadable keys file."""


@dataclass(frozen=True)
class ApiKey:
    """What a verified token grants; never holds the secret or its hash."""

    key_id: str
    name: str
    tenant: str
    scopes: frozenset[str]
    created_at: str
    therapist_id: str | None = None  # a clinician's key may be bound to one therapist


def _digest(secret: str) -> str:
    # A plain SHA-256 is enough: the secret is 256 random bits from `secrets`, so no dictionary
    # or brute-force search can invert its hash. Slow password hashes (bcrypt, argon2) exist to
    # protect low-entropy, human-chosen passwords and would add tens of ms to every request.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= NAME_MAX or not name.isprintable() or not name.strip():
        raise KeyStoreError(
            f"name: value {name!r} must be 1 to {NAME_MAX} printable characters, "
            f"not only spaces (got {len(name)})"
        )
    return name


def _check_tenant(tenant: str) -> str:
    if not is_id(tenant):
        raise KeyStoreError(f"tenant: value {tenant!r} must be {ID_RULE}")
    return tenant


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    allowed = ", ".join(SCOPES)
    if isinstance(scopes, str):
        raise KeyStoreError(
            f"scopes: value {scopes!r} must be a collection of scope names, not one string"
        )
    given = builtins.list(scopes)
    if not given:
        raise KeyStoreError(f"scopes: value {given!r} must name at least one of: {allowed}")
    for scope in given:
        if scope not in SCOPES:
            raise KeyStoreError(f"scopes: value {scope!r} is not one of: {allowed}")
    return frozenset(given)
