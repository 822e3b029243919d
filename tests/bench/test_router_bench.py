"""Benchmark: the router against a raw aio-pika relay, same broker, same run, same contacts.

The relay consumes a quorum queue (prefetch 100), parses the JSON, publishes it
persistent with a confirm to another quorum queue and acks. The router does its whole
job with a 50-rule file: decide, work item, SLA timer, contact.routed, ack. Both start
on pre-filled queues. Prints both rates and their ratio; asserts nothing about speed.

A third run shows how much of the router's cost is its AMQP work alone: the router's
batch intake with a plan that only parses the JSON and publishes the same body twice
(as the work item and contact.routed go out), with no rules, model or journal. The
router cannot be faster than that ceiling.

When the broker runs on this machine (as in CI), the broker's own CPU per message is
printed as well, read from /proc: the relay and the router share the machine's cores
with it.
Size with KANAAL_BENCH_CONTACTS (default 20000, the issue's figure):
`uv run pytest tests/bench/test_router_bench.py -s`. SLAs are minutes, so that no timer
fires while it is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
import yaml
from pydantic import SecretStr

from kanaal.common.config import load_topology
from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import Queue, apply
from kanaal.router.app import ROUTED, RouterSettings, create_app
from kanaal.router.intake import BatchIntake, Outgoing, Plan
from kanaal.router.rules import RoutingRules

N = int(os.environ.get("KANAAL_BENCH_CONTACTS", "20000"))
PREFETCH = 100
BATCH = RouterSettings.model_fields["router_intake_batch"].default
REPO = Path(__file__).resolve().parents[2]
SUBJECTS = [f"onderwerp-{i}" for i in range(20)]
LOCATIONS = ["noord", "zuid", "oost", "west", "centrum"]


def rule_file() -> dict[str, object]:
    """50 rules of every condition type; most contacts fall through many of them."""
    rules: list[dict[str, object]] = []
    for i, subject in enumerate(SUBJECTS):
        rules.append(
            {
                "name": f"telefoon-{subject}",
                "when": {"channel": "phone", "subject": subject},
                "target": f"work.skill.telefoon-{i}",
                "sla": "5m",
            }
        )
    for i, location in enumerate(LOCATIONS):
        rules.append(
            {
                "name": f"balie-{location}",
                "when": {"channel": "counter", "location": location},
                "target": f"work.location.{location}",
                "priority": i % 3,
            }
        )
    for i in range(15):
        rules.append(
            {
                "name": f"tekst-{i}",
                "when": {"text": f"woord{i}|term{i}", "language": ["nl", "en"]},
                "target": f"work.skill.tekst-{i}",
                "sla": "4h",
            }
        )
    rules += [
        {"name": "ondernemers", "when": {"has_kvk": True}, "target": "work.group.ondernemers"},
        {"name": "terugbellen", "when": {"channel_data": {"callback": True}},
         "target": "work.skill.terugbellen"},
        {"name": "spoed", "when": {"priority": {"min": 8}}, "target": "work.skill.spoed"},
        {"name": "engels", "when": {"language": "en"}, "target": "work.skill.engels"},
        {"name": "bekend", "when": {"known_party": True, "entry_point": {"regex": "^vip"}},
         "target": "work.skill.vip"},
        {"name": "noord-mail", "when": {"location": "noord", "channel": "email"},
         "target": "work.location.noord"},
        {"name": "bsn", "when": {"has_bsn": True, "subject": {"present": False}},
         "target": "work.skill.burgerzaken"},
        {"name": "afval", "when": {"subject": {"regex": "^afval"}}, "target": "work.subject.afval"},
        {"name": "web-algemeen", "when": {"channel": "web", "entry_point": "algemeen"},
         "target": "work.channel.web"},
        {"name": "sms", "when": {"channel": "sms"}, "target": "work.channel.sms"},
    ]  # fmt: skip
    assert len(rules) == 50
    return {
        "strategy": "subject",
        "queues": [f"work.subject.{s}" for s in SUBJECTS],
        "sla": {"phone": "5m", "default": "2d"},
        "escalation": [{"queue": "work.escalation"}],
        "rules": rules,
    }


def contacts() -> list[RegisteredContact]:
    found = []
    now = datetime.now(UTC)
    for i in range(N):
        contact = ContactMessage.new(
            channel=["email", "web", "counter", "phone"][i % 4],
            entry_point="contactformulier",
            source_ref=f"bench-{i}",
            subject=SUBJECTS[i % len(SUBJECTS)],
            location=LOCATIONS[i % len(LOCATIONS)],
            text="Ik heb een vraag over mijn aanslag. " * 10,
            party={"email": f"burger{i}@example.org"},
        )
        found.append(
            RegisteredContact(
                contact=contact,
                party_id=uuid.uuid4(),
                case_ref=f"K-2026-{i:06d}",
                case_status=CaseStatus.OPEN,
                case_is_new=True,
                registered_at=now,
            )
        )
    return found


async def fill(
    channel: aio_pika.abc.AbstractChannel, exchange: str, key: str, bodies: list[bytes]
) -> None:
    target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
    for start in range(0, len(bodies), 500):
        await asyncio.gather(
            *(
                target.publish(
                    aio_pika.Message(
                        body,
                        content_type="application/json",
                        message_id=str(uuid.uuid4()),
                        type="contact.registered",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=key,
                )
                for body in bodies[start : start + 500]
            )
        )


async def raw_relay(url: str, bodies: list[bytes]) -> Measured:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        args = {"x-queue-type": "quorum"}
        await channel.declare_queue("bench.in", durable=True, arguments=args)
        await channel.declare_queue("bench.out", durable=True, arguments=args)
        await fill(channel, "", "bench.in", bodies)
        consumer = await connection.channel(publisher_confirms=True)
        await consumer.set_qos(prefetch_count=PREFETCH)
        queue = await consumer.get_queue("bench.in")
        done = asyncio.Event()
        relayed = 0

        async def relay(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal relayed
            json.loads(message.body)
            await consumer.default_exchange.publish(
                aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="bench.out",
            )
            await message.ack()
            relayed += 1
            if relayed == len(bodies):
                done.set()

        clock = Clock()
        await queue.consume(relay)
        await done.wait()
        return clock.read()


def broker_cpu() -> float | None:
    """CPU seconds RabbitMQ's Erlang VM has used, when it runs on this machine."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, _, rest = text.partition(" (")[2].partition(") ")
        if name == "beam.smp":
            fields = rest.split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return None


# wall seconds, this process's CPU seconds, the broker's CPU seconds (None: not local)
Measured = tuple[float, float, float | None]


class Clock:
    """Wall time, this process's CPU and the broker's CPU from one start."""

    def __init__(self) -> None:
        self.wall, self.cpu, self.broker = time.perf_counter(), time.process_time(), broker_cpu()

    def read(self) -> Measured:
        broker = broker_cpu()
        used = None if broker is None or self.broker is None else broker - self.broker
        return time.perf_counter() - self.wall, time.process_time() - self.cpu, used


async def intake_ceiling(url: str, bodies: list[bytes]) -> Measured:
    """The router's intake with no routing: parse, publish twice, confirm, ack in batches."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        args = {"x-queue-type": "quorum"}
        for name in ("ceiling.in", "ceiling.work", "ceiling.events"):
            await channel.declare_queue(name, durable=True, arguments=args)
        await fill(channel, "", "ceiling.in", bodies)
    settled = 0

    def plan(body: bytes) -> Plan:
        json.loads(body)
        return Plan(
            [Outgoing("", f"ceiling.{to}", body, "bench", "bench") for to in ("work", "events")],
            record=True,
        )

    def count(records: list[object]) -> None:
        nonlocal settled
        settled += len(records)

    intake = BatchIntake(
        url,
        Queue("ceiling.in"),
        plan=plan,
        combine=lambda shared: [],
        settled=count,
        batch=BATCH,
        retry_delay=1.0,
        publish_timeout=30.0,
        app_id="bench",
    )
    clock = Clock()
    running = asyncio.create_task(intake.run())
    while settled < len(bodies):  # noqa: ASYNC110 (polls an in-process counter)
        await asyncio.sleep(0.02)
    measured = clock.read()
    intake.stop()
    await running
    return measured


def routed_total() -> float:
    return sum(
        sample.value
        for metric in ROUTED.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def routed_count(channel: aio_pika.abc.AbstractChannel, queues: list[str]) -> int:
    total = 0
    for name in queues:
        declared = await channel.declare_queue(name, passive=True)
        total += declared.declaration_result.message_count or 0
    return total


@pytest.mark.bench
async def test_bench_router_against_a_raw_relay(
    rabbit_vhost: RabbitVhost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registered = contacts()
    bodies = [r.model_dump_json().encode() for r in registered]
    relay = await raw_relay(rabbit_vhost.url, bodies)
    ceiling = await intake_ceiling(rabbit_vhost.url, bodies)

    config_dir = tmp_path / "config"
    config_dir.mkdir()
    shutil.copy(REPO / "deploy" / "config" / "channels.yaml", config_dir / "channels.yaml")
    (config_dir / "routing.yaml").write_text(yaml.safe_dump(rule_file()), encoding="utf-8")
    rules = RoutingRules.load(config_dir / "routing.yaml")
    queues = sorted({*rules.queues, *(f"{q}.urgent" for q in rules.queues)})
    await apply(rabbit_vhost.url, load_topology(config_dir))
    connection = await aio_pika.connect(rabbit_vhost.url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await fill(channel, "kanaal.events", "contact.registered.web", bodies)
        settings = RouterSettings(
            amqp_url=SecretStr(rabbit_vhost.url),
            config_dir=config_dir,
            prefetch=PREFETCH,
            router_state_path=tmp_path / "router-state.db",
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            # From the moment the router is up (topology declared, journal replayed), as
            # the relay's clock starts after its queues are declared.
            clock = Clock()
            # The router counts what it routed once the broker confirmed it; polling the
            # broker's 90 queues instead would load the broker the router is measured on.
            while routed_total() < N:  # noqa: ASYNC110 (polls an in-process counter)
                await asyncio.sleep(0.02)
            router = clock.read()
        assert await routed_count(channel, queues) == N

    with capsys.disabled():
        report(relay, router, ceiling)


def report(relay: Measured, router: Measured, ceiling: Measured) -> None:
    def rate(measured: Measured) -> float:
        return N / measured[0]

    def per_contact(seconds: float | None) -> str:
        return "-" if seconds is None else f"{seconds / N * 1e6:.0f} µs"

    print(f"\n  raw aio-pika relay (prefetch {PREFETCH})      {rate(relay):>8.0f} msg/s  ({N})")
    print(f"  router, 50 rules (intake batch {BATCH})     {rate(router):>8.0f} msg/s  ({N})")
    print(f"  ratio router / relay                   {rate(router) / rate(relay):>8.2f}")
    print(f"  intake alone: parse, 2 publishes       {rate(ceiling):>8.0f} msg/s  ({N})")
    print(f"  ratio intake alone / relay             {rate(ceiling) / rate(relay):>8.2f}")
    for name, (_, cpu, broker) in (("relay", relay), ("router", router), ("intake", ceiling)):
        print(
            f"  CPU per contact, {name:<6}  here {per_contact(cpu):>7},"
            f" broker {per_contact(broker):>7}"
        )
