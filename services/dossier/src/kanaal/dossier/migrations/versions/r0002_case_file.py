"""The full case file: party preferences, case SLA/outcome/follow-up, status history, delivery.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("parties") as batch:
        batch.add_column(sa.Column("preferred_channel", sa.String(32), nullable=True))
        batch.add_column(sa.Column("language", sa.String(2), nullable=True))
    # No foreign key on follows_case_id: adding one would make SQLite rebuild `cases`, which
    # other tables reference; the purge clears the reference itself.
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("queue_reason", sa.String(32), nullable=True))
        batch.add_column(sa.Column("sla_due_at", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(64), nullable=True))
        batch.add_column(sa.Column("follows_case_id", sa.Uuid(), nullable=True))
        batch.create_index("ix_cases_closed_at", ["closed_at"])
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("delivery_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("agent", sa.String(200), nullable=True))
    op.create_table(
        "case_statuses",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_case_statuses"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_statuses_case_id_cases"),
    )
    op.create_index("ix_case_statuses_case_id", "case_statuses", ["case_id"])
    # Cases opened before this revision get their opening as the first status.
    op.execute(
        "INSERT INTO case_statuses (case_id, status, at, actor, reason) "
        "SELECT id, status, opened_at, 'dossier', 'status before the history was kept' "
        "FROM cases"
    )


def downgrade() -> None:
    op.drop_table("case_statuses")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("agent")
        batch.drop_column("delivery_status")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index("ix_cases_closed_at")
        batch.drop_column("follows_case_id")
        batch.drop_column("outcome")
        batch.drop_column("sla_due_at")
        batch.drop_column("queue_reason")
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("language")
        batch.drop_column("preferred_channel")
