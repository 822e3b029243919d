"""Publishing and consuming done right, once, for every service and adapter.

Publishing: persistent, publisher-confirmed, mandatory with unroutable messages
raising, with `message_id`, `type` and `x-schema-version` set. Consuming: validate,
do the effect, ack only after it is durable; a message that can never be valid is
dead-lettered with its reason at once, a failing effect is handed back after a
pause until the queue's delivery limit dead-letters it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import aio_pika
import structlog
from faststream import AckPolicy, StreamMessage
from faststream.rabbit import Channel, RabbitBroker
from faststream.rabbit.annotations import RabbitMessage as Delivery
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY, Counter
from pydantic import BaseModel, ValidationError

from kanaal.common.contract import SCHEMA_VERSION
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import DEAD, EVENTS, Event, Exchange, Queue

SCHEMA_VERSION_HEADER: Final = "x-schema-version"
DEAD_REASON_HEADER: Final = "x-kanaal-dead-reason"
DEAD_QUEUE_HEADER: Final = "x-kanaal-dead-queue"
DEAD_AT_HEADER: Final = "x-kanaal-dead-at"
MAX_REASON_CHARS: Final = 2_000

M = TypeVar("M", bound=BaseModel)

log = structlog.stdlib.get_logger(__name__)

DEAD_LETTERED = Counter(
    "kanaal_dead_lettered_total",
    "Messages a service refused as invalid and moved to dead.<queue>, by queue",
    ["queue"],
)
RETRIED = Counter(
    "kanaal_retried_total",
    "Deliveries handed back to their queue after the effect failed, by queue",
    ["queue"],
)


def make_broker(settings: ServiceSettings, service: str) -> RabbitBroker:
    """A broker whose publishes are confirmed and raise when unroutable, with bounded prefetch."""
    return RabbitBroker(
        settings.amqp_url.get_secret_value(),
        default_channel=Channel(
            prefetch_count=settings.prefetch,
            publisher_confirms=True,
            on_return_raises=True,
        ),
        graceful_timeout=settings.publish_timeout + 5,
        app_id=f"kanaal-{service}",
        middlewares=[RabbitPrometheusMiddleware(registry=REGISTRY, app_name=f"kanaal_{service}")],
        # FastStream's own records go through the root handler and its masking.
        logger=logging.getLogger(f"kanaal.{service}.broker"),
    )


class Publisher:
    """Publishes contract messages so that a returned `publish()` means the broker has them."""

    def __init__(self, broker: RabbitBroker, timeout: float = 10.0) -> None:
        self._broker = broker
        self._timeout = timeout

    async def publish(
        self,
        payload: BaseModel | bytes,
        *,
        exchange: Exchange,
        routing_key: str,
        message_type: str,
        message_id: uuid.UUID | str,
        headers: dict[str, Any] | None = None,
    ) -> None:
        body = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        await self._broker.publish(
            body,
            exchange=exchange.rabbit(),
            routing_key=routing_key,
            persist=True,
            mandatory=True,
            timeout=self._timeout,
            content_type="application/json",
            message_id=str(message_id),
            message_type=message_type,
            timestamp=datetime.now(UTC),
            headers={SCHEMA_VERSION_HEADER: SCHEMA_VERSION, **(headers or {})},
        )

    async def to_queue(
        self,
        payload: BaseModel | bytes,
        *,
        queue: str,
        message_type: str,
        message_id: uuid.UUID | str,
    ) -> None:
        """Publish straight to `queue` through the default exchange (timers, streams)."""
        body = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
        await self._broker.publish(
            body,
            queue=queue,
            persist=True,
            mandatory=True,
            timeout=self._timeout,
            content_type="application/json",
            message_id=str(message_id),
            message_type=message_type,
            timestamp=datetime.now(UTC),
            headers={SCHEMA_VERSION_HEADER: SCHEMA_VERSION},
        )

    async def event(
        self,
        event: Event,
        payload: BaseModel,
        *,
        message_id: uuid.UUID | str,
        channel: str | None = None,
    ) -> None:
        """Publish an event on `kanaal.events` under its routing key."""
        await self.publish(
            payload,
            exchange=EVENTS,
            routing_key=event.key(channel),
            message_type=event.value,
            message_id=message_id,
        )

    async def dead_letter(self, message: RabbitMessage, queue: Queue, reason: str) -> None:
        """Keep a message we refuse in `dead.<queue>`, unchanged, with the reason in a header."""
        raw = message.raw_message
        headers = dict(raw.headers or {})
        headers[DEAD_REASON_HEADER] = reason[:MAX_REASON_CHARS]
        headers[DEAD_QUEUE_HEADER] = queue.name
        headers[DEAD_AT_HEADER] = datetime.now(UTC).isoformat()
        await self._broker.publish(
            raw.body,
            exchange=DEAD.rabbit(),
            routing_key=queue.dead_letter_key,
            persist=True,
            mandatory=True,
            timeout=self._timeout,
            content_type=raw.content_type,
            message_id=raw.message_id,
            message_type=raw.type,
            correlation_id=raw.correlation_id,
            headers=headers,
        )


def contract_message(
    payload: BaseModel | bytes, *, message_type: str, message_id: uuid.UUID | str
) -> aio_pika.Message:
    """A contract message with the properties :class:`Publisher` sets, for code that
    publishes with aio-pika itself (the demo, the contract kit, tests):

        await exchange.publish(contract_message(contact, message_type=..., message_id=...),
                               routing_key=...)
    """
    body = payload if isinstance(payload, bytes) else payload.model_dump_json().encode()
    return aio_pika.Message(
        body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(message_id),
        type=str(message_type),
        timestamp=datetime.now(UTC),
        headers={SCHEMA_VERSION_HEADER: SCHEMA_VERSION},
    )


async def raw_body(message: StreamMessage[Any]) -> bytes:
    """A subscriber `decoder=` that leaves the body undecoded for :func:`consume` to validate.

    FastStream otherwise parses an `application/json` body before the handler runs; a body
    that is not JSON then fails outside the handler and, under `AckPolicy.MANUAL`, stays
    unacked for ever instead of reaching `dead.<queue>`.
    """
    return message.body


class Refused(Exception):
    """Raised by an effect for a message that can never succeed: it is dead-lettered at once."""


def describe_validation_error(exc: ValidationError) -> str:
    """A reason an operator can act on, without echoing the (personal) input."""
    parts = [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    ]
    return "invalid message: " + "; ".join(parts[:20])


async def consume(
    message: RabbitMessage,
    *,
    queue: Queue,
    model: type[M],
    effect: Callable[[M], Awaitable[None]],
    publisher: Publisher,
    retry_delay: float,
) -> None:
    """Run one delivery through validate → effect → ack.

    Subscribe with `ack_policy=AckPolicy.MANUAL` and `decoder=raw_body`.

    Invalid bodies can never succeed: they go to `dead.<queue>` with the reason and
    are acked, so the consumer keeps going; so does a message whose effect raises
    :class:`Refused`. A failing effect may succeed later (the
    database is restarting): the delivery is handed back after `retry_delay`, and
    the queue's `x-delivery-limit` dead-letters it if it keeps failing.
    """
    # FastStream invents a message id when a message has none: log the real one.
    structlog.contextvars.bind_contextvars(
        message_id=message.raw_message.message_id, queue=queue.name
    )
    try:
        try:
            item = model.model_validate_json(message.body)
        except ValidationError as exc:
            await _refuse(message, queue, describe_validation_error(exc), publisher)
        else:
            try:
                await effect(item)
            except Refused as exc:
                await _refuse(message, queue, str(exc), publisher)
    except asyncio.CancelledError:
        await message.nack(requeue=True)
        raise
    except Exception:
        # The effect, or keeping a refused message, failed: neither may lose the delivery.
        log.exception("handling failed; handing the delivery back for a retry")
        RETRIED.labels(queue.name).inc()
        await asyncio.sleep(retry_delay)
        await message.nack(requeue=True)
    else:
        await message.ack()
    finally:
        structlog.contextvars.unbind_contextvars("message_id", "queue")


async def _refuse(message: RabbitMessage, queue: Queue, reason: str, publisher: Publisher) -> None:
    await publisher.dead_letter(message, queue, reason)
    DEAD_LETTERED.labels(queue.name).inc()
    log.warning("message dead-lettered", reason=reason)


def subscribe(
    broker: RabbitBroker,
    queue: Queue,
    *,
    model: type[M],
    effect: Callable[[M], Awaitable[None]],
    publisher: Publisher,
    retry_delay: float,
    description: str,
) -> None:
    """Consume `queue` with :func:`consume`: manual acks, raw body, dead-letter with reason."""
    exchange = queue.bindings[0][0].rabbit() if queue.bindings else None

    async def handle(message: Delivery) -> None:
        await consume(
            message,
            queue=queue,
            model=model,
            effect=effect,
            publisher=publisher,
            retry_delay=retry_delay,
        )

    broker.subscriber(
        queue.rabbit(),
        exchange,
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title=f"{queue.name}:consume",
        description=description,
    )(handle)
