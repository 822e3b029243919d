"""The phone adapter's first schema: call events and published calls.

The release before this one made the same tables with `create_all` and kept no version:
a database from then is adopted as it is (its rows kept), a new one gets them here.

Revision ID: p0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "phone_call_events" not in existing:
        op.create_table(
            "phone_call_events",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("call_id", sa.String(200), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("received_at", sa.Float, nullable=False),
            sa.Column("event", sa.Text, nullable=False),
            sa.UniqueConstraint("call_id", "fingerprint", name="uq_phone_call_event"),
        )
        op.create_index("ix_phone_call_events_call_id", "phone_call_events", ["call_id"])
    if "phone_published_calls" not in existing:
        op.create_table(
            "phone_published_calls",
            sa.Column("call_id", sa.String(200), primary_key=True),
            sa.Column("contact_id", sa.String(36), nullable=False),
            sa.Column("published_at", sa.Float, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("phone_published_calls")
    op.drop_table("phone_call_events")
