"""The web adapter's first schema: status threads, submitted contacts, answers, attachments, keys.

Revision ID: w0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "w0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_threads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("case_ref", sa.String(20), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "web_contacts",
        sa.Column("contact_id", sa.String(36), primary_key=True),
        sa.Column("thread_id", sa.String(36), sa.ForeignKey("web_threads.id"), nullable=False),
        sa.Column("source_ref", sa.String(1000), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("attachments", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_web_contacts_thread_id", "web_contacts", ["thread_id"])
    op.create_index("ix_web_contacts_source_ref", "web_contacts", ["source_ref"])
    op.create_table(
        "web_answers",
        sa.Column("contact_id", sa.String(36), primary_key=True),
        sa.Column("thread_id", sa.String(36), sa.ForeignKey("web_threads.id"), nullable=False),
        sa.Column("source_ref", sa.String(1000), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_web_answers_thread_id", "web_answers", ["thread_id"])
    op.create_table(
        "web_attachments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("contact_id", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(127), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("uri", sa.String(2000), nullable=False),
    )
    op.create_index("ix_web_attachments_contact_id", "web_attachments", ["contact_id"])
    op.create_table(
        "web_keys",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    for table in ("web_keys", "web_attachments", "web_answers", "web_contacts", "web_threads"):
        op.drop_table(table)
