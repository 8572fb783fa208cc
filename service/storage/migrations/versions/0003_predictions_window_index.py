"""An index of each clinic's stored risks by time, for the monitoring window.

The window's clients are those with a risk stored since a date
(service.storage.repository.window_clients): with (clinic_id, computed_at, client_id) the
database reads just the window's part of a clinic's history, from the index alone, and
finds the window's oldest risk in one look-up, instead of visiting every risk the clinic
ever stored.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_predictions_clinic_computed_at",
        "predictions",
        ["clinic_id", "computed_at", "client_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_clinic_computed_at", table_name="predictions")
