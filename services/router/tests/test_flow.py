"""The router against the real RabbitMQ: queues fill as the rules say, SLAs escalate,
claims stop escalation, timers and claims survive a restart, reloads keep good rules."""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from kanaal.common.config import load_topology
from kanaal.common.contract import (
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    ContactMessage,
    RegisteredContact,
    WorkItem,
)
from kanaal.common.testing import RabbitVhost, free_port, start_service
from kanaal.common.topology import apply
from kanaal.router.app import RouterSettings, create_app

REPO_ROOT = Path(__file__).resolve().parents[3]

ROUTING = """
strategy: location
queues: [work.location.noord, work.location.zuid]
urgent_priority: 5
rules:
  - name: parkeren
    when: {subject: parkeren}
    target: work.skill.parkeren
  - name: afval
    when: {subject: afval}
    target: work.subject.afval
  - name: spoed
    when: {subject: lekkage}
    target: work.skill.spoed
    sla: 1s
    escalation:
      - {queue: work.skill.teamleiders, sla: 1s}
      - {queue: work.escalation}
"""

Router = Callable[[], AbstractAsyncContextManager[None]]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "config"
    folder.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "config" / "channels.yaml", folder / "channels.yaml")
    (folder / "routing.yaml").write_text(ROUTING, encoding="utf-8")
    return folder


@pytest.fixture
def router(rabbit_vhost: RabbitVhost, config_dir: Path, tmp_path: Path) -> Router:
    """Start (and restart) the router app in this process, on the test's vhost and state."""

    @asynccontextmanager
    async def running() -> AsyncIterator[None]:
        settings = RouterSettings(
            amqp_url=SecretStr(rabbit_vhost.url),
            config_dir=config_dir,
            retry_delay=0.1,
            router_state_path=tmp_path / "router-state.db",
            router_reload_interval=0.2,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield

    return running


def registered(**fields: Any) -> RegisteredContact:
    contact = ContactMessage.new(
        channel=fields.pop("channel", "counter"),
        entry_point="balie-1",
        source_ref=f"ticket-{uuid.uuid4()}",
        **fields,
    )
    return RegisteredContact(
        contact=contact,
        party_id=uuid.uuid4(),
        case_ref="K-2026-000042",
        case_status=CaseStatus.OPEN,
        case_is_new=True,
        registered_at=datetime.now(UTC),
    )


async def publish(rabbit_vhost: RabbitVhost, *messages: RegisteredContact | CaseEvent) -> None:
    connection = await rabbit_vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange("kanaal.events")
        for message in messages:
            if isinstance(message, RegisteredContact):
                kind = "contact.registered"
                key = f"{kind}.{message.contact.channel}"
                message_id = str(message.contact.id)
            else:
                kind = key = message.event.value
                message_id = str(uuid.uuid4())
            await events.publish(
                aio_pika.Message(
                    message.model_dump_json().encode(),
                    content_type="application/json",
                    message_id=message_id,
                    type=kind,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                routing_key=key,
                mandatory=True,
            )


async def items(rabbit_vhost: RabbitVhost, queue: str, count: int, **kw: float) -> list[WorkItem]:
    found = await rabbit_vhost.wait_for(queue, count, **kw)
    return [WorkItem.model_validate_json(m.body) for m in found]


async def test_location_skill_and_subject_queues_fill_as_the_rules_say(
    rabbit_vhost: RabbitVhost, router: Router
) -> None:
    noord = registered(location="noord", subject="paspoort")
    zuid = registered(location="zuid")
    parkeren = registered(location="noord", subject="parkeren")
    afval = registered(location="zuid", subject="afval", channel="email")
    elders = registered(location="west")
    urgent = registered(location="noord", subject="parkeren", priority=7)
    async with router():
        await publish(rabbit_vhost, noord, zuid, parkeren, afval, elders, urgent)
        expected = {
            "work.location.noord": noord,
            "work.location.zuid": zuid,
            "work.skill.parkeren": parkeren,
            "work.subject.afval": afval,
            "work.central": elders,
            "work.skill.parkeren.urgent": urgent,
        }
        for queue, contact in expected.items():
            [item] = await items(rabbit_vhost, queue, 1)
            assert item.contact_id == contact.contact.id
            assert item.queue == queue.removesuffix(".urgent")
    assert [i.rule for i in await items(rabbit_vhost, "dossier.events", 6)].count("parkeren") == 2


async def test_unclaimed_work_escalates_step_by_step_and_claimed_work_does_not(
    rabbit_vhost: RabbitVhost, router: Router
) -> None:
    unclaimed = registered(location="noord", subject="lekkage")
    claimed = registered(location="noord", subject="lekkage")
    async with router():
        await publish(rabbit_vhost, unclaimed, claimed)
        first = await items(rabbit_vhost, "work.skill.spoed", 2)
        assert all(item.sla_due_at is not None for item in first)
        await publish(
            rabbit_vhost,
            CaseEvent(
                event=CaseEventKind.CLAIMED,
                case_ref="K-2026-000042",
                contact_id=claimed.contact.id,
                agent="agent-1",
                at=datetime.now(UTC),
            ),
        )
        [lead] = await items(rabbit_vhost, "work.skill.teamleiders", 1, timeout=20, settle=1)
        [last] = await items(rabbit_vhost, "work.escalation", 1, timeout=20, settle=1)
    assert (lead.contact_id, lead.escalation_step) == (unclaimed.contact.id, 1)
    assert (last.contact_id, last.escalation_step, last.sla_due_at) == (
        unclaimed.contact.id,
        2,
        None,
    )
    escalations = [
        CaseEvent.model_validate_json(m.body)
        for m in await rabbit_vhost.wait_for("dossier.events", 10, timeout=3)
        if m.type == "case.escalated"
    ]
    assert [(e.from_queue, e.queue, e.contact_id) for e in escalations] == [
        ("work.skill.spoed", "work.skill.teamleiders", unclaimed.contact.id),
        ("work.skill.teamleiders", "work.escalation", unclaimed.contact.id),
    ]


async def test_timers_and_claims_survive_a_router_restart(
    rabbit_vhost: RabbitVhost, router: Router
) -> None:
    unclaimed = registered(location="noord", subject="lekkage")
    claimed = registered(location="noord", subject="lekkage")
    async with router():
        await publish(rabbit_vhost, unclaimed, claimed)
        await items(rabbit_vhost, "work.skill.spoed", 2)
        await publish(
            rabbit_vhost,
            CaseEvent(
                event=CaseEventKind.CLAIMED,
                case_ref="K-2026-000042",
                contact_id=claimed.contact.id,
                at=datetime.now(UTC),
            ),
        )
        await asyncio.sleep(0.3)  # let the router journal the claim before it stops
    # The router is down while the SLA passes; a new one takes over the timers.
    await asyncio.sleep(1.5)
    async with router():
        lead = await items(rabbit_vhost, "work.skill.teamleiders", 1, timeout=20, settle=1.5)
    assert [item.contact_id for item in lead] == [unclaimed.contact.id]


async def test_a_bad_routing_yaml_is_not_loaded_and_a_good_one_is(
    rabbit_vhost: RabbitVhost, router: Router, config_dir: Path
) -> None:
    path = config_dir / "routing.yaml"
    async with router():
        path.write_text(ROUTING.replace("target: work.skill.parkeren", "target: work.skil.x"))
        first = registered(location="noord", subject="parkeren")
        await publish(rabbit_vhost, first)
        [item] = await items(rabbit_vhost, "work.skill.parkeren", 1)
        assert item.contact_id == first.contact.id

        path.write_text(ROUTING.replace("target: work.skill.parkeren", "target: work.skill.p2"))
        # Keep sending until the reloaded rules route to the queue they declared.
        moved: list[WorkItem] = []
        for _ in range(50):
            await publish(rabbit_vhost, registered(location="noord", subject="parkeren"))
            try:
                moved = await items(rabbit_vhost, "work.skill.p2", 1, timeout=0.5)
            except aio_pika.exceptions.ChannelNotFoundEntity:
                await asyncio.sleep(0.2)  # not reloaded yet: the queue is not declared
                continue
            if moved:
                break
        assert moved
        assert moved[0].rule == "parkeren"


async def test_a_router_killed_mid_stream_and_restarted_loses_nothing_and_duplicates_only_ids(
    rabbit_vhost: RabbitVhost, config_dir: Path, tmp_path: Path
) -> None:
    count = 2000
    await apply(rabbit_vhost.url, load_topology(config_dir))
    contacts = [registered(location="noord") for _ in range(count)]
    connection = await rabbit_vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        events = await channel.get_exchange("kanaal.events")
        await asyncio.gather(
            *(
                events.publish(
                    aio_pika.Message(
                        c.model_dump_json().encode(),
                        content_type="application/json",
                        message_id=str(c.contact.id),
                        type="contact.registered",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key="contact.registered.counter",
                )
                for c in contacts
            )
        )
        env = {
            "KANAAL_AMQP_URL": rabbit_vhost.url,
            "KANAAL_CONFIG_DIR": str(config_dir),
            "KANAAL_ROUTER_PORT": str(free_port()),
            "KANAAL_ROUTER_STATE_PATH": str(tmp_path / "router-state.db"),
            "KANAAL_PREFETCH": "100",
            # At most 3 batches of 50 in flight: what a kill can redeliver.
            "KANAAL_ROUTER_INTAKE_BATCH": "50",
        }
        first = start_service(
            "router", "kanaal.router", int(env["KANAAL_ROUTER_PORT"]), env, tmp_path
        )
        work = await channel.declare_queue("work.location.noord", passive=True)
        while work.declaration_result.message_count == 0:
            await asyncio.sleep(0.02)
            work = await channel.declare_queue("work.location.noord", passive=True)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        # The broker hands the killed router's unacked deliveries back once it notices.
        waiting = 0
        for _ in range(50):
            intake = await channel.declare_queue("router.intake", passive=True)
            waiting = intake.declaration_result.message_count or 0
            if waiting:
                break
            await asyncio.sleep(0.1)
        assert waiting > 0, "killed after the stream ended"
        second = start_service(
            "router", "kanaal.router", int(env["KANAAL_ROUTER_PORT"]), env, tmp_path
        )
        try:
            routed = await rabbit_vhost.wait_for(
                "work.location.noord", count, timeout=120, settle=1
            )
        finally:
            await asyncio.to_thread(second.stop)
    ids = [m.message_id for m in routed]
    assert set(ids) == {str(c.contact.id) for c in contacts}
    assert len(ids) - len(set(ids)) <= 200  # redelivered in-flight work only: same ids
    assert all(WorkItem.model_validate_json(m.body).contact_id == uuid.UUID(m.message_id)
               for m in routed)  # fmt: skip
