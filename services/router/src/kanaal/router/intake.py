"""The router's intake: registered contacts routed, confirmed and acknowledged in batches.

Every contact causes two or three messages (the work item, `contact.routed`, its SLA
timer). Handled one delivery per task, with a confirm awaited per message, FastStream's
consume and publish pipeline was the router's whole cost (160 contacts/s against a raw
relay's 1,800 in tests/bench/test_router_bench.py). The intake therefore speaks AMQP
through aio-pika itself: it takes what the prefetch window delivered, plans each
contact, publishes all resulting messages at once, waits for their confirms together,
lets the service record the batch, and then acknowledges the batch with one `multiple`
ack. A delivery is acked only after everything it caused is confirmed; a failure hands
that delivery back (its messages may then go out twice, with the same ids).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import aio_pika
import aio_pika.abc
import aiormq
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic
from pydantic import ValidationError

from kanaal.common.contract import SCHEMA_VERSION
from kanaal.common.logging import get_logger
from kanaal.common.messaging import (
    DEAD_AT_HEADER,
    DEAD_LETTERED,
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    MAX_REASON_CHARS,
    RETRIED,
    SCHEMA_VERSION_HEADER,
    Refused,
    describe_validation_error,
)
from kanaal.common.topology import DEAD, Queue

log = get_logger(__name__)

RECONNECT_SECONDS: Final = 2.0
PERSISTENT: Final = 2
PIPELINE: Final = 3

# exchange, routing key, body, properties
_Publish = tuple[str, str, bytes, Basic.Properties]


@dataclass(frozen=True)
class Outgoing:
    """One message a contact causes; `exchange=""` is the default exchange (to a queue)."""

    exchange: str
    routing_key: str
    body: bytes
    message_type: str
    message_id: str


@dataclass
class Plan:
    """What one delivery causes: its own messages, items sent once per batch with those of
    other deliveries (`shared`, e.g. SLA timers), and what to remember once all are sent."""

    messages: list[Outgoing]
    record: Any = None
    shared: list[Any] = field(default_factory=list)


@dataclass
class _Delivery:
    message: DeliveredMessage
    plan: Plan | None = None
    failed: bool = False
    sent: list[asyncio.Future[Any]] = field(default_factory=list)

    @property
    def tag(self) -> int:
        delivery = self.message.delivery
        assert isinstance(delivery, Basic.Deliver)
        return int(delivery.delivery_tag or 0)


class BatchIntake:
    """Consume `queue` in batches of up to `batch` deliveries: plan, publish, confirm, ack.

    `plan(body)` is pure: it returns a :class:`Plan` or raises pydantic's ValidationError
    or :class:`Refused` for a message that can never succeed (kept in `dead.<queue>` with
    the reason). `combine(shared)` turns the `shared` items of a whole batch into messages;
    if one of those fails, every delivery that contributed to it is handed back.
    `settled(records)` runs after a batch's messages are confirmed and before its
    deliveries are acked, with the `record` of every routed delivery, in order.
    """

    def __init__(
        self,
        url: str,
        queue: Queue,
        *,
        plan: Callable[[bytes], Plan],
        combine: Callable[[list[Any]], list[Outgoing]],
        settled: Callable[[list[Any]], None],
        batch: int,
        retry_delay: float,
        publish_timeout: float,
        app_id: str,
    ) -> None:
        self._url = url
        self._queue = queue
        self._plan = plan
        self._combine = combine
        self._settled = settled
        self._batch = batch
        self._retry_delay = retry_delay
        self._publish_timeout = publish_timeout
        self._app_id = app_id
        self._waiting: list[DeliveredMessage] = []
        self._arrived = asyncio.Event()
        self._stopping = False
        self.connected = False

    async def run(self) -> None:
        """Consume until cancelled; a lost connection is re-established after a pause."""
        while not self._stopping:
            try:
                await self._session()
            except (aio_pika.exceptions.AMQPError, OSError, ConnectionError) as exc:
                self.connected = False
                log.warning("intake connection lost; reconnecting", error=type(exc).__name__)
                await asyncio.sleep(RECONNECT_SECONDS)

    def stop(self) -> None:
        """Stop taking new batches; the batch in hand is finished first."""
        self._stopping = True
        self._arrived.set()

    async def _session(self) -> None:
        connection = await aio_pika.connect(self._url, timeout=10)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            # Consuming and publishing on aiormq's channel skips aio-pika's per-message
            # objects; aio-pika only opens the connection and the confirming channel.
            underlay = await channel.get_underlay_channel()
            # aiormq's Channel; its abstract type lacks basic_publish's `wait`.
            assert isinstance(underlay, aiormq.Channel)
            await underlay.basic_qos(prefetch_count=self._batch * PIPELINE)
            self._waiting.clear()
            consuming = await underlay.basic_consume(self._queue.name, self._arrive)
            tag = consuming.consumer_tag
            self.connected = True
            log.info("intake consuming", queue=self._queue.name, batch=self._batch)
            # Up to PIPELINE batches in flight: the next is published while the one before
            # waits for its confirms; acks still go out in delivery order.
            slots = asyncio.Semaphore(PIPELINE)
            previous: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            previous.set_result(None)
            in_flight: set[asyncio.Task[None]] = set()
            try:
                while not self._stopping:
                    await self._arrived.wait()
                    self._arrived.clear()
                    while self._waiting and not connection.is_closed and not self._stopping:
                        await slots.acquire()
                        taken = self._waiting[: self._batch]
                        del self._waiting[: self._batch]
                        if not taken:
                            slots.release()
                            break
                        task = asyncio.create_task(self._handle(underlay, taken, previous))
                        task.add_done_callback(lambda _: slots.release())
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                        previous = task
                    if connection.is_closed:
                        raise ConnectionError("the intake connection closed")
            finally:
                with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, RuntimeError):
                    if tag is not None:
                        await asyncio.wait_for(underlay.basic_cancel(tag), 5)
                # The batches in hand finish (acked) or fail with the connection; what was
                # delivered but not taken goes back to the queue when the channel closes.
                if in_flight:
                    await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            self.connected = False
            # Deliveries not acked yet go back to the queue when the channel closes.
            with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, TimeoutError):
                await asyncio.wait_for(connection.close(), 10)

    async def _arrive(self, message: DeliveredMessage) -> None:
        self._waiting.append(message)
        self._arrived.set()

    async def _handle(
        self,
        channel: aiormq.Channel,
        taken: Sequence[DeliveredMessage],
        previous: asyncio.Future[None],
    ) -> None:
        deliveries = [_Delivery(message) for message in taken]
        now = datetime.now(UTC)
        for delivery in deliveries:
            try:
                delivery.plan = self._plan(delivery.message.body)
                outgoing = [self._message(m, now) for m in delivery.plan.messages]
            except ValidationError as exc:
                outgoing = [self._dead(delivery.message, describe_validation_error(exc), now)]
            except Refused as exc:
                outgoing = [self._dead(delivery.message, str(exc), now)]
            delivery.sent = [self._publish(channel, publish) for publish in outgoing]
        contributors = [d for d in deliveries if d.plan is not None and d.plan.shared]
        shared = [item for d in contributors for item in d.plan.shared]  # type: ignore[union-attr]
        for message in self._combine(shared) if shared else []:
            future = self._publish(channel, self._message(message, now))
            for delivery in contributors:
                delivery.sent.append(future)
        # All confirms of the batch together, within one timeout; a delivery fails if any
        # of its messages was refused, returned or not confirmed in time.
        sent = {f for d in deliveries for f in d.sent}
        if sent:
            _, late = await asyncio.wait(sent, timeout=self._publish_timeout)
            for future in late:
                future.cancel()
        for delivery in deliveries:
            for future in delivery.sent:
                error = TimeoutError() if future.cancelled() else future.exception()
                if error is not None:
                    delivery.failed = True
                    log.warning(
                        "publishing failed; the delivery goes back for a retry",
                        error=type(error).__name__,
                        message_id=delivery.message.header.properties.message_id,
                    )
            if delivery.plan is None and not delivery.failed:
                DEAD_LETTERED.labels(self._queue.name).inc()
        self._settled([d.plan.record for d in deliveries if d.plan and not d.failed])
        # A `multiple` ack covers every earlier delivery: the batch before must be settled.
        with contextlib.suppress(Exception):
            await previous
        await self._settle(channel, deliveries)

    @staticmethod
    def _publish(channel: aiormq.Channel, publish: _Publish) -> asyncio.Future[Any]:
        """Publish now; the future completes with the broker's confirm (or return)."""
        exchange, routing_key, body, properties = publish
        return asyncio.ensure_future(
            channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=True,
                # Not waiting for the writer to drain each frame: the confirm is awaited.
                wait=False,
            )
        )

    async def _settle(self, channel: aiormq.Channel, deliveries: list[_Delivery]) -> None:
        if not any(d.failed for d in deliveries):
            # One ack for the batch: every earlier delivery on this channel is settled.
            await channel.basic_ack(deliveries[-1].tag, multiple=True)
            return
        for delivery in deliveries:
            if not delivery.failed:
                await channel.basic_ack(delivery.tag)
        await asyncio.sleep(self._retry_delay)
        for delivery in deliveries:
            if delivery.failed:
                RETRIED.labels(self._queue.name).inc()
                await channel.basic_nack(delivery.tag, requeue=True)

    def _message(self, out: Outgoing, now: datetime) -> _Publish:
        """Properties as kanaal.common.messaging.Publisher sets them."""
        return (
            out.exchange,
            out.routing_key,
            out.body,
            Basic.Properties(
                content_type="application/json",
                delivery_mode=PERSISTENT,
                message_id=out.message_id,
                message_type=out.message_type,
                timestamp=now,
                app_id=self._app_id,
                headers={SCHEMA_VERSION_HEADER: SCHEMA_VERSION},
            ),
        )

    def _dead(self, message: DeliveredMessage, reason: str, now: datetime) -> _Publish:
        """The delivery unchanged, for `dead.<queue>`, with the reason in a header."""
        properties = message.header.properties
        log.warning("message dead-lettered", reason=reason, message_id=properties.message_id)
        headers = dict(properties.headers or {})
        headers[DEAD_REASON_HEADER] = reason[:MAX_REASON_CHARS]
        headers[DEAD_QUEUE_HEADER] = self._queue.name
        headers[DEAD_AT_HEADER] = now.isoformat()
        return (
            DEAD.name,
            self._queue.dead_letter_key,
            message.body,
            Basic.Properties(
                content_type=properties.content_type,
                delivery_mode=PERSISTENT,
                message_id=properties.message_id,
                message_type=properties.message_type,
                correlation_id=properties.correlation_id,
                headers=headers,
            ),
        )
