"""Publishing and consuming on the real RabbitMQ: nothing transient, nothing dropped silently."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aio_pika
import pytest
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, ConfigDict, SecretStr

from kanaal.common.contract import ContactMessage
from kanaal.common.messaging import (
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    SCHEMA_VERSION_HEADER,
    Publisher,
    consume,
    make_broker,
    raw_body,
)
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import EVENTS, EXCHANGES, WORK, Event, Queue, Topology, apply

WAIT = 15.0  # a guard against a hang, never an assertion about speed


class Greeting(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str


def contact() -> ContactMessage:
    return ContactMessage.new(
        channel="web",
        entry_point="contactformulier",
        source_ref=f"submission-{uuid.uuid4()}",
        occurred_at=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        subject="parkeren",
        text="Mijn vergunning is verlopen",
    )


def own_queue(delivery_limit: int = 10) -> Queue:
    """A queue of its own, bound to kanaal.events, with its dead-letter partner."""
    name = f"test.{uuid.uuid4().hex[:8]}"
    return Queue(name, delivery_limit=delivery_limit, bindings=((EVENTS, name),))


def broker_for(rabbit_vhost: RabbitVhost) -> RabbitBroker:
    return make_broker(ServiceSettings(amqp_url=SecretStr(rabbit_vhost.url)), "test")


@pytest.fixture
async def connected(rabbit_vhost: RabbitVhost) -> AsyncIterator[RabbitBroker]:
    """A broker connected to a vhost that has the whole topology (no subscribers)."""
    await apply(rabbit_vhost.url, Topology.build(["email"], []))
    broker = broker_for(rabbit_vhost)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.stop()


async def test_an_event_is_persistent_json_with_id_type_and_schema_version(
    rabbit_vhost: RabbitVhost, connected: RabbitBroker
) -> None:
    message = contact()
    await Publisher(connected).event(
        Event.CONTACT_RECEIVED, message, message_id=message.id, channel="web"
    )

    received = await rabbit_vhost.get("dossier.intake")
    assert received.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert received.content_type == "application/json"
    assert received.message_id == str(message.id)
    assert received.type == "contact.received"
    assert received.headers[SCHEMA_VERSION_HEADER] == 1
    assert received.routing_key == "contact.received.web"
    assert received.app_id == "kanaal-test"
    assert received.timestamp is not None
    assert ContactMessage.model_validate_json(received.body) == message


async def test_publishing_where_no_queue_listens_raises_instead_of_losing_the_message(
    connected: RabbitBroker,
) -> None:
    publisher = Publisher(connected)
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await publisher.publish(
            contact(),
            exchange=WORK,
            routing_key="work.subject.nobody",
            message_type=Event.WORK_ITEM,
            message_id="m-1",
        )
    # The channel is still usable after the return: the next, routable publish goes through.
    await publisher.publish(
        contact(),
        exchange=WORK,
        routing_key="work.central",
        message_type=Event.WORK_ITEM,
        message_id="m-2",
    )


async def test_an_invalid_message_is_kept_in_its_dead_queue_with_the_reason_and_consuming_goes_on(
    rabbit_vhost: RabbitVhost,
) -> None:
    queue = own_queue()
    await apply(rabbit_vhost.url, Topology(EXCHANGES, (queue, queue.dead())))
    broker = broker_for(rabbit_vhost)
    publisher = Publisher(broker)
    greeted: list[str] = []
    done = asyncio.Event()

    async def effect(greeting: Greeting) -> None:
        greeted.append(greeting.name)
        done.set()

    @broker.subscriber(
        queue.rabbit(), EVENTS.rabbit(), ack_policy=AckPolicy.MANUAL, decoder=raw_body
    )
    async def handle(message: RabbitMessage) -> None:
        await consume(
            message, queue=queue, model=Greeting, effect=effect, publisher=publisher, retry_delay=0
        )

    async def send(body: bytes | Greeting, message_id: str) -> None:
        await publisher.publish(
            body,
            exchange=EVENTS,
            routing_key=queue.name,
            message_type="greeting",
            message_id=message_id,
        )

    await broker.start()
    try:
        await send(b"{not json", "bad-1")
        await send(b'{"name": ["jan.jansen@example.nl"]}', "bad-2")
        await send(Greeting(name="Ada"), "good-1")
        dead = await rabbit_vhost.wait_for(queue.dead_letter_key, 2, timeout=WAIT)
        await asyncio.wait_for(done.wait(), WAIT)
    finally:
        await broker.stop()

    assert greeted == ["Ada"]
    # Deliveries are handled concurrently: the two may reach the dead queue in any order.
    dead.sort(key=lambda m: str(m.message_id))
    assert [m.message_id for m in dead] == ["bad-1", "bad-2"]
    assert dead[0].body == b"{not json"
    assert dead[1].body == b'{"name": ["jan.jansen@example.nl"]}'
    for message in dead:
        assert message.headers[DEAD_QUEUE_HEADER] == queue.name
        assert message.headers[SCHEMA_VERSION_HEADER] == 1
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.type == "greeting"
    assert str(dead[0].headers[DEAD_REASON_HEADER]).startswith(
        "invalid message: body: Invalid JSON"
    )
    reason = str(dead[1].headers[DEAD_REASON_HEADER])
    assert reason.startswith("invalid message: name: Input should be a valid string")
    assert "jan.jansen" not in reason  # the reason never echoes the (personal) input

    # Everything was acked: nothing waits in the queue any more.
    async with await rabbit_vhost.connect() as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue.name, passive=True)
        assert declared.declaration_result.message_count == 0


async def test_a_failing_effect_is_retried_and_finally_dead_lettered_by_the_delivery_limit(
    rabbit_vhost: RabbitVhost,
) -> None:
    queue = own_queue(delivery_limit=2)
    await apply(rabbit_vhost.url, Topology(EXCHANGES, (queue, queue.dead())))
    broker = broker_for(rabbit_vhost)
    publisher = Publisher(broker)
    attempts: list[str] = []

    async def effect(greeting: Greeting) -> None:
        attempts.append(greeting.name)
        raise RuntimeError("the database is restarting")

    @broker.subscriber(
        queue.rabbit(), EVENTS.rabbit(), ack_policy=AckPolicy.MANUAL, decoder=raw_body
    )
    async def handle(message: RabbitMessage) -> None:
        await consume(
            message, queue=queue, model=Greeting, effect=effect, publisher=publisher, retry_delay=0
        )

    await broker.start()
    try:
        await publisher.publish(
            Greeting(name="Ada"),
            exchange=EVENTS,
            routing_key=queue.name,
            message_type="greeting",
            message_id="retry-1",
        )
        dead = await rabbit_vhost.get(queue.dead_letter_key, timeout=WAIT)
    finally:
        await broker.stop()

    assert len(attempts) > 1, "the delivery was never handed back for a retry"
    assert set(attempts) == {"Ada"}
    assert dead.message_id == "retry-1"
    assert json.loads(dead.body) == {"name": "Ada"}
    # RabbitMQ dead-lettered it (delivery limit), not our "invalid message" path.
    assert DEAD_REASON_HEADER not in dead.headers
    deaths = dead.headers["x-death"]
    assert isinstance(deaths, list)
    assert deaths[0]["reason"] == "delivery_limit"  # type: ignore[index]
