"""The contract kit catches the mistakes integrators make, and passes an adapter that makes none."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import pytest
from pydantic import SecretStr

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.contract import ContactMessage
from kanaal.common.contract_kit import (
    ContractKit,
    ContractViolation,
    InputRefused,
    Sample,
    captured_logs,
    outbound_reply,
)
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import EVENTS, Event

VALID = [Sample("one", {"ref": "1", "text": "hallo Piet Puk"}, ("Piet Puk",))]
INVALID = [Sample("no ref", {"text": "zonder id"})]
Kit = Callable[[str], Awaitable[ContractKit]]


def to_contact(payload: dict[str, Any]) -> ContactMessage:
    return ContactMessage.new(
        channel="sms", entry_point="+3197010000000", source_ref=payload["ref"], text=payload["text"]
    )


@pytest.fixture
async def adapter(rabbit_vhost: RabbitVhost) -> AsyncIterator[ChannelAdapter]:
    adapter = ChannelAdapter("sms", ServiceSettings(amqp_url=SecretStr(rabbit_vhost.url)))
    await adapter.broker.connect()
    try:
        yield adapter
    finally:
        await adapter.broker.stop()


async def test_a_correct_adapter_passes(contract_kit: Kit, adapter: ChannelAdapter) -> None:
    kit = await contract_kit("sms")

    async def feed(payload: dict[str, Any]) -> None:
        if "ref" not in payload:
            raise InputRefused("422 ref is required")
        await adapter.receive(to_contact(payload))

    contacts = await kit.check_inbound(feed, VALID, INVALID)
    assert [c.source_ref for c in contacts] == ["1", "1"]


async def test_random_ids_are_caught(contract_kit: Kit, adapter: ChannelAdapter) -> None:
    kit = await contract_kit("sms")

    async def feed(payload: dict[str, Any]) -> None:
        await adapter.receive(to_contact({**payload, "ref": str(uuid.uuid4())}))

    with pytest.raises(ContractViolation, match="distinct contact ids"):
        await kit.check_inbound(feed, VALID)


async def test_silently_dropped_input_is_caught(contract_kit: Kit, adapter: ChannelAdapter) -> None:
    kit = await contract_kit("sms")

    async def feed(payload: dict[str, Any]) -> None:
        if "ref" in payload:
            await adapter.receive(to_contact(payload))

    with pytest.raises(ContractViolation, match="neither refused nor recorded"):
        await kit.check_inbound(feed, VALID, INVALID)


async def test_rejected_input_recorded_in_dead_intake_passes(
    contract_kit: Kit, adapter: ChannelAdapter
) -> None:
    kit = await contract_kit("sms")

    async def feed(payload: dict[str, Any]) -> None:
        if "ref" not in payload:
            await adapter.reject(entry_point="+3197010000000", reason="no message id")
            return
        await adapter.receive(to_contact(payload))

    await kit.check_inbound(feed, VALID, INVALID)


async def test_a_transient_message_is_caught(contract_kit: Kit, rabbit_vhost: RabbitVhost) -> None:
    kit = await contract_kit("sms")

    async def feed(payload: dict[str, Any]) -> None:
        contact = to_contact(payload)
        connection = await aio_pika.connect(rabbit_vhost.url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(EVENTS.name)
            await exchange.publish(
                aio_pika.Message(
                    contact.model_dump_json().encode(),
                    content_type="application/json",
                    message_id=str(contact.id),
                    type=Event.CONTACT_RECEIVED.value,
                    headers={"x-schema-version": 1},
                ),
                routing_key=Event.CONTACT_RECEIVED.key("sms"),
            )

    with pytest.raises(ContractViolation, match="not persistent"):
        await kit.check_inbound(feed, VALID)


async def test_an_unanswered_outbound_contact_is_caught(contract_kit: Kit) -> None:
    kit = await contract_kit("sms")
    kit.timeout = 2
    with pytest.raises(ContractViolation, match=r"exactly one contact\.sent"):
        await kit.check_outbound([outbound_reply("sms", "+3197010000000", "Uw afspraak staat")])


async def test_answered_outbound_contacts_pass(
    contract_kit: Kit, rabbit_vhost: RabbitVhost
) -> None:
    kit = await contract_kit("sms")
    adapter = ChannelAdapter(
        "sms", ServiceSettings(amqp_url=SecretStr(rabbit_vhost.url), retry_delay=0.05)
    )

    async def send(contact: ContactMessage) -> str:
        return f"gateway-{contact.id}"

    adapter.on_outbound(send)
    app = adapter.app()
    async with app.router.lifespan_context(app):
        reports = await kit.check_outbound(
            [outbound_reply("sms", "+3197010000000", "Uw afspraak staat")]
        )
    assert reports[0].channel_ref is not None


def test_personal_data_in_logs_is_caught() -> None:
    with captured_logs("sms") as logs:
        logging.getLogger("sloppy").info("got %s", "Piet Puk")
    with pytest.raises(ContractViolation, match="personal data reached the logs"):
        ContractKit.check_logs(logs.getvalue(), VALID)
