"""Mark the stored risks the background rescorer wrote after a change of model.

A rescored risk (service/scoring/rescoring.py) is the clinic's new model applied to
sessions it already had, not an answer to a write of the EHR's: the monitoring window
counts the clients the service answered for in its days, so it leaves these out
(service.storage.repository.window_clients). Existing rows were all answers: false.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(
            sa.Column("rescored", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("rescored")
