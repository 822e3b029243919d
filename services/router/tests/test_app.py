"""The router's wiring against the real RabbitMQ: registered contact in, work item and event out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import pytest
from pydantic import SecretStr

from kanaal.common.config import load_topology
from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact, WorkItem
from kanaal.common.messaging import (
    DEAD_QUEUE_HEADER,
    DEAD_REASON_HEADER,
    RETRIED,
    SCHEMA_VERSION_HEADER,
)
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import apply
from kanaal.router.app import RouterSettings, create_app
from kanaal.router.lock import AnotherRouterRuns

REPO_ROOT = Path(__file__).resolve().parents[3]
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
async def router(rabbit_vhost: RabbitVhost, tmp_path: Path) -> AsyncIterator[None]:
    """The router app running (topology applied, consuming) on a fresh vhost."""
    settings = RouterSettings(
        amqp_url=SecretStr(rabbit_vhost.url),
        config_dir=REPO_ROOT / "deploy" / "config",
        retry_delay=0.1,
        router_state_path=tmp_path / "router-state.db",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield


def registered_contact(subject: str = "parkeren", priority: int = 4) -> RegisteredContact:
    contact = ContactMessage.new(
        channel="web",
        entry_point="contactformulier",
        source_ref=f"submission-{uuid.uuid4()}",
        occurred_at=WHEN,
        subject=subject,
        priority=priority,
        text="Mijn parkeervergunning is verlopen",
    )
    return RegisteredContact(
        contact=contact,
        party_id=uuid.uuid4(),
        case_ref="K-2026-000042",
        case_status=CaseStatus.OPEN,
        case_is_new=True,
        registered_at=WHEN,
    )


async def publish(channel: aio_pika.abc.AbstractChannel, body: bytes, message_id: str) -> None:
    events = await channel.get_exchange("kanaal.events")
    await events.publish(
        aio_pika.Message(
            body,
            content_type="application/json",
            message_id=message_id,
            type="contact.registered",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        ),
        routing_key="contact.registered.web",
        mandatory=True,
    )


async def test_a_registered_contact_becomes_a_work_item_in_its_subject_queue_and_a_routed_event(
    rabbit_vhost: RabbitVhost, router: None, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    registered = registered_contact("parkeren", priority=4)
    contact_id = str(registered.contact.id)
    await publish(amqp_channel, registered.model_dump_json().encode(), contact_id)

    work = await rabbit_vhost.get("work.subject.parkeren")
    item = WorkItem.model_validate_json(work.body)
    assert work.message_id == contact_id
    assert work.type == "work.item"
    assert work.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert work.headers[SCHEMA_VERSION_HEADER] == 1
    assert item.contact_id == registered.contact.id
    assert item.queue == "work.subject.parkeren"
    assert item.rule == "strategy:subject"
    assert item.priority == 4
    assert item.case_ref == "K-2026-000042"
    assert item.party_id == registered.party_id
    assert b"parkeervergunning" not in work.body  # a work item carries no message text

    routed = await rabbit_vhost.get("dossier.events")
    assert routed.routing_key == "contact.routed.web"
    assert routed.type == "contact.routed"
    assert routed.message_id == contact_id
    assert WorkItem.model_validate_json(routed.body) == item


async def test_a_subject_without_its_own_queue_lands_in_work_central(
    rabbit_vhost: RabbitVhost, router: None, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    registered = registered_contact("hondenbelasting")
    await publish(amqp_channel, registered.model_dump_json().encode(), str(registered.contact.id))

    work = await rabbit_vhost.get("work.central")
    item = WorkItem.model_validate_json(work.body)
    assert item.contact_id == registered.contact.id
    assert item.rule == "default"


async def test_an_invalid_message_ends_in_dead_router_intake_and_routing_goes_on(
    rabbit_vhost: RabbitVhost, router: None, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    await publish(amqp_channel, b"this is not json", "garbage-1")
    await publish(amqp_channel, b'{"contact": {"channel": "web"}}', "garbage-2")
    registered = registered_contact("afval")
    await publish(amqp_channel, registered.model_dump_json().encode(), str(registered.contact.id))

    dead = await rabbit_vhost.wait_for("dead.router.intake", 2)
    assert [m.message_id for m in dead] == ["garbage-1", "garbage-2"]
    assert dead[0].body == b"this is not json"
    for message in dead:
        assert message.headers[DEAD_QUEUE_HEADER] == "router.intake"
        assert str(message.headers[DEAD_REASON_HEADER]).startswith("invalid message: ")
    assert "contact.id: Field required" in str(dead[1].headers[DEAD_REASON_HEADER])

    work = await rabbit_vhost.get("work.subject.afval")
    assert WorkItem.model_validate_json(work.body).contact_id == registered.contact.id


async def test_a_contact_whose_work_queue_is_gone_is_retried_and_the_batch_goes_on(
    rabbit_vhost: RabbitVhost, router: None, amqp_channel: aio_pika.abc.AbstractChannel
) -> None:
    # Someone deleted a work queue: its work item comes back unroutable. That contact is
    # handed back (not acked, not lost) while the other contacts of its batch are routed.
    await amqp_channel.queue_delete("work.subject.afval")
    retried_before = retried("router.intake")
    lost = registered_contact("afval")
    fine = registered_contact("parkeren")
    await publish(amqp_channel, lost.model_dump_json().encode(), str(lost.contact.id))
    await publish(amqp_channel, fine.model_dump_json().encode(), str(fine.contact.id))

    work = await rabbit_vhost.get("work.subject.parkeren")
    assert WorkItem.model_validate_json(work.body).contact_id == fine.contact.id
    while retried("router.intake") == retried_before:  # noqa: ASYNC110 - in-process counter
        await asyncio.sleep(0.02)

    await apply(rabbit_vhost.url, load_topology(REPO_ROOT / "deploy" / "config", router=True))
    back = await rabbit_vhost.get("work.subject.afval")
    assert WorkItem.model_validate_json(back.body).contact_id == lost.contact.id


def retried(queue: str) -> float:
    return RETRIED.labels(queue)._value.get()


async def test_a_second_router_on_the_vhost_refuses_to_start_and_the_first_routes_on(
    rabbit_vhost: RabbitVhost,
    router: None,
    amqp_channel: aio_pika.abc.AbstractChannel,
    tmp_path: Path,
) -> None:
    # Two routers would each see part of the claims on router.events: the second must
    # not run beside the first, and must say why.
    second = RouterSettings(
        amqp_url=SecretStr(rabbit_vhost.url),
        config_dir=REPO_ROOT / "deploy" / "config",
        router_state_path=tmp_path / "second-state.db",
        router_lock_wait=1.0,
    )
    app = create_app(second)
    with pytest.raises(AnotherRouterRuns, match="run exactly one router per vhost"):
        async with app.router.lifespan_context(app):
            pytest.fail("a second router started")

    registered = registered_contact("parkeren")
    await publish(amqp_channel, registered.model_dump_json().encode(), str(registered.contact.id))
    work = await rabbit_vhost.get("work.subject.parkeren")
    assert WorkItem.model_validate_json(work.body).contact_id == registered.contact.id


async def test_a_router_starts_once_the_one_before_it_has_stopped(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    def settings(name: str) -> RouterSettings:
        return RouterSettings(
            amqp_url=SecretStr(rabbit_vhost.url),
            config_dir=REPO_ROOT / "deploy" / "config",
            router_state_path=tmp_path / f"{name}.db",
            router_lock_wait=1.0,
        )

    first = create_app(settings("first"))
    async with first.router.lifespan_context(first):
        pass
    second = create_app(settings("second"))
    async with second.router.lifespan_context(second):
        registered = registered_contact("parkeren")
        connection = await rabbit_vhost.connect()
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            await publish(channel, registered.model_dump_json().encode(), "after-restart")
        work = await rabbit_vhost.get("work.subject.parkeren")
        assert WorkItem.model_validate_json(work.body).contact_id == registered.contact.id
