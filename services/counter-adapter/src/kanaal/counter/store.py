"""The visits the adapter has checked in and where each stands, kept durably.

The desk events of a visit need its location (for the token) and its state (what
may happen next), so the adapter keeps both. SQLite by default
(`KANAAL_COUNTER_DATABASE_URL`), PostgreSQL works the same;
the schema is Alembic's, upgraded at start.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Column, Float, MetaData, String, Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from kanaal.common.database import database_reachable, migrate
from kanaal.counter.visits import Visit, VisitStatus

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "counter_alembic_version"

metadata = MetaData()

visits = Table(
    "counter_visits",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("location", String(64), nullable=False),
    Column("ticket", String(20), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("checked_in_at", Float, nullable=False),
    Column("called_at", Float, nullable=True),
    Column("desk", String(32), nullable=True),
)

visit_updates = Table(
    "counter_visit_updates",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("visit_id", String(36), nullable=False, index=True),
    Column("event", String(16), nullable=False),
    Column("at", Float, nullable=False),
)


def _time(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class VisitStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        await migrate(self.engine, script_location=MIGRATIONS_DIR, version_table=VERSION_TABLE)

    async def reachable(self) -> bool:
        return await database_reachable(self.engine)

    async def add(self, visit: Visit) -> bool:
        """Keep a checked-in visit; False when it was kept before (a kiosk's retry)."""
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    insert(visits).values(
                        id=str(visit.id),
                        location=visit.location,
                        ticket=visit.ticket,
                        subject=visit.subject,
                        status=visit.status.value,
                        checked_in_at=visit.checked_in_at.timestamp(),
                    )
                )
        except IntegrityError:
            return False
        return True

    async def get(self, visit_id: uuid.UUID) -> Visit | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(select(visits).where(visits.c.id == str(visit_id)))
            ).first()
        if row is None:
            return None
        checked_in_at = _time(row.checked_in_at)
        assert checked_in_at is not None
        return Visit(
            id=uuid.UUID(row.id),
            location=row.location,
            ticket=row.ticket,
            subject=row.subject,
            status=VisitStatus(row.status),
            checked_in_at=checked_in_at,
            called_at=_time(row.called_at),
            desk=row.desk,
        )

    async def has_update(self, update_id: uuid.UUID) -> bool:
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(visit_updates.c.id).where(visit_updates.c.id == str(update_id))
            )
        return found is not None

    async def record(self, visit: Visit, update_id: uuid.UUID, event: str, at: datetime) -> None:
        """The visit's new state and the update that moved it, in one transaction."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(visits)
                .where(visits.c.id == str(visit.id))
                .values(
                    status=visit.status.value,
                    called_at=visit.called_at.timestamp() if visit.called_at else None,
                    desk=visit.desk,
                )
            )
            await connection.execute(
                insert(visit_updates).values(
                    id=str(update_id), visit_id=str(visit.id), event=event, at=at.timestamp()
                )
            )
