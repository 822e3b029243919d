"""Benchmark: dossier intake throughput beside a raw relay of the same broker, same run.

Intake rate = contacts per second from `dossier.intake` to `contact.registered` published
(the dossier as its own process, SQLite and PostgreSQL). Raw relay rate = a bare aio-pika
consumer that republishes each message persistently with a confirm and acks it, with the
same prefetch: what the broker allows a store-nothing service. Prints figures; asserts
only that everything arrived. `KANAAL_BENCH_CONTACTS` sets the size (300 by default, so
`make test` stays quick); run alone with `uv run pytest tests/bench -s -k dossier`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from kanaal.common import topology
from kanaal.common.config import load_topology
from kanaal.common.contract import ContactMessage
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost, free_port, start_service
from kanaal.common.topology import Event, Queue

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / "deploy" / "config"
N = int(os.environ.get("KANAAL_BENCH_CONTACTS", "300"))
PREFETCH = ServiceSettings().prefetch
RAW_IN = Queue("bench.raw.in")
RAW_OUT = Queue("bench.raw.out")


def contacts() -> list[ContactMessage]:
    return [
        ContactMessage.new(
            channel="web",
            entry_point="bench",
            source_ref=f"bench-{i}",
            party={"email": f"burger{i % 500}@example.org"},
            subject="afval",
            text="De container is niet geleegd. " * 10,
        )
        for i in range(N)
    ]


def message(contact: ContactMessage) -> aio_pika.Message:
    return aio_pika.Message(
        contact.model_dump_json().encode(),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(contact.id),
        type=Event.CONTACT_RECEIVED.value,
    )


async def publish(
    channel: aio_pika.abc.AbstractChannel,
    exchange_name: str,
    key_of: Callable[[ContactMessage], str],
    items: list[ContactMessage],
) -> None:
    exchange = (
        channel.default_exchange if not exchange_name else await channel.get_exchange(exchange_name)
    )
    for start in range(0, len(items), 200):
        await asyncio.gather(
            *(
                exchange.publish(message(c), routing_key=key_of(c))
                for c in items[start : start + 200]
            )
        )


async def drain(channel: aio_pika.abc.AbstractChannel, queue_name: str, count: int) -> None:
    """Consume `count` messages from `queue_name` and ack them."""
    queue = await channel.get_queue(queue_name)
    seen: set[str] = set()
    done = asyncio.Event()

    async def on_message(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
        seen.add(str(incoming.message_id))
        await incoming.ack()
        if len(seen) >= count:
            done.set()

    tag = await queue.consume(on_message)
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await queue.cancel(tag)


async def raw_relay_rate(url: str, items: list[ContactMessage]) -> float:
    connection = await aio_pika.connect(url)
    async with connection:
        setup = await connection.channel()
        for queue in (RAW_IN, RAW_OUT):
            await setup.declare_queue(queue.name, durable=True, arguments=queue.arguments)
        relay_channel = await connection.channel(publisher_confirms=True)
        await relay_channel.set_qos(prefetch_count=PREFETCH)
        source = await relay_channel.get_queue(RAW_IN.name)

        async def relay(incoming: aio_pika.abc.AbstractIncomingMessage) -> None:
            await relay_channel.default_exchange.publish(
                aio_pika.Message(
                    incoming.body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=incoming.message_id,
                ),
                routing_key=RAW_OUT.name,
            )
            await incoming.ack()

        tag = await source.consume(relay)
        reader = await connection.channel()
        await reader.set_qos(prefetch_count=1000)
        writer = await connection.channel(publisher_confirms=True)
        start = time.perf_counter()
        await asyncio.gather(
            publish(writer, "", lambda _: RAW_IN.name, items), drain(reader, RAW_OUT.name, N)
        )
        elapsed = time.perf_counter() - start
        await source.cancel(tag)
    return N / elapsed


async def dossier_rate(
    url: str, database_url: str, log_dir: Path, items: list[ContactMessage]
) -> float:
    port = free_port()
    env = {
        "KANAAL_AMQP_URL": url,
        "KANAAL_CONFIG_DIR": str(CONFIG_DIR),
        "KANAAL_DATABASE_URL": database_url,
        "KANAAL_DOSSIER_PORT": str(port),
        "KANAAL_LOG_LEVEL": "WARNING",
    }
    service = await asyncio.to_thread(
        start_service, "dossier", "kanaal.dossier", port, env, log_dir
    )
    try:
        connection = await aio_pika.connect(url)
        async with connection:
            reader = await connection.channel()
            await reader.set_qos(prefetch_count=1000)
            writer = await connection.channel(publisher_confirms=True)
            start = time.perf_counter()
            await asyncio.gather(
                publish(
                    writer,
                    topology.EVENTS.name,
                    lambda c: Event.CONTACT_RECEIVED.key(c.channel),
                    items,
                ),
                drain(reader, topology.ROUTER_INTAKE.name, N),
            )
            elapsed = time.perf_counter() - start
    finally:
        service.stop()
    return N / elapsed


@pytest.mark.bench
async def test_bench_dossier_intake_against_a_raw_relay(
    database_url: str,
    rabbit_vhost: RabbitVhost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database = database_url.split("+")[0]
    await topology.apply(rabbit_vhost.url, load_topology(CONFIG_DIR))
    items = contacts()
    raw = await raw_relay_rate(rabbit_vhost.url, items)
    dossier = await dossier_rate(rabbit_vhost.url, database_url, tmp_path, items)
    with capsys.disabled():
        print(
            f"\n  {N} contacts, prefetch {PREFETCH}: raw relay {raw:>6.0f}/s, "
            f"dossier intake on {database} {dossier:>6.0f}/s ({dossier / raw:.0%} of raw)"
        )
