"""The initial dossier schema: parties, cases, contacts, timeline, case numbers, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parties"),
    )
    op.create_table(
        "party_identifiers",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_party_identifiers"),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["parties.id"],
            name="fk_party_identifiers_party_id_parties",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("type", "value", name="uq_party_identifiers_type_value"),
        sa.UniqueConstraint("party_id", "type", name="uq_party_identifiers_party_id_type"),
    )
    op.create_table(
        "digital_addresses",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(254), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_digital_addresses"),
        sa.ForeignKeyConstraint(
            ["party_id"],
            ["parties.id"],
            name="fk_digital_addresses_party_id_parties",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "party_id", "kind", "value", name="uq_digital_addresses_party_id_kind_value"
        ),
    )
    op.create_index("ix_digital_addresses_kind_value", "digital_addresses", ["kind", "value"])
    op.create_table(
        "cases",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ref", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("location", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("queue", sa.String(200), nullable=True),
        sa.Column("agent", sa.String(200), nullable=True),
        sa.Column("opened_at", TIMESTAMP, nullable=False),
        sa.Column("closed_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_cases"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_cases_party_id_parties"),
        sa.UniqueConstraint("ref", name="uq_cases_ref"),
    )
    op.create_index("ix_cases_party_id", "cases", ["party_id"])
    op.create_table(
        "case_events",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("message_id", sa.String(200), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_case_events"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_case_events_case_id_cases"),
        sa.UniqueConstraint("message_id", "kind", name="uq_case_events_message_id_kind"),
    )
    op.create_index("ix_case_events_case_id", "case_events", ["case_id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("case_id", sa.Uuid(), nullable=False),
        sa.Column("party_id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("source_ref", sa.String(998), nullable=False),
        sa.Column("entry_point", sa.String(998), nullable=False),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("received_at", TIMESTAMP, nullable=False),
        sa.Column("subject", sa.String(64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("message", sa.JSON(), nullable=False),
        sa.Column("registered_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name="fk_contacts_case_id_cases"),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], name="fk_contacts_party_id_parties"),
    )
    op.create_index("ix_contacts_case_id", "contacts", ["case_id"])
    op.create_index("ix_contacts_party_id", "contacts", ["party_id"])
    op.create_index("ix_contacts_source_ref", "contacts", ["source_ref"])
    op.create_table(
        "case_ref_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name="pk_case_ref_counters"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BIG_ID, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("exchange", sa.String(200), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("message_type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("published_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    for table in (
        "outbox",
        "case_ref_counters",
        "contacts",
        "case_events",
        "cases",
        "digital_addresses",
        "party_identifiers",
        "parties",
    ):
        op.drop_table(table)
