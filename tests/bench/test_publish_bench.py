"""Benchmark: the publishing helper against raw aio-pika on the same broker, same run.

Prints messages per second; asserts nothing about speed. Run alone with
`uv run pytest tests/bench -s`.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from kanaal.common import topology
from kanaal.common.contract import ContactMessage
from kanaal.common.messaging import Publisher, make_broker
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import DOSSIER_INTAKE, Event, Topology

N = 1_000


def contacts() -> list[ContactMessage]:
    return [
        ContactMessage.new(
            channel="web", entry_point="bench", source_ref=str(i), subject="afval", text="x" * 500
        )
        for i in range(N)
    ]


def report(name: str, seconds: float, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n  {name:<48} {N / seconds:>8.0f} msg/s  ({seconds:.2f}s for {N})")


@pytest.mark.bench
async def test_bench_publisher_against_raw_aio_pika(
    rabbit_vhost: RabbitVhost, capsys: pytest.CaptureFixture[str]
) -> None:
    await topology.apply(rabbit_vhost.url, Topology.build([], []))
    messages = contacts()
    bodies = [m.model_dump_json().encode() for m in messages]
    key = Event.CONTACT_RECEIVED.key("web")

    connection = await aio_pika.connect(rabbit_vhost.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name)
        start = time.perf_counter()
        for body in bodies:
            await exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key
            )
        report("raw aio-pika, persistent, confirm each", time.perf_counter() - start, capsys)

        start = time.perf_counter()
        await asyncio.gather(
            *(
                exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), key
                )
                for body in bodies
            )
        )
        report("raw aio-pika, persistent, confirms in flight", time.perf_counter() - start, capsys)
        await (await channel.get_queue(DOSSIER_INTAKE.name)).purge()

    broker = make_broker(ServiceSettings(amqp_url=rabbit_vhost.url), "bench")  # type: ignore[arg-type]
    await broker.connect()
    try:
        publisher = Publisher(broker)
        start = time.perf_counter()
        for message in messages:
            await publisher.event(
                Event.CONTACT_RECEIVED, message, message_id=message.id, channel="web"
            )
        report("Publisher.event (serialise, confirm each)", time.perf_counter() - start, capsys)

        start = time.perf_counter()
        await asyncio.gather(
            *(
                publisher.event(Event.CONTACT_RECEIVED, m, message_id=m.id, channel="web")
                for m in messages
            )
        )
        report("Publisher.event, confirms in flight", time.perf_counter() - start, capsys)
    finally:
        await broker.stop()
