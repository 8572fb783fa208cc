"""The schema, as SQLAlchemy ORM classes; the migrations in migrations/ create exactly this.

Every table that holds clinical data is keyed by clinic first, so every query the repository
makes is scoped to one clinic by construction. Times are UTC and timezone-aware in Python
whatever the backend (SQLite keeps no zone: see UtcDateTime). Only repository.py uses these
classes; the rest of the service sees plain dataclasses.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so later migrations can drop or alter them by name.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """DateTime(timezone=True) that takes aware datetimes only and always returns UTC ones.

    PostgreSQL stores a timestamptz and answers in the session's zone; SQLite stores text
    without a zone. Converting at this one boundary makes both behave the same, and SQLite's
    text stays sortable because every value in it is UTC in one format.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a naive datetime cannot be stored: give a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKeyRow(Base):
    """An API key; the secret's SHA-256 only, never the secret."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    clinic_id: Mapped[str] = mapped_column(String(64), ForeignKey("clinics.id"))
    name: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # comma-separated, in SCOPES order
    therapist_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Client(Base):
    __tablename__ = "clients"

    clinic_id: Mapped[str] = mapped_column(String(64), ForeignKey("clinics.id"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    age: Mapped[int | None] = mapped_column(Integer)
    gender: Mapped[str | None] = mapped_column(String(64))
    therapist_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _client_fk() -> ForeignKeyConstraint:
    """Rows that belong to a client reference it by (clinic, client): never across clinics."""
    return ForeignKeyConstraint(
        ["clinic_id", "client_id"], ["clients.clinic_id", "clients.client_id"]
    )


class SessionRow(Base):
    """One session's scores; payload is the session object exactly as the API received it,
    and the measure columns what repository.session_measures reads from it when it is
    written (WAI-SR subscale means, SRS, ORS and PHQ-9 totals; NULL: not taken), so the
    export and the monitoring window read numbers, not JSON (migration 0005)."""

    __tablename__ = "sessions"
    __table_args__ = (_client_fk(),)

    clinic_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    session_date: Mapped[date | None] = mapped_column(Date)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    wai_goal: Mapped[float | None] = mapped_column(Float)
    wai_task: Mapped[float | None] = mapped_column(Float)
    wai_bond: Mapped[float | None] = mapped_column(Float)
    srs_total: Mapped[float | None] = mapped_column(Float)
    ors_total: Mapped[float | None] = mapped_column(Float)
    phq9_total: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Outcome(Base):
    __tablename__ = "outcomes"
    __table_args__ = (_client_fk(),)

    clinic_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dropout: Mapped[bool] = mapped_column(Boolean)
    ended_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PredictionRow(Base):
    """A stored risk; body is the full prediction response as it was answered."""

    __tablename__ = "predictions"
    __table_args__ = (
        _client_fk(),
        Index("ix_predictions_clinic_client_id", "clinic_id", "client_id", "id"),
        # the monitoring window: a clinic's risks since a date (migration 0003)
        Index("ix_predictions_clinic_computed_at", "clinic_id", "computed_at", "client_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clinic_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    model_version: Mapped[str] = mapped_column(String(64))
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    probability: Mapped[float] = mapped_column(Float)
    risk_level: Mapped[str] = mapped_column(String(10))
    landmark: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    level_changed: Mapped[bool] = mapped_column(Boolean)
    # written by the background rescorer after a change of model, not in answer to a write
    rescored: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class FlagAck(Base):
    """A clinician saw a client's flag; active until a new risk changes the level."""

    __tablename__ = "flag_acks"
    __table_args__ = (
        _client_fk(),
        Index("ix_flag_acks_clinic_client", "clinic_id", "client_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    clinic_id: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str] = mapped_column(String(64))
    prediction_id: Mapped[int] = mapped_column(Integer, ForeignKey("predictions.id"))
    risk_level: Mapped[str] = mapped_column(String(10))
    acknowledged_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean)


class AuditEntry(Base):
    """Who read or wrote what and when; clients only as keyed pseudonyms, never ids."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_clinic_at", "clinic_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    clinic_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    client_pseudonym: Mapped[str | None] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(64))


class CdsJti(Base):
    """CDS Hooks JWT ids seen and not yet expired: a replayed JWT is refused by every worker."""

    __tablename__ = "cds_jti"

    iss: Mapped[str] = mapped_column(String(255), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class UiSessionRow(Base):
    """A signed-in clinician view session. Only the SHA-256 of its random id is stored (the
    id lives in the browser's signed cookie): a page is served only while this row exists,
    so sign-out and key revocation end the session at once, on every worker."""

    __tablename__ = "ui_sessions"
    __table_args__ = (
        Index("ix_ui_sessions_key_id", "key_id"),
        Index("ix_ui_sessions_expires_at", "expires_at"),
    )

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(12), ForeignKey("api_keys.key_id"))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
