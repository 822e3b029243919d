"""The transactional outbox: messages are committed with the change that caused them, then relayed.

A message is written in the same transaction as the contact it announces, so it
exists exactly when the contact does. The relay publishes unsent rows (persistent,
confirmed) and marks them sent; a crash between publish and mark sends the row again
after a restart: at-least-once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._wanted = asyncio.Event()

    def wake(self) -> None:
        """Ask the running relay for a pass now (something was just committed)."""
        self._wanted.set()

    async def relay(self) -> int:
        """Publish everything unsent; returns how many rows were published.

        A batch of rows is published with its confirms in flight together (in order on
        one channel), then marked sent in one update. A failure (the broker is away)
        ends the pass after marking what did go out; the rest waits for the next pass.
        """
        published = 0
        async with self._lock:
            while True:
                rows = await self._unsent()
                if not rows:
                    return published
                results = await asyncio.gather(
                    *(self._publish(row) for row in rows), return_exceptions=True
                )
                sent = [row.id for row, result in zip(rows, results, strict=True) if result is None]
                await self._mark_sent(sent)
                published += len(sent)
                for result in results:
                    if isinstance(result, BaseException):
                        raise result
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
        """Relay when woken, and at least every `interval` seconds.

        The timed pass repairs what a failed pass or a crash after a commit left behind;
        while one pass runs, new commits gather for the next, so passes grow with the load.
        """
        while True:
            self._wanted.clear()
            await self.relay_quietly()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), timeout=interval)

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
        log.debug(
            "outbox message published",
            outbox_id=row.id,
            message_id=row.message_id,
            routing_key=row.routing_key,
        )

    async def _mark_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids))
                .values(published_at=self._clock())
                .execution_options(synchronize_session=False)
            )
        log.info("outbox messages published", count=len(ids), last_outbox_id=ids[-1])
