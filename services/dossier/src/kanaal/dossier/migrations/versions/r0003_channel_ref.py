"""Contacts keep the channel's id of what was sent (Message-ID, status thread), for threading.

A reply that answers one of our sent messages (`in_reply_to`) proves which case it
belongs to; the dossier recognises the message by its own source_ref or by the id the
channel gave it when sending (`contact.sent`'s `channel_ref`).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("channel_ref", sa.String(998), nullable=True))
        batch.create_index("ix_contacts_channel_ref", ["channel_ref"])


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_index("ix_contacts_channel_ref")
        batch.drop_column("channel_ref")
