"""The contract test kit: tells an adapter's author, on a real RabbitMQ, whether it is right.

An adapter's test hands the kit a way to feed it one sample input (an HTTP post, an
IMAP append, ...) and a list of samples; the kit checks what reached the broker:

- every published contact validates against schema v1, on `contact.received.<channel>`;
- it is persistent JSON with `message_id` = its id, `type`, `x-schema-version`;
- the same input twice gives the same id (never two contacts for one input);
- invalid input publishes no contact: it is refused (the feed raises
  :class:`InputRefused`, e.g. for a 4xx) or recorded in `dead.intake.<channel>`;
- outbound contacts are consumed and answered with `contact.sent`/`contact.failed`;
- none of the samples' personal data appears in the logs.

Use it through the `contract_kit` fixture of :mod:`kanaal.common.testing`.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from pydantic import ValidationError

from kanaal.common.contract import (
    SCHEMA_VERSION,
    ContactMessage,
    DeliveryReport,
    Direction,
    RejectedInput,
)
from kanaal.common.logging import configure_logging
from kanaal.common.messaging import SCHEMA_VERSION_HEADER, contract_message
from kanaal.common.topology import DEAD, EVENTS, OUTBOUND, Event, rejected_queue

SETTLE = 1.0  # seconds of quiet after the last message before a tap is read


class InputRefused(Exception):
    """Raised by a feed when the adapter refused the input outright (a 4xx with a reason)."""


class ContractViolation(AssertionError):
    """The adapter breaks the contract; the message says which rule and for what."""


@dataclass(frozen=True)
class Sample:
    """One input as the channel delivers it, and the personal data it carries."""

    name: str
    payload: Any
    personal_data: tuple[str, ...] = ()


Feed = Callable[[Any], Awaitable[None]]


@dataclass
class Tap:
    """What the kit saw on the broker while it watched, and how much it waits for."""

    received: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)
    reports: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)
    rejected: list[aio_pika.abc.AbstractIncomingMessage] = field(default_factory=list)
    expect_received: int = 0
    expect_reports: int = 0


class ContractKit:
    """Checks one channel's adapter on the vhost at `amqp_url` (topology already applied)."""

    def __init__(self, amqp_url: str, channel: str, timeout: float = 15.0) -> None:
        self.amqp_url = amqp_url
        self.channel = channel
        self.timeout = timeout

    @asynccontextmanager
    async def watching(self) -> AsyncIterator[Tap]:
        """Bind private queues to what the adapter may publish, and collect it on the way out."""
        tap = Tap()
        connection = await aio_pika.connect_robust(self.amqp_url, timeout=10)
        async with connection:
            channel = await connection.channel()
            events = await channel.get_exchange(EVENTS.name)
            dead = await channel.get_exchange(DEAD.name)
            received = await channel.declare_queue(exclusive=True)
            await received.bind(events, Event.CONTACT_RECEIVED.key(self.channel))
            reports = await channel.declare_queue(exclusive=True)
            await reports.bind(events, Event.CONTACT_SENT.key(self.channel))
            await reports.bind(events, Event.CONTACT_FAILED.key(self.channel))
            rejected = await channel.declare_queue(exclusive=True)
            await rejected.bind(dead, rejected_queue(self.channel).name)
            yield tap
            tap.received.extend(await _drain(received, tap.expect_received, self.timeout))
            tap.reports.extend(await _drain(reports, tap.expect_reports, self.timeout))
            tap.rejected.extend(await _drain(rejected, 0, self.timeout))

    async def check_inbound(
        self, feed: Feed, valid: Sequence[Sample], invalid: Sequence[Sample] = ()
    ) -> list[ContactMessage]:
        """Feed each valid sample twice and each invalid one once; check what was published."""
        refused: list[str] = []
        async with self.watching() as tap:
            for sample in valid:
                for _ in range(2):
                    try:
                        await feed(sample.payload)
                    except InputRefused as exc:
                        raise ContractViolation(
                            f"valid sample {sample.name!r} was refused: {exc}"
                        ) from exc
            for sample in invalid:
                try:
                    await feed(sample.payload)
                except InputRefused:
                    refused.append(sample.name)
            tap.expect_received = len(valid)
        contacts = [self._check_received(message) for message in tap.received]
        ids = {contact.id for contact in contacts}
        if len(ids) != len(valid):
            raise ContractViolation(
                f"{len(valid)} valid samples, each fed twice, gave {len(ids)} distinct contact "
                f"ids (expected {len(valid)}): ids must be deterministic and invalid input "
                "must publish nothing"
            )
        rejected = [RejectedInput.model_validate_json(m.body) for m in tap.rejected]
        if len(refused) + len(rejected) < len(invalid):
            silent = len(invalid) - len(refused) - len(rejected)
            raise ContractViolation(
                f"{silent} invalid sample(s) were neither refused nor recorded in "
                f"{rejected_queue(self.channel).name}: bad input must never vanish silently"
            )
        return contacts

    async def check_outbound(self, contacts: Sequence[ContactMessage]) -> list[DeliveryReport]:
        """Publish outbound contacts; each must be answered by exactly one delivery report."""
        async with self.watching() as tap:
            connection = await aio_pika.connect_robust(self.amqp_url, timeout=10)
            async with connection:
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                exchange = await channel.get_exchange(OUTBOUND.name)
                for contact in contacts:
                    if contact.direction is not Direction.OUTBOUND:
                        raise ValueError("check_outbound takes outbound contacts")
                    await exchange.publish(
                        contract_message(
                            contact, message_type=Event.CONTACT_OUTBOUND, message_id=contact.id
                        ),
                        routing_key=self.channel,
                    )
            tap.expect_reports = len(contacts)
        reports = [DeliveryReport.model_validate_json(m.body) for m in tap.reports]
        answered = sorted(str(r.contact_id) for r in reports)
        expected = sorted(str(c.id) for c in contacts)
        if answered != expected:
            raise ContractViolation(
                f"outbound contacts {expected} were answered by reports for {answered}: "
                "every outbound contact needs exactly one contact.sent or contact.failed"
            )
        return reports

    @staticmethod
    def check_logs(log_text: str, samples: Sequence[Sample]) -> None:
        """No sample's personal data may appear in the logs."""
        leaked = [
            f"{sample.name}: {value[:3]}…"
            for sample in samples
            for value in sample.personal_data
            if value and value in log_text
        ]
        if leaked:
            raise ContractViolation(f"personal data reached the logs ({', '.join(leaked)})")

    def _check_received(self, message: aio_pika.abc.AbstractIncomingMessage) -> ContactMessage:
        try:
            contact = ContactMessage.model_validate_json(message.body)
        except ValidationError as exc:
            raise ContractViolation(f"a published contact breaks schema v1: {exc}") from exc
        problems = []
        if message.delivery_mode != aio_pika.DeliveryMode.PERSISTENT:
            problems.append("not persistent")
        if message.content_type != "application/json":
            problems.append(f"content_type {message.content_type!r}")
        if message.message_id != str(contact.id):
            problems.append("message_id is not the contact id")
        if message.type != Event.CONTACT_RECEIVED.value:
            problems.append(f"type {message.type!r}")
        if (message.headers or {}).get(SCHEMA_VERSION_HEADER) != SCHEMA_VERSION:
            problems.append(f"header {SCHEMA_VERSION_HEADER} missing or wrong")
        if contact.channel != self.channel:
            problems.append(f"channel {contact.channel!r}")
        if problems:
            raise ContractViolation(f"contact {contact.id}: {', '.join(problems)}")
        return contact


async def _drain(
    queue: aio_pika.abc.AbstractQueue, at_least: int, timeout: float
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take messages until `at_least` arrived (or `timeout` passed), then until quiet.

    The quiet period lets a duplicate that should not be there show itself.
    """
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(taken) < at_least and loop.time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            taken.append(message)
    quiet_since = loop.time()
    while loop.time() - quiet_since < SETTLE:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        taken.append(message)
        quiet_since = loop.time()
    return taken


@contextmanager
def captured_logs(service: str) -> Iterator[io.StringIO]:
    """Send every log record of this process through the masking pipeline into a buffer."""
    buffer = io.StringIO()
    configure_logging(service, "DEBUG", "json", stream=buffer)
    yield buffer


def outbound_reply(channel: str, entry_point: str, text: str, **fields: Any) -> ContactMessage:
    """An outbound contact as the dossier sends it, for `check_outbound`."""
    return ContactMessage.new(
        channel=channel,
        direction=Direction.OUTBOUND,
        entry_point=entry_point,
        source_ref=f"reply-{uuid.uuid4()}",
        text=text,
        **fields,
    )
