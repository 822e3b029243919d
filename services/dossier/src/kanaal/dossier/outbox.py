"""The transactional outbox: messages are committed with the change that caused them, then relayed.

A message is written in the same transaction as the contact it announces, so it
exists exactly when the contact does. The relay publishes unsent rows (persistent,
confirmed) and marks them sent; a crash between publish and mark sends the row again
after a restart: at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kanaal.common.logging import get_logger
from kanaal.common.messaging import Publisher
from kanaal.common.topology import EXCHANGES, Exchange
from kanaal.dossier.clock import Clock, utc_now
from kanaal.dossier.models import OutboxRow

BATCH_SIZE: Final = 100
EXCHANGES_BY_NAME: Final[dict[str, Exchange]] = {e.name: e for e in EXCHANGES}

log = get_logger(__name__)


def outbox_message(
    payload: BaseModel,
    *,
    exchange: Exchange,
    routing_key: str,
    message_type: str,
    message_id: str,
    now: datetime,
) -> OutboxRow:
    """A row to add to the session that makes the change the message announces."""
    return OutboxRow(
        message_id=message_id,
        exchange=exchange.name,
        routing_key=routing_key,
        message_type=message_type,
        body=payload.model_dump_json(),
        created_at=now,
        published_at=None,
    )


class OutboxRelay:
    """Publishes unsent outbox rows in order; one relay pass at a time per process."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        publisher: Publisher,
        clock: Clock = utc_now,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock
        self._lock = asyncio.Lock()

    async def relay(self) -> int:
        """Publish everything unsent; returns how many rows were published.

        Stops at the first failure (the broker is away) and leaves the rest for the
        next pass, so the order of messages is kept.
        """
        published = 0
        async with self._lock:
            while True:
                rows = await self._unsent()
                for row in rows:
                    await self._publish(row)
                    published += 1
                if len(rows) < BATCH_SIZE:
                    return published

    async def relay_quietly(self) -> int:
        """:meth:`relay`, logging a failure instead of raising: the next pass retries."""
        try:
            return await self.relay()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("outbox relay failed; unsent messages stay for the next pass")
            return 0

    async def run_forever(self, interval: float) -> None:
        """Relay now and then every `interval` seconds: repairs a crash after a commit."""
        while True:
            await self.relay_quietly()
            await asyncio.sleep(interval)

    async def unsent_count(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.published_at.is_(None))
            )
            return int(count or 0)

    async def _unsent(self) -> list[OutboxRow]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OutboxRow)
                .where(OutboxRow.published_at.is_(None))
                .order_by(OutboxRow.id)
                .limit(BATCH_SIZE)
            )
            return list(rows.all())

    async def _publish(self, row: OutboxRow) -> None:
        exchange = EXCHANGES_BY_NAME.get(row.exchange)
        if exchange is None:
            raise LookupError(f"outbox row {row.id} names an unknown exchange {row.exchange!r}")
        await self._publisher.publish(
            row.body.encode(),
            exchange=exchange,
            routing_key=row.routing_key,
            message_type=row.message_type,
            message_id=row.message_id,
        )
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == row.id)
                .values(published_at=self._clock())
                .execution_options(synchronize_session=False)
            )
        log.info(
            "outbox message published",
            outbox_id=row.id,
            message_id=row.message_id,
            routing_key=row.routing_key,
        )
