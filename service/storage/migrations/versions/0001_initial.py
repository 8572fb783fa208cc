"""The initial schema: clinics, keys, clients, sessions, outcomes, risks, flags, audit, JWT ids.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLIENT = ["clinic_id", "client_id"]
CLIENT_REF = ["clients.clinic_id", "clients.client_id"]


def _at(name: str, nullable: bool = False) -> sa.Column[datetime]:
    """A UTC time (models.UtcDateTime stores exactly this type)."""
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _text(name: str, length: int, nullable: bool = False) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _serial(name: str = "id") -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), autoincrement=True, nullable=False)


def _client_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        CLIENT, CLIENT_REF, name=op.f(f"fk_{table}_clinic_id_client_id_clients")
    )


def upgrade() -> None:
    op.create_table(
        "clinics",
        _text("id", 64),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinics")),
    )
    op.create_table(
        "api_keys",
        _text("key_id", 12),
        _text("clinic_id", 64),
        _text("name", 64),
        _text("sha256", 64),
        _text("scopes", 200),
        _text("therapist_id", 64, nullable=True),
        _at("created_at"),
        _at("revoked_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_api_keys_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "clients",
        _text("clinic_id", 64),
        _text("client_id", 64),
        sa.Column("age", sa.Integer(), nullable=True),
        _text("gender", 64, nullable=True),
        _text("therapist_id", 64, nullable=True),
        _at("created_at"),
        _at("updated_at"),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_clients_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("clinic_id", "client_id", name=op.f("pk_clients")),
    )
    op.create_table(
        "sessions",
        _text("clinic_id", 64),
        _text("client_id", 64),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("session_date", sa.Date(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        _at("updated_at"),
        _client_fk("sessions"),
        sa.PrimaryKeyConstraint("clinic_id", "client_id", "number", name=op.f("pk_sessions")),
    )
    op.create_table(
        "outcomes",
        _text("clinic_id", 64),
        _text("client_id", 64),
        sa.Column("dropout", sa.Boolean(), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=False),
        _at("recorded_at"),
        _client_fk("outcomes"),
        sa.PrimaryKeyConstraint("clinic_id", "client_id", name=op.f("pk_outcomes")),
    )
    op.create_table(
        "predictions",
        _serial(),
        _text("clinic_id", 64),
        _text("client_id", 64),
        _at("computed_at"),
        _text("model_version", 64),
        _text("inputs_sha256", 64),
        sa.Column("probability", sa.Float(), nullable=False),
        _text("risk_level", 10),
        sa.Column("landmark", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("level_changed", sa.Boolean(), nullable=False),
        _client_fk("predictions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
    )
    op.create_index(
        "ix_predictions_clinic_client_id", "predictions", ["clinic_id", "client_id", "id"]
    )
    op.create_table(
        "flag_acks",
        _serial(),
        _text("clinic_id", 64),
        _text("client_id", 64),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        _text("risk_level", 10),
        _at("acknowledged_at"),
        _text("actor", 200),
        sa.Column("active", sa.Boolean(), nullable=False),
        _client_fk("flag_acks"),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_flag_acks_prediction_id_predictions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_acks")),
    )
    op.create_index("ix_flag_acks_clinic_client", "flag_acks", ["clinic_id", "client_id"])
    op.create_table(
        "audit_log",
        _serial(),
        _at("at"),
        _text("clinic_id", 64),
        _text("actor", 200),
        _text("action", 64),
        _text("client_pseudonym", 32, nullable=True),
        _text("model_version", 64, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_clinic_at", "audit_log", ["clinic_id", "at"])
    op.create_table(
        "cds_jti",
        _text("iss", 255),
        _text("jti", 255),
        _at("expires_at"),
        sa.PrimaryKeyConstraint("iss", "jti", name=op.f("pk_cds_jti")),
    )


def downgrade() -> None:
    op.drop_table("cds_jti")
    op.drop_index("ix_audit_log_clinic_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_flag_acks_clinic_client", table_name="flag_acks")
    op.drop_table("flag_acks")
    op.drop_index("ix_predictions_clinic_client_id", table_name="predictions")
    op.drop_table("predictions")
    op.drop_table("outcomes")
    op.drop_table("sessions")
    op.drop_table("clients")
    op.drop_table("api_keys")
    op.drop_table("clinics")
