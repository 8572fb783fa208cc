"""Browser sessions of the clinician view: signed cookies and CSRF tokens.

A session cookie holds who signed in (key id, clinic, therapist), when the session ends, a
random session id and a random per-session CSRF secret, signed with HMAC-SHA256 under a
32-byte installation secret kept in a file (created on first use, owner-only, like the
pseudonym key). It never holds the API token: the token is checked once at sign-in. The
session id's SHA-256 is stored in the database (service.storage.ui_sessions) and each page asks
for it and the key afresh, so signing out or revoking the key ends the session at once,
even for a copy of the cookie: a signature alone cannot be taken back.

CSRF: every state-changing form carries a token derived from the session's CSRF secret
(HMAC under the installation secret), compared in constant time. The sign-in form has no
session yet and uses a signed double-submit cookie instead: a random nonce in its own
SameSite=Strict cookie, and in the form the HMAC of that nonce.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.core.secret_files import SecretFileError, load_or_create_secret
from service.security.api_keys import ApiKey

SESSION_COOKIE = "drk_ui_session"
LOGIN_COOKIE = "drk_ui_login"
SESSION_SECONDS = 8 * 60 * 60
LOGIN_SECONDS = 60 * 60  # how long a sign-in form stays usable
COOKIE_PATH = "/ui"
_VERSION = "v2"  # v2: the session id (v1 cookies, without one, are refused)
_MAX_COOKIE = 1024  # a real session cookie is about 250 characters


SessionSecretError = SecretFileError  # a bad session-signing key file


@dataclass(frozen=True)
class UiSession:
    """What a valid session cookie says; `expires` is in Unix seconds."""

    key_id: str
    clinic: str
    therapist_id: str | None
    expires: int
    csrf_secret: str
    session_id: str  # 256 random bits; the database holds its SHA-256


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issues and reads session cookies and makes and checks CSRF tokens."""

    def __init__(self, secret_file: Path, clock: Callable[[], float] = time.time) -> None:
        self._key = load_or_create_secret(secret_file)
        self._clock = clock

    def _mac(self, purpose: bytes, message: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\x00" + message, hashlib.sha256).digest()

    # --- sessions -------------------------------------------------------------------------

    def issue(self, key: ApiKey) -> tuple[str, UiSession]:
        """A new session for a verified key, and its cookie value."""
        session = UiSession(
            key_id=key.key_id,
            clinic=key.tenant,
            therapist_id=key.therapist_id,
            expires=int(self._clock()) + SESSION_SECONDS,
            csrf_secret=secrets.token_hex(16),
            session_id=secrets.token_urlsafe(32),
        )
        payload = {
            "k": session.key_id,
            "c": session.clinic,
            "t": session.therapist_id,
            "e": session.expires,
            "x": session.csrf_secret,
            "s": session.session_id,
        }
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        signed = f"{_VERSION}.{body}"
        return f"{signed}.{_b64(self._mac(b'session', signed.encode()))}", session

    def read(self, value: str | None) -> UiSession | None:
        """The session a cookie value holds, or None if missing, forged, altered or expired."""
        if not value or len(value) > _MAX_COOKIE:
            return None
        signed, _, mac = value.rpartition(".")
        version, _, body = signed.partition(".")
        if version != _VERSION or not body:
            return None
        try:
            given = _unb64(mac)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(b"session", signed.encode())):
            return None
        try:
            payload: Any = json.loads(_unb64(body))
        except (binascii.Error, ValueError):
            return None
        session = _session(payload)
        if session is None or session.expires <= self._clock():
            return None
        return session

    # --- CSRF -----------------------------------------------------------------------------

    def csrf_token(self, session: UiSession) -> str:
        """The token every state-changing form of this session carries."""
        return _b64(self._mac(b"csrf", session.csrf_secret.encode()))

    def check_csrf(self, session: UiSession, token: str | None) -> bool:
        expected = self.csrf_token(session)
        return token is not None and hmac.compare_digest(token.encode(), expected.encode())

    def login_nonce(self) -> str:
        """A fresh nonce for the sign-in form's cookie."""
        return secrets.token_urlsafe(24)

    def login_token(self, nonce: str) -> str:
        """The sign-in form's hidden field for the nonce in its cookie."""
        return _b64(self._mac(b"login", nonce.encode()))

    def check_login(self, nonce: str | None, token: str | None) -> bool:
        if not nonce or not token or len(nonce) > 64:
            return False
        return hmac.compare_digest(token.encode(), self.login_token(nonce).encode())


def _session(payload: Any) -> UiSession | None:
    """A UiSession from a decoded (and already authenticated) payload; None if malformed."""
    if not isinstance(payload, dict):
        return None
    key_id, clinic, therapist = payload.get("k"), payload.get("c"), payload.get("t")
    expires, csrf, session_id = payload.get("e"), payload.get("x"), payload.get("s")
    if not (isinstance(key_id, str) and isinstance(clinic, str) and isinstance(csrf, str)):
        return None
    if not isinstance(session_id, str):
        return None
    if not isinstance(expires, int) or isinstance(expires, bool):
        return None
    if therapist is not None and not isinstance(therapist, str):
        return None
    return UiSession(key_id, clinic, therapist, expires, csrf, session_id)
