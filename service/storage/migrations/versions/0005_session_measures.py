"""Keep each stored session's measures in columns beside its payload.

The monitoring window of a large clinic read every session's JSON payload and parsed it
in Python, which was most of its query's time on PostgreSQL (bench/monitoring_service.py):
the measures (WAI-SR subscale means, SRS, ORS and PHQ-9 totals) are now read from the
payload once, when a session is written, by the repository's one reader
(service.storage.repository.session_measures), and the window and the export read the
columns. The rows stored before this revision get theirs here, from the same reader, in
pages of BATCH rows read in key order (a clinic's history never sits in memory at once);
the payload itself is unchanged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from service.storage.repository import MEASURE_COLUMNS, measure_columns

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000
_KEY = ("clinic_id", "client_id", "number")


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for column in MEASURE_COLUMNS:
            batch.add_column(sa.Column(column, sa.Float(), nullable=True))
    sessions = sa.table(
        "sessions",
        *(sa.column(name) for name in _KEY),
        sa.column("payload", sa.JSON()),
        *(sa.column(name, sa.Float()) for name in MEASURE_COLUMNS),
    )
    fill = (
        sa.update(sessions)
        .where(*(sessions.c[name] == sa.bindparam(f"k_{name}") for name in _KEY))
        .values({name: sa.bindparam(f"v_{name}") for name in MEASURE_COLUMNS})
    )
    connection = op.get_bind()
    key = sa.tuple_(*(sessions.c[name] for name in _KEY))
    page = (
        sa.select(*(sessions.c[name] for name in _KEY), sessions.c.payload)
        .order_by(*(sessions.c[name] for name in _KEY))
        .limit(BATCH)
    )
    after: tuple[object, ...] | None = None
    while True:  # pages in key order, each after the last: memory bounded by BATCH rows
        rows = connection.execute(page if after is None else page.where(key > sa.tuple_(*after)))
        batch_rows = [_filled(row) for row in rows]
        if not batch_rows:
            return
        connection.execute(fill, batch_rows)
        after = tuple(batch_rows[-1][f"k_{name}"] for name in _KEY)


def _filled(row: Sequence[Any]) -> dict[str, Any]:
    """The update's parameters for one stored session: its key, its measures."""
    keys = {f"k_{name}": value for name, value in zip(_KEY, row[:3], strict=True)}
    return keys | {f"v_{name}": v for name, v in measure_columns(row[3] or {}).items()}


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for column in MEASURE_COLUMNS:
            batch.drop_column(column)
