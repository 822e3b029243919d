"""The call events the adapter has seen, kept durably until each call is published.

Every event is a row (insert-only, unique per call and fingerprint), so duplicates
are no-ops and the order of arrival does not matter: the call is folded from its rows
when it is due. A second table says which calls are published. A restart loses
nothing: the sweeper publishes what is due and not yet published.
SQLite by default (`KANAAL_PHONE_DATABASE_URL`), PostgreSQL works the same;
the schema is Alembic's, upgraded at start.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from kanaal.common.database import database_reachable, migrate
from kanaal.phone.cti import CallEvent, EventKind

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "phone_alembic_version"

metadata = MetaData()

call_events = Table(
    "phone_call_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(200), nullable=False, index=True),
    Column("fingerprint", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("received_at", Float, nullable=False),
    Column("event", Text, nullable=False),
    UniqueConstraint("call_id", "fingerprint", name="uq_phone_call_event"),
)

published_calls = Table(
    "phone_published_calls",
    metadata,
    Column("call_id", String(200), primary_key=True),
    Column("contact_id", String(36), nullable=False),
    Column("published_at", Float, nullable=False),
)


class CallStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        await migrate(self.engine, script_location=MIGRATIONS_DIR, version_table=VERSION_TABLE)

    async def reachable(self) -> bool:
        return await database_reachable(self.engine)

    async def add(self, event: CallEvent) -> bool:
        """Keep the event; False when the same event was kept before."""
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(call_events).values(
                        call_id=event.call_id,
                        fingerprint=event.fingerprint,
                        kind=event.kind.value,
                        received_at=event.received_at.timestamp(),
                        event=event.to_json(),
                    )
                )
        except IntegrityError:
            return False
        return True

    async def events(self, call_id: str) -> list[CallEvent]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(call_events.c.event)
                .where(call_events.c.call_id == call_id)
                .order_by(call_events.c.id)
            )
            return [CallEvent.from_json(row.event) for row in rows]

    async def is_published(self, call_id: str) -> bool:
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(published_calls.c.call_id).where(published_calls.c.call_id == call_id)
            )
            return found is not None

    async def mark_published(self, call_id: str, contact_id: str, at: datetime) -> None:
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(published_calls).values(
                        call_id=call_id, contact_id=contact_id, published_at=at.timestamp()
                    )
                )
        except IntegrityError:
            pass  # published twice (a race with the sweeper): the dossier keeps one

    async def candidates(self, settled_before: datetime, started_before: datetime) -> list[str]:
        """Unpublished calls: hung up before `settled_before`, or begun before `started_before`."""
        query = (
            select(
                call_events.c.call_id,
                func.min(call_events.c.received_at).label("first"),
            )
            .where(call_events.c.call_id.not_in(select(published_calls.c.call_id)))
            .group_by(call_events.c.call_id)
        )
        hangups = (
            select(call_events.c.call_id, func.min(call_events.c.received_at).label("hung_up"))
            .where(call_events.c.kind == EventKind.HANGUP.value)
            .where(call_events.c.call_id.not_in(select(published_calls.c.call_id)))
            .group_by(call_events.c.call_id)
        )
        async with self.engine.connect() as connection:
            first = {r.call_id: r.first for r in await connection.execute(query)}
            hung = {r.call_id: r.hung_up for r in await connection.execute(hangups)}
        due = [c for c, t in hung.items() if t <= settled_before.timestamp()]
        due += [c for c, t in first.items() if c not in hung and t <= started_before.timestamp()]
        return sorted(due)

    async def purge(self, published_before: datetime) -> int:
        """Forget calls published before the given time (their numbers are personal data)."""
        old = select(published_calls.c.call_id).where(
            published_calls.c.published_at < published_before.timestamp()
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(
                delete(call_events).where(call_events.c.call_id.in_(old))
            )
            await connection.execute(
                delete(published_calls).where(
                    published_calls.c.published_at < published_before.timestamp()
                )
            )
        return int(result.rowcount or 0)


def now_utc() -> datetime:
    return datetime.now(UTC)
