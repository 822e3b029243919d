"""The adapter kit on the real RabbitMQ: in, refused, out and reported, alike for each channel."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from kanaal.common.adapter import ChannelAdapter, PermanentFailure
from kanaal.common.contract import (
    ContactMessage,
    DeliveryReport,
    DeliveryStatus,
    Direction,
    Party,
    RejectedInput,
)
from kanaal.common.messaging import DEAD_REASON_HEADER, Publisher
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import OUTBOUND, Event

REPO = Path(__file__).resolve().parents[3]
WAIT = 15.0


def settings(vhost: RabbitVhost) -> ServiceSettings:
    return ServiceSettings(
        amqp_url=SecretStr(vhost.url), config_dir=REPO / "deploy/config", retry_delay=0.05
    )


def reply(
    text: str, channel: str = "email", direction: Direction = Direction.OUTBOUND
) -> ContactMessage:
    return ContactMessage.new(
        channel=channel,
        direction=direction,
        entry_point="info@gemeente.example",
        source_ref=f"reply-{uuid.uuid4()}",
        party=Party(email="burger@example.org"),
        case_ref="K-2026-000042",
        text=text,
    )


@pytest.fixture
async def email_adapter(
    rabbit_vhost: RabbitVhost,
) -> AsyncIterator[tuple[ChannelAdapter, list[str]]]:
    """An e-mail adapter whose `send` fails as the text asks, and remembers what it sent."""
    adapter = ChannelAdapter("email", settings(rabbit_vhost))
    sent: list[str] = []
    attempts: dict[uuid.UUID, int] = {}

    async def send(contact: ContactMessage) -> str:
        attempts[contact.id] = attempts.get(contact.id, 0) + 1
        if contact.text == "refused recipient":
            raise PermanentFailure("550 recipient refused")
        if contact.text == "server busy once" and attempts[contact.id] == 1:
            raise ConnectionError("421 try again later")
        sent.append(contact.text)
        return f"<{contact.id}@kanaal>"

    adapter.on_outbound(send)
    app: FastAPI = adapter.app()
    async with app.router.lifespan_context(app):
        yield adapter, sent


async def publish_outbound(adapter: ChannelAdapter, contact: ContactMessage) -> None:
    await Publisher(adapter.broker).publish(
        contact,
        exchange=OUTBOUND,
        routing_key=contact.channel,
        message_type=Event.CONTACT_OUTBOUND,
        message_id=contact.id,
    )


async def reports(vhost: RabbitVhost, count: int) -> list[DeliveryReport]:
    # dossier.events is bound to contact.sent.* and contact.failed.*.
    found = await vhost.wait_for("dossier.events", count, timeout=WAIT)
    return [DeliveryReport.model_validate_json(m.body) for m in found]


async def test_a_received_contact_reaches_the_dossier_intake(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, _ = email_adapter
    contact = ContactMessage.new(
        channel="email", entry_point="info@gemeente.example", source_ref="<m1@example.org>"
    )
    await adapter.receive(contact)
    (message,) = await rabbit_vhost.wait_for("dossier.intake", 1, timeout=WAIT)
    assert message.message_id == str(contact.id)
    assert message.routing_key == "contact.received.email"


async def test_a_contact_of_another_channel_is_not_published(
    email_adapter: tuple[ChannelAdapter, list[str]],
) -> None:
    adapter, _ = email_adapter
    web = ContactMessage.new(channel="web", entry_point="form", source_ref="1")
    with pytest.raises(ValueError, match="web contact on the email adapter"):
        await adapter.receive(web)


async def test_rejected_input_is_kept_with_its_reason(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, _ = email_adapter
    await adapter.reject(
        entry_point="info@gemeente.example",
        reason="no parsable MIME structure",
        kept_at="INBOX.error UID 17",
        channel_data={"uid": 17},
    )
    (message,) = await rabbit_vhost.wait_for("dead.intake.email", 1, timeout=WAIT)
    rejected = RejectedInput.model_validate_json(message.body)
    assert (rejected.reason, rejected.kept_at) == (
        "no parsable MIME structure",
        "INBOX.error UID 17",
    )


async def test_a_sent_reply_is_reported_sent_with_the_channels_reference(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, sent = email_adapter
    contact = reply("Uw vergunning is verlengd.")
    await publish_outbound(adapter, contact)
    (report,) = await reports(rabbit_vhost, 1)
    assert report.status is DeliveryStatus.SENT
    assert report.contact_id == contact.id
    assert report.channel_ref == f"<{contact.id}@kanaal>"
    assert report.case_ref == "K-2026-000042"
    assert sent == ["Uw vergunning is verlengd."]


async def test_a_permanent_failure_is_reported_failed_with_the_reason(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, sent = email_adapter
    await publish_outbound(adapter, reply("refused recipient"))
    (report,) = await reports(rabbit_vhost, 1)
    assert report.status is DeliveryStatus.FAILED
    assert report.reason == "550 recipient refused"
    assert sent == []


async def test_a_temporary_failure_is_tried_again_and_sent_once(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, sent = email_adapter
    await publish_outbound(adapter, reply("server busy once"))
    (report,) = await reports(rabbit_vhost, 1)
    assert report.status is DeliveryStatus.SENT
    assert sent == ["server busy once"]


async def test_an_inbound_contact_on_the_outbound_queue_is_dead_lettered_not_sent(
    rabbit_vhost: RabbitVhost, email_adapter: tuple[ChannelAdapter, list[str]]
) -> None:
    adapter, sent = email_adapter
    await publish_outbound(adapter, reply("oops", direction=Direction.INBOUND))
    (dead,) = await rabbit_vhost.wait_for("dead.outbound.email", 1, timeout=WAIT)
    assert "not an outbound email contact" in str(dead.headers[DEAD_REASON_HEADER])
    assert sent == []


async def test_accept_answers_503_with_retry_after_when_the_broker_does_not_have_it() -> None:
    from fastapi import HTTPException

    adapter = ChannelAdapter(
        "web", ServiceSettings(amqp_url=SecretStr("amqp://guest:guest@127.0.0.1:1/"))
    )
    contact = ContactMessage.new(channel="web", entry_point="form", source_ref="1")
    with pytest.raises(HTTPException) as refused:
        await adapter.accept(contact)
    assert refused.value.status_code == 503
    assert refused.value.headers == {"Retry-After": "30"}
