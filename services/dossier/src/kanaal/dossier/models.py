"""The dossier's tables as SQLAlchemy models, named after the VNG Klantinteracties / Zaken concepts.

Party = Partij, PartyIdentifier = PartijIdentificator, DigitalAddress = DigitaalAdres,
Case = Zaak, CaseStatus = Status (the zaak's status history), CaseEvent = a line in the
zaak's timeline, Contact = Klantcontact.
The schema itself is owned by the Alembic migrations; these classes must agree with them
(a test compares the two).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: An autoincrementing key: BIGINT on PostgreSQL, INTEGER (the rowid) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out; SQLite stores no zone, so it is added back on reading."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the dossier stores timezone-aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class PartyRow(Base):
    __tablename__ = "parties"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    preferred_channel: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(2))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PartyIdentifierRow(Base):
    __tablename__ = "party_identifiers"
    __table_args__ = (
        UniqueConstraint("type", "value"),
        UniqueConstraint("party_id", "type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(32))


class DigitalAddressRow(Base):
    __tablename__ = "digital_addresses"
    __table_args__ = (
        UniqueConstraint("party_id", "kind", "value"),
        Index("ix_digital_addresses_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(254))


class CaseRow(Base):
    __tablename__ = "cases"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    subject: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    queue: Mapped[str | None] = mapped_column(String(200))
    agent: Mapped[str | None] = mapped_column(String(200))
    #: How the case came to its queue: routed, transferred or escalated (a stale claim says which).
    queue_reason: Mapped[str | None] = mapped_column(String(32))
    sla_due_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(64))
    #: The closed case this one follows up, when a contact came after the reopening window.
    follows_case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid())
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None] = mapped_column(index=True)


class CaseStatusRow(Base):
    """The zaak's status history: every status it had, who set it, when and why."""

    __tablename__ = "case_statuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(2000))


class CaseEventRow(Base):
    """One line of a case's timeline; (message_id, kind) makes a redelivered event a no-op."""

    __tablename__ = "case_events"
    __table_args__ = (UniqueConstraint("message_id", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[dict[str, Any]]


class ContactRow(Base):
    """A stored contact; its primary key is the contact's deterministic id, which is the dedup."""

    __tablename__ = "contacts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid(), primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("cases.id"), index=True)
    party_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(998), index=True)
    entry_point: Mapped[str] = mapped_column(String(998))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime]
    subject: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text())
    message: Mapped[dict[str, Any]]
    registered_at: Mapped[datetime]
    #: Outbound contacts: sent or failed, as the channel's adapter reported it.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    #: The agent who wrote an outbound contact.
    agent: Mapped[str | None] = mapped_column(String(200))
    #: Outbound contacts: the channel's id of what it sent (a Message-ID), which replies quote.
    channel_ref: Mapped[str | None] = mapped_column(String(998), index=True)


class CaseRefCounterRow(Base):
    """The last case number handed out per year."""

    __tablename__ = "case_ref_counters"

    year: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer())


class OutboxRow(Base):
    """A message committed with the change that caused it, published by the relay afterwards."""

    __tablename__ = "outbox"
    __table_args__ = (
        # Only the rows still to publish are indexed: the relay's query stays fast forever.
        Index(
            "ix_outbox_unpublished",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(200))
    exchange: Mapped[str] = mapped_column(String(200))
    routing_key: Mapped[str] = mapped_column(String(255))
    message_type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text())
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None]
