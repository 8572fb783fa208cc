"""API keys in the database, with the token format and the key checks of service.security.api_keys.

With several workers (and several hosts) sharing one database, a key created or revoked
anywhere takes effect everywhere within `cache_seconds`, without a file to share. A token is
answered from memory for that long, so a prediction does not pay for a query; and if the
database is down, the last answer is kept however old (stale-if-error), so stateless
predictions keep working through a database outage.
"""

from __future__ import annotations

import builtins
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.security.api_keys import (
    _DUMMY_SHA256,
    _TOKEN_RE,
    SCOPES,
    TOKEN_PREFIX,
    ApiKey,
    KeyStoreError,
    _check_name,
    _check_scopes,
    _check_tenant,
    _digest,
)
from service.storage import ui_sessions
from service.storage.engine import StorageUnavailable, session_scope
from service.storage.repository import ensure_clinic
from service.storage.tables import ApiKeyRow
from training.vocabulary import ID_RULE, is_id

# Bounds memory when a client sends many distinct bad tokens; ~200 bytes per entry.
MAX_CACHED = 10_000
_Cached = tuple[ApiKey | None, float]  # (what the token verified to, monotonic time checked)


def _check_therapist(therapist_id: str | None) -> str | None:
    if therapist_id is not None and not is_id(therapist_id):
        raise KeyStoreError(f"therapist_id: value {therapist_id!r} must be {ID_RULE}")
    return therapist_id


def _api_key(row: ApiKeyRow) -> ApiKey:
    created = row.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    scopes = _check_scopes(row.scopes.split(","))
    return ApiKey(row.key_id, row.name, row.clinic_id, scopes, created, row.therapist_id)


class DbKeyStore:
    """Create, list and revoke keys, and verify tokens with a short in-memory cache."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        cache_seconds: float = 5.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        prepare: Callable[[], None] | None = None,
    ) -> None:
        self.factory = factory
        self._prepare = prepare  # e.g. migrations deferred while the database was away
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def create(
        self, name: str, tenant: str, scopes: Iterable[str], therapist_id: str | None = None
    ) -> tuple[ApiKey, str]:
        """Add a key for a clinic (the tenant) and return it with its token; the token is not
        stored and not recoverable.

        Raises:
            KeyStoreError: a bad name, tenant, scope or therapist id.
            StorageUnavailable: the database cannot be reached.
        """
        name, tenant, granted = _check_name(name), _check_tenant(tenant), _check_scopes(scopes)
        therapist_id = _check_therapist(therapist_id)
        secret = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with session_scope(self.factory) as s:
            ensure_clinic(s, tenant)
            key_id = secrets.token_hex(6)
            while s.get(ApiKeyRow, key_id) is not None:  # 48 random bits: practically never
                key_id = secrets.token_hex(6)
            row = ApiKeyRow(
                key_id=key_id,
                clinic_id=tenant,
                name=name,
                sha256=_digest(secret),
                scopes=",".join(scope for scope in SCOPES if scope in granted),
                therapist_id=therapist_id,
                created_at=now,
                revoked_at=None,
            )
            s.add(row)
            s.flush()
            key = _api_key(row)
        return key, f"{TOKEN_PREFIX}_{key_id}_{secret}"

    def verify(self, token: str) -> ApiKey | None:
        """The key a token belongs to, or None (malformed, unknown, wrong secret, revoked).

        Answered from memory if checked less than cache_seconds ago; otherwise the database
        is asked, and if it cannot be reached the last answer stands, however old.

        Raises:
            StorageUnavailable: the database cannot be reached and this token was never
                checked by this process.
        """
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            return None
        cache_key = _digest(token)
        now = self._clock()
        cached = self._cache.get(cache_key)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        try:
            key = self._lookup(match["key_id"], _digest(match["secret"]))
        except StorageUnavailable:
            if cached is not None:
                return cached[0]
            raise
        self._remember(cache_key, key, now)
        return key

    def active(self, key_id: str) -> ApiKey | None:
        """The key with this id if it exists and is not revoked (a browser session holds the
        key id, never the token, and is honoured only while its key stays active)."""
        if self._prepare is not None:
            self._prepare()
        with session_scope(self.factory) as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.revoked_at is not None:
                return None
            return _api_key(row)

    def open_session(self, session_id: str, key_id: str, expires_at: datetime) -> None:
        """Record a clinician view session opened with the key (service.storage.ui_sessions)."""
        with session_scope(self.factory) as s:
            ui_sessions.open_session(s, session_id, key_id, expires_at)

    def session_key(self, session_id: str, key_id: str) -> ApiKey | None:
        """The key of a live session, asked afresh on every page (never cached): None once
        the session was ended, expired or its key revoked."""
        if self._prepare is not None:
            self._prepare()
        with session_scope(self.factory) as s:
            row = ui_sessions.session_key(s, session_id, key_id)
            return None if row is None else _api_key(row)

    def end_session(self, session_id: str) -> None:
        """Sign-out: the session's cookie, even copied, opens nothing any more."""
        with session_scope(self.factory) as s:
            ui_sessions.end_session(s, session_id)

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """(found, key) from memory alone: a request checks this on the event loop and
        calls `verify` (which may query the database) in a thread only when not found."""
        entry = self._cache.get(_digest(token))
        if entry is not None and self._clock() - entry[1] < self.cache_seconds:
            return True, entry[0]
        return False, None

    def list(self, tenant: str | None = None) -> builtins.list[ApiKey]:
        """Keys that are not revoked (of one clinic, or all), oldest first."""
        query = select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None))
        if tenant is not None:
            query = query.where(ApiKeyRow.clinic_id == tenant)
        with session_scope(self.factory) as s:
            rows = s.scalars(query.order_by(ApiKeyRow.created_at, ApiKeyRow.key_id))
            return [_api_key(row) for row in rows]

    def revoke(self, key_id: str) -> None:
        """Revoke a key: this process stops accepting it at once, others within cache_seconds;
        its clinician view sessions end at once everywhere.

        Raises:
            KeyStoreError: no such key, or it was already revoked.
        """
        with session_scope(self.factory) as s:
            row = s.get(ApiKeyRow, key_id, with_for_update=True)
            if row is None:
                raise KeyStoreError(
                    f"key_id: value {key_id!r} must be the id of a key "
                    "(see `dropout-risk keys list`)"
                )
            if row.revoked_at is not None:
                revoked = row.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ")
                raise KeyStoreError(f"key_id: value {key_id!r} was already revoked at {revoked}")
            row.revoked_at = datetime.now(UTC)
            ui_sessions.end_sessions_of(s, key_id)  # in the same transaction as the revocation
        self._forget(key_id)

    def _lookup(self, key_id: str, secret_sha256: str) -> ApiKey | None:
        """The work done does not depend on whether the key id exists: an unknown id is
        compared against a dummy hash, in constant time like a known one."""
        if self._prepare is not None:
            self._prepare()
        with session_scope(self.factory) as s:
            row = s.get(ApiKeyRow, key_id)
            expected = row.sha256 if row is not None else _DUMMY_SHA256
            same = hmac.compare_digest(secret_sha256, expected)
            if row is None or not same or row.revoked_at is not None:
                return None
            return _api_key(row)

    def _remember(self, cache_key: str, key: ApiKey | None, now: float) -> None:
        with self._lock:
            self._cache.pop(cache_key, None)  # re-inserted last: the dict stays oldest-first
            while len(self._cache) >= MAX_CACHED:
                del self._cache[next(iter(self._cache))]
            self._cache[cache_key] = (key, now)

    def _forget(self, key_id: str) -> None:
        with self._lock:
            for cache_key, (key, _) in builtins.list(self._cache.items()):
                if key is not None and key.key_id == key_id:
                    del self._cache[cache_key]
