"""Crash safety: SIGKILL the dossier while contacts stream in, restart it, lose and double nothing.

`KANAAL_CRASH_CONTACTS` sets how many contacts stream in (1,000 by default so that
`make test` stays quick; the issue's figure is for 5,000).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import defaultdict
from pathlib import Path

import aio_pika
import pytest

from kanaal.common import topology
from kanaal.common.config import load_topology
from kanaal.common.contract import ContactMessage, RegisteredContact
from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service
from kanaal.common.topology import Event
from kanaal.dossier.database import create_engine
from kanaal.dossier.store import DossierStore

CONFIG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "config"
N = int(os.environ.get("KANAAL_CRASH_CONTACTS", "1000"))


def contacts(n: int) -> list[ContactMessage]:
    # Several contacts per customer, so party resolution and case numbering work too.
    return [
        ContactMessage.new(
            channel=("email", "web", "phone")[i % 3],
            entry_point="crash-test",
            source_ref=f"item-{i}",
            party={"email": f"burger{i % 250}@example.org"},
            subject="afval",
            text="De container is niet geleegd.",
        )
        for i in range(n)
    ]


async def publish_all(url: str, messages: list[ContactMessage]) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.EVENTS.name)
        for start in range(0, len(messages), 100):
            await asyncio.gather(
                *(
                    exchange.publish(
                        aio_pika.Message(
                            m.model_dump_json().encode(),
                            content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=str(m.id),
                            type=Event.CONTACT_RECEIVED.value,
                        ),
                        routing_key=Event.CONTACT_RECEIVED.key(m.channel),
                    )
                    for m in messages[start : start + 100]
                )
            )


class Registrations:
    """Everything that reaches router.intake, by message id."""

    def __init__(self) -> None:
        self.by_id: dict[str, list[RegisteredContact]] = defaultdict(list)
        self.changed = asyncio.Event()

    async def consume(self, url: str, stop: asyncio.Event) -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=500)
            queue = await channel.get_queue("router.intake")

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                registered = RegisteredContact.model_validate_json(message.body)
                assert message.message_id == str(registered.contact.id)
                self.by_id[message.message_id].append(registered)
                self.changed.set()
                await message.ack()

            tag = await queue.consume(on_message)
            await stop.wait()
            await queue.cancel(tag)

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.by_id) < count:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{len(self.by_id)} of {count} contacts registered in time")
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=min(remaining, 1.0))
            except TimeoutError:
                continue


async def test_a_dossier_killed_mid_stream_stores_and_announces_every_contact_exactly_once(
    rabbit_vhost: RabbitVhost,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await topology.apply(rabbit_vhost.url, load_topology(CONFIG_DIR))
    port = free_port()
    env = {
        "KANAAL_AMQP_URL": rabbit_vhost.url,
        "KANAAL_CONFIG_DIR": str(CONFIG_DIR),
        "KANAAL_DATABASE_URL": database_url,
        "KANAAL_DOSSIER_PORT": str(port),
        "KANAAL_OUTBOX_INTERVAL": "1",
        "KANAAL_RETRY_DELAY": "0.2",
        "KANAAL_LOG_LEVEL": "WARNING",
    }
    messages = contacts(N)
    registrations = Registrations()
    stop = asyncio.Event()
    consumer = asyncio.create_task(registrations.consume(rabbit_vhost.url, stop))
    started = time.perf_counter()
    service: RunningService = await asyncio.to_thread(
        start_service, "dossier", "kanaal.dossier", port, env, tmp_path
    )
    try:
        publisher = asyncio.create_task(publish_all(rabbit_vhost.url, messages))
        await registrations.wait_for(N // 4, timeout=120)
        service.process.kill()  # SIGKILL: no shutdown, no drain, no last commit
        await asyncio.to_thread(service.process.wait)
        killed_at = len(registrations.by_id)
        service = await asyncio.to_thread(
            start_service, "dossier-restarted", "kanaal.dossier", port, env, tmp_path
        )
        await publisher
        await registrations.wait_for(N, timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        service.stop()
        stop.set()
        await consumer

    engine = create_engine(database_url)
    try:
        stored = await DossierStore(engine).count_contacts()
    finally:
        await engine.dispose()
    assert stored == N, "every contact stored exactly once"
    assert set(registrations.by_id) == {str(m.id) for m in messages}
    duplicates = {i: r for i, r in registrations.by_id.items() if len(r) > 1}
    for copies in duplicates.values():
        # A duplicate is a re-publish of the same stored registration, never a second one.
        assert len({(r.case_ref, r.party_id, r.registered_at) for r in copies}) == 1
    with capsys.disabled():
        print(
            f"\n  crash test ({database_url.split(':')[0]}): {N} contacts, SIGKILL after "
            f"{killed_at} registered, {len(duplicates)} re-published, all stored once; "
            f"{elapsed:.1f}s, {N / elapsed:.0f} contacts/s including the restart"
        )
