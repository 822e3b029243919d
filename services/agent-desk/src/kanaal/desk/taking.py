"""Taking the next piece of work: basic.get in the agent's order, claim in the dossier, ack.

Why basic.get and not a consumer: an agent asks for one item when they are free, and the
work queues are quorum queues with a delivery limit. Every requeue (a nack, or a channel
closed while it holds a delivery) adds one to the message's `x-delivery-count`, and at
the limit RabbitMQ dead-letters it. So "next" never peeks: to find the oldest item
across queues it asks the dossier since when each queue's oldest unclaimed case waits
(`GET /queues`), orders the agent's queues by that (urgent partners first, the agent's
configured order breaking ties), takes one message with basic.get from the first queue
that has one, claims its case through the dossier, and acks it — whether the claim won or
the item was stale (claimed, transferred, escalated, closed). A message is handed back (and so
counted) only when the claim could not be decided: the dossier unreachable or failing.
A taken item is held unacked only for the length of one claim, on a channel of its own;
if the desk dies meanwhile, RabbitMQ hands the item back to its queue.

The dossier's claim is atomic, so two desks (or two agents) can never both win one
case; the broker's basic.get gives each message to one caller. Per agent, calls are
serialised here, so one agent's parallel clicks cannot pass their capacity.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

import aio_pika
import aiormq
from pydantic import ValidationError

from kanaal.common.agents import AgentConfig
from kanaal.common.contract import WorkItem
from kanaal.common.logging import get_logger
from kanaal.desk.dossier import DossierClient, DossierError, Stale
from kanaal.desk.served import ServedQueues, take_order

log = get_logger(__name__)

#: How many stale items one "next" acks before it gives up for now (a queue full of them).
MAX_SKIPS: Final = 500
#: How long a queue found missing is not asked again (the router declares urgent partners).
MISSING_FOR: Final = 30.0


class Outcome(StrEnum):
    CLAIMED = "claimed"
    EMPTY = "empty"
    AT_CAPACITY = "at_capacity"


@dataclass
class NextResult:
    outcome: Outcome
    held: int
    capacity: int
    item: WorkItem | None = None
    taken_from: str | None = None
    already_held: bool = False
    skipped: dict[str, int] = field(default_factory=dict)
    #: How often the taken item had been handed back before (its `x-delivery-count`).
    redelivered: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.outcome.value,
            "held": self.held,
            "capacity": self.capacity,
            "case_ref": self.item.case_ref if self.item else None,
            "contact_id": str(self.item.contact_id) if self.item else None,
            "queue": self.item.queue if self.item else None,
            "taken_from": self.taken_from,
            "channel": self.item.channel if self.item else None,
            "already_held": self.already_held,
            "skipped": self.skipped,
            "redelivered": self.redelivered,
        }


class WorkTaker:
    def __init__(self, connection: aio_pika.abc.AbstractConnection, dossier: DossierClient) -> None:
        self._connection = connection
        self._dossier = dossier
        self._locks: dict[str, asyncio.Lock] = {}
        self._missing: dict[str, float] = {}
        self._ages: asyncio.Future[list[dict[str, Any]]] | None = None

    def _lock(self, agent_id: str) -> asyncio.Lock:
        return self._locks.setdefault(agent_id, asyncio.Lock())

    def _known_missing(self, queue: str) -> bool:
        since = self._missing.get(queue)
        return since is not None and time.monotonic() - since < MISSING_FOR

    async def next(self, agent: AgentConfig, token: str, served: ServedQueues) -> NextResult:
        """Claim the most urgent, then oldest, item of the agent's queues, if any."""
        async with self._lock(agent.id):
            held = len(await self._dossier.held_cases(token))
            if held >= agent.capacity:
                return NextResult(Outcome.AT_CAPACITY, held, agent.capacity)
            result = await self._take(agent, token, served)
            result.held = held + (1 if result.item and not result.already_held else 0)
            return result

    async def _oldest_since(self, token: str) -> dict[str, datetime | None]:
        """Work queue -> since when its oldest unclaimed case waits; {} if the dossier fails
        (then the configured order alone decides, as a claim would fail anyway).

        Concurrent calls share the one request in flight (an answer at most that old), so many
        agents pressing "next" at once cost the dossier one aggregate query, not many.
        """
        if self._ages is None or self._ages.done():
            self._ages = asyncio.ensure_future(self._dossier.queues_waiting(token))
        try:
            rows = await asyncio.shield(self._ages)
        except DossierError as exc:
            log.warning("queue ages unknown; configured order", status=exc.status)
            return {}
        return {
            str(row["queue"]): datetime.fromisoformat(row["oldest_since"])
            for row in rows
            if row.get("oldest_since")
        }

    async def _take(self, agent: AgentConfig, token: str, served: ServedQueues) -> NextResult:
        skipped: dict[str, int] = {}
        order = take_order(served.lookup, await self._oldest_since(token))
        channel = await self._connection.channel()
        try:
            for source, _work_queue in order:
                if self._known_missing(source):
                    continue
                while sum(skipped.values()) < MAX_SKIPS:
                    try:
                        queue = await channel.get_queue(source, ensure=False)
                        message = await queue.get(no_ack=False, fail=False, timeout=10)
                    except aiormq.exceptions.ChannelNotFoundEntity:
                        # Not declared (an urgent partner before the router ran): skip it a
                        # while. The 404 closed the channel; nothing was held on it.
                        self._missing[source] = time.monotonic()
                        channel = await self._connection.channel()
                        break
                    if message is None:
                        break
                    claimed = await self._claim(message, source, token, skipped)
                    if claimed is not None:
                        item, already = claimed
                        log.info(
                            "work taken",
                            agent=agent.id,
                            case_ref=item.case_ref,
                            work_queue=source,
                            skipped=sum(skipped.values()),
                        )
                        return NextResult(
                            Outcome.CLAIMED,
                            0,
                            agent.capacity,
                            item=item,
                            taken_from=source,
                            already_held=already,
                            skipped=skipped,
                            redelivered=_delivery_count(message),
                        )
            return NextResult(Outcome.EMPTY, 0, agent.capacity, skipped=skipped)
        finally:
            if not channel.is_closed:
                await channel.close()

    async def _claim(
        self,
        message: aio_pika.abc.AbstractIncomingMessage,
        source: str,
        token: str,
        skipped: dict[str, int],
    ) -> tuple[WorkItem, bool] | None:
        """Claim one taken message's case: the item when won, None when it was skipped."""
        try:
            item = WorkItem.model_validate_json(message.body)
        except ValidationError:
            # Never valid: straight to dead.<queue> (the queue dead-letters rejects).
            await message.reject(requeue=False)
            skipped["invalid"] = skipped.get("invalid", 0) + 1
            log.warning("invalid work item dead-lettered", message_id=message.message_id)
            return None
        try:
            result = await self._dossier.claim(token, item.case_ref, item.contact_id, item.queue)
        except DossierError as exc:
            # Undecided (the dossier down or failing): back to the head of its queue, once.
            await message.nack(requeue=True)
            log.warning(
                "claim undecided; item handed back",
                case_ref=item.case_ref,
                work_queue=source,
                status=exc.status,
            )
            raise DossierError(
                exc.status,
                "claim_undecided",
                f"the dossier could not decide the claim of {item.case_ref} ({exc.detail}); "
                f"the item went back to {source}, try again shortly",
            ) from exc
        except BaseException:
            # Cancelled mid-claim: the item goes back to the head of its queue as well.
            await message.nack(requeue=True)
            raise
        await message.ack()
        if isinstance(result, Stale):
            skipped[result.reason] = skipped.get(result.reason, 0) + 1
            return None
        return item, not bool(result.get("claimed", True))


def _delivery_count(message: aio_pika.abc.AbstractIncomingMessage) -> int:
    count = (message.headers or {}).get("x-delivery-count", 0)
    return count if isinstance(count, int) else 0


async def queue_depths(
    connection: aio_pika.abc.AbstractConnection, names: list[str]
) -> dict[str, int | None]:
    """Ready messages per queue by passive declare; None for a queue that does not exist."""
    depths: dict[str, int | None] = {}
    channel = await connection.channel()
    try:
        for name in names:
            try:
                # A fresh channel per call: a robust channel caches passive declarations
                # (and their counts), so a long-lived one would report stale depths.
                declared = await channel.declare_queue(name, passive=True)
                depths[name] = declared.declaration_result.message_count
            except aiormq.exceptions.ChannelNotFoundEntity:
                depths[name] = None
                channel = await connection.channel()
    finally:
        if not channel.is_closed:
            await channel.close()
    return depths
