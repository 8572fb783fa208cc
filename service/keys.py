"""API keys for the service: created by `dropout-risk keys`, checked on every request.

A token looks like `drk_<key_id>_<secret>`. The keys file (JSON, mode 0o600) keeps, per key,
its id, name, tenant (clinic), scopes, creation time and the SHA-256 of the secret, never the
secret itself. Revoked keys stay in the file (with `revoked_at`) for the audit trail and so
their ids are never reused.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.errors import DropoutRiskError

SCOPES: tuple[str, ...] = ("predict", "models:admin", "clients:write", "clients:read")

TOKEN_PREFIX = "drk"
FILE_FORMAT = "dropout-risk-keys/1"
NAME_MAX = 64
TENANT_MAX = 64

# key_id: secrets.token_hex(6); secret: secrets.token_urlsafe(32), 43 base64url characters.
_TOKEN_RE = re.compile(r"drk_(?P<key_id>[0-9a-f]{12})_(?P<secret>[A-Za-z0-9_-]{43})")
_KEY_ID_RE = re.compile(r"[0-9a-f]{12}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
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


@dataclass(frozen=True)
class _Record:
    key: ApiKey
    sha256: str
    revoked_at: str | None


@dataclass(frozen=True)
class _Snapshot:
    signature: tuple[int, int, int] | None  # (mtime_ns, size, inode); None: no file
    records: dict[str, _Record]


def _digest(secret: str) -> str:
    # A plain SHA-256 is enough: the secret is 256 random bits from `secrets`, so no dictionary
    # or brute-force search can invert its hash. Slow password hashes (bcrypt, argon2) exist to
    # protect low-entropy, human-chosen passwords and would add tens of ms to every request.
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= NAME_MAX or not name.isprintable() or not name.strip():
        raise KeyStoreError(
            f"name: value {name!r} must be 1 to {NAME_MAX} printable characters, "
            f"not only spaces (got {len(name)})"
        )
    return name


def _check_tenant(tenant: str) -> str:
    if not _TENANT_RE.fullmatch(tenant):
        raise KeyStoreError(
            f"tenant: value {tenant!r} must be 1 to {TENANT_MAX} characters from A-Z a-z 0-9 . _ -"
        )
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


def _parse_record(item: Any, where: str) -> _Record:
    """One entry of the keys file, checked as strictly as new keys are."""
    if not isinstance(item, dict):
        raise KeyStoreError(f"{where}: expected an object, got {type(item).__name__}")
    try:
        key_id, sha256, scopes = item["key_id"], item["sha256"], item["scopes"]
        name, tenant, created_at = item["name"], item["tenant"], item["created_at"]
    except KeyError as exc:
        raise KeyStoreError(f"{where}: missing field {exc.args[0]!r}") from None
    revoked_at = item.get("revoked_at")
    texts = (key_id, sha256, name, tenant, created_at)
    if not all(isinstance(v, str) for v in texts) or not isinstance(scopes, builtins.list):
        raise KeyStoreError(f"{where}: fields have the wrong types")
    if not _KEY_ID_RE.fullmatch(key_id):
        raise KeyStoreError(f"{where}: key_id {key_id!r} is not 12 lowercase hex characters")
    if not _SHA256_RE.fullmatch(sha256):
        raise KeyStoreError(f"{where}: sha256 is not 64 lowercase hex characters")
    if revoked_at is not None and not isinstance(revoked_at, str):
        raise KeyStoreError(f"{where}: revoked_at must be a string or null")
    try:
        key = ApiKey(
            key_id, _check_name(name), _check_tenant(tenant), _check_scopes(scopes), created_at
        )
    except KeyStoreError as exc:
        raise KeyStoreError(f"{where}: {exc}") from None
    return _Record(key, sha256, revoked_at)


def _to_json(record: _Record) -> dict[str, Any]:
    key = record.key
    return {
        "key_id": key.key_id,
        "name": key.name,
        "tenant": key.tenant,
        "scopes": [s for s in SCOPES if s in key.scopes],
        "created_at": key.created_at,
        "sha256": record.sha256,
        "revoked_at": record.revoked_at,
    }


class KeyStore:
    """The keys file: create, list and revoke keys (CLI) and verify tokens (every request).

    verify() keeps the parsed file in memory and re-reads it only when the file's
    (mtime_ns, size, inode) changes, checking with one os.stat at most every `stat_interval`
    seconds, so a key created or revoked by the CLI takes effect in a running server within
    that interval. Writes are atomic (temporary file + os.replace) and serialised with a lock
    file beside the keys file, so two CLI runs cannot lose each other's keys.
    """

    def __init__(self, path: Path, *, stat_interval: float = 0.5) -> None:
        self.path = path
        self._stat_interval = stat_interval
        self._snapshot: _Snapshot | None = None
        self._next_check = 0.0
        self._lock = threading.Lock()

    def create(self, name: str, tenant: str, scopes: Iterable[str]) -> tuple[ApiKey, str]:
        """Add a key and return it with its token; the token is not stored and not recoverable.

        Raises:
            KeyStoreError: a bad name, tenant or scope, or an unwritable keys file.
        """
        name, tenant, granted = _check_name(name), _check_tenant(tenant), _check_scopes(scopes)
        with self._write_lock():
            records = self._read().records
            key_id = secrets.token_hex(6)
            while key_id in records:  # 48 random bits: practically never loops
                key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            key = ApiKey(key_id, name, tenant, granted, _now())
            records[key_id] = _Record(key, _digest(secret), None)
            self._write(records)
        return key, f"{TOKEN_PREFIX}_{key_id}_{secret}"

    def verify(self, token: str) -> ApiKey | None:
        """The key a token belongs to, or None (malformed, unknown, wrong secret, revoked).

        The work done does not depend on whether the key id exists: an unknown id is compared
        against a dummy hash, in constant time like a known one.
        """
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        record = self._cached().get(match["key_id"])
        expected = record.sha256 if record is not None else _DUMMY_SHA256
        same = hmac.compare_digest(_digest(match["secret"]), expected)
        if record is None or not same or record.revoked_at is not None:
            return None
        return record.key

    def list(self) -> builtins.list[ApiKey]:
        """Keys that are not revoked, oldest first (in the file's order, which is creation's)."""
        return [r.key for r in self._read().records.values() if r.revoked_at is None]

    def revoke(self, key_id: str) -> None:
        """Revoke a key at once (tokens stop verifying); the entry stays for the audit trail.

        Raises:
            KeyStoreError: no such key, or it was already revoked.
        """
        with self._write_lock():
            records = self._read().records
            record = records.get(key_id)
            if record is None:
                raise KeyStoreError(
                    f"key_id: value {key_id!r} must be the id of a key in {self.path} "
                    "(see `dropout-risk keys list`)"
                )
            if record.revoked_at is not None:
                raise KeyStoreError(
                    f"key_id: value {key_id!r} was already revoked at {record.revoked_at}"
                )
            records[key_id] = _Record(record.key, record.sha256, _now())
            self._write(records)

    def _cached(self) -> dict[str, _Record]:
        now = time.monotonic()
        snapshot = self._snapshot
        if snapshot is not None and now < self._next_check:
            return snapshot.records
        with self._lock:
            self._next_check = now + self._stat_interval
            if self._snapshot is None or self._signature() != self._snapshot.signature:
                self._snapshot = self._read()
            return self._snapshot.records

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyStoreError(f"cannot read keys file {self.path}: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> _Snapshot:
        """Parse the file; its signature comes from the same open file, so they agree."""
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                raw = fh.read()
        except FileNotFoundError:
            return _Snapshot(None, {})
        except OSError as exc:
            raise KeyStoreError(f"cannot read keys file {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise KeyStoreError(f"keys file {self.path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("keys"), builtins.list):
            raise KeyStoreError(f"keys file {self.path} has no 'keys' list")
        records: dict[str, _Record] = {}
        for index, item in enumerate(data["keys"]):
            where = f"keys file {self.path}, entry {index}"
            record = _parse_record(item, where)
            if record.key.key_id in records:
                raise KeyStoreError(f"{where}: key_id {record.key.key_id!r} appears twice")
            records[record.key.key_id] = record
        return _Snapshot((st.st_mtime_ns, st.st_size, st.st_ino), records)

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise KeyStoreError(f"cannot write keys file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _write(self, records: dict[str, _Record]) -> None:
        body = {"format": FILE_FORMAT, "keys": [_to_json(r) for r in records.values()]}
        text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
        tmp: str | None = None
        try:
            # mkstemp creates the file with mode 0o600, in the same directory (same filesystem)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            tmp = None
        except OSError as exc:
            raise KeyStoreError(f"cannot write keys file {self.path}: {exc.strerror}") from None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        with self._lock:
            self._snapshot = None  # this instance sees its own change on the next verify()
