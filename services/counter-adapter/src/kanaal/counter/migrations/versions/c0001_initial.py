"""The counter adapter's first schema: visits and the desk updates that moved them.

The release before this one made the same tables with `create_all` and kept no version:
a database from then is adopted as it is (its rows kept), a new one gets them here.

Revision ID: c0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "counter_visits" not in existing:
        op.create_table(
            "counter_visits",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("location", sa.String(64), nullable=False),
            sa.Column("ticket", sa.String(20), nullable=False),
            sa.Column("subject", sa.String(64), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("checked_in_at", sa.Float, nullable=False),
            sa.Column("called_at", sa.Float, nullable=True),
            sa.Column("desk", sa.String(32), nullable=True),
        )
    if "counter_visit_updates" not in existing:
        op.create_table(
            "counter_visit_updates",
            sa.Column("id", sa.String(36), primary_key=True),
            sa.Column("visit_id", sa.String(36), nullable=False),
            sa.Column("event", sa.String(16), nullable=False),
            sa.Column("at", sa.Float, nullable=False),
        )
        op.create_index("ix_counter_visit_updates_visit_id", "counter_visit_updates", ["visit_id"])


def downgrade() -> None:
    op.drop_table("counter_visit_updates")
    op.drop_table("counter_visits")
