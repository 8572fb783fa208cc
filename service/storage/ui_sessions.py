"""Clinician view sessions in the database, so that they can be ended server-side.

The browser's signed cookie carries a random session id; only its SHA-256 is stored here,
with the key it was opened with and when it expires (the cookie's own expiry). A page is
served only while the row exists and has not expired: signing out deletes it, revoking the
key deletes all of that key's, and a copied cookie is worth nothing once its row is gone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.storage.tables import ApiKeyRow, UiSessionRow


def digest(session_id: str) -> str:
    """What is stored of a session id: 256 random bits, so a plain SHA-256 suffices."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def open_session(s: Session, session_id: str, key_id: str, expires_at: datetime) -> None:
    """Store a new session, and drop the expired ones (of anyone) while here."""
    s.execute(delete(UiSessionRow).where(UiSessionRow.expires_at <= datetime.now(UTC)))
    s.add(UiSessionRow(id_sha256=digest(session_id), key_id=key_id, expires_at=expires_at))
    s.flush()


def session_key(s: Session, session_id: str, key_id: str) -> ApiKeyRow | None:
    """The active key of a live session opened with `key_id`; None if the session was
    ended, has expired, or its key was revoked. One query."""
    query = (
        select(ApiKeyRow)
        .join(UiSessionRow, UiSessionRow.key_id == ApiKeyRow.key_id)
        .where(
            UiSessionRow.id_sha256 == digest(session_id),
            UiSessionRow.key_id == key_id,
            UiSessionRow.expires_at > datetime.now(UTC),
            ApiKeyRow.revoked_at.is_(None),
        )
    )
    return s.scalars(query).first()


def end_session(s: Session, session_id: str) -> None:
    s.execute(delete(UiSessionRow).where(UiSessionRow.id_sha256 == digest(session_id)))


def end_sessions_of(s: Session, key_id: str) -> None:
    """End every session opened with the key (it is being revoked)."""
    s.execute(delete(UiSessionRow).where(UiSessionRow.key_id == key_id))
