"""The adapter kit: everything a channel adapter needs besides its own channel logic.

An adapter builds one :class:`ChannelAdapter` and calls three things on it:
`receive(contact)` for what comes in, `reject(...)` for what cannot be turned into a
contact, and `on_outbound(send)` for answers to send. Publishing with confirms,
dead-lettering, the outbound queue, delivery reports, health and metrics are done here
once, so every channel behaves the same for operators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, status
from faststream.rabbit import RabbitBroker

from kanaal.common.contract import (
    ChannelDataValue,
    ContactMessage,
    DeliveryReport,
    DeliveryStatus,
    Direction,
    RejectedInput,
)
from kanaal.common.logging import get_logger
from kanaal.common.messaging import Publisher, Refused, make_broker, subscribe
from kanaal.common.service import Lifespan, ReadinessCheck, broker_service_app
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import DEAD, Event, outbound_queue, rejected_queue

log = get_logger(__name__)

#: `send(contact)` delivers an outbound contact and returns the channel's id for it.
Send = Callable[[ContactMessage], Awaitable[str | None]]


class PermanentFailure(Exception):
    """Sending can never succeed (a 5xx, a refused recipient): report `contact.failed`.

    Any other exception from `send` is temporary: the outbound contact is handed back
    and tried again, until the queue's delivery limit dead-letters it.
    """


class ChannelAdapter:
    """One channel's connection to the suite."""

    def __init__(self, channel: str, settings: ServiceSettings, service: str | None = None):
        self.channel = channel
        self.settings = settings
        self.service = service or channel
        self.broker: RabbitBroker = make_broker(settings, self.service)
        self.publisher = Publisher(self.broker, settings.publish_timeout)

    async def receive(self, contact: ContactMessage) -> None:
        """Publish an inbound contact; when this returns, the broker has it on disk."""
        if contact.channel != self.channel:
            raise ValueError(f"a {contact.channel} contact on the {self.channel} adapter")
        await self.publisher.event(
            Event.CONTACT_RECEIVED, contact, message_id=contact.id, channel=self.channel
        )
        log.info("contact received", contact_id=str(contact.id), entry_point=contact.entry_point)

    async def accept(self, contact: ContactMessage) -> None:
        """`receive` for an HTTP endpoint: a broker that does not confirm becomes a 503.

        The caller (a website, a PBX, a gateway) is told to retry, with `Retry-After`; it
        never gets a 2xx for a contact the broker does not have.
        """
        try:
            await self.receive(contact)
        except Exception as exc:
            log.exception("publishing failed", contact_id=str(contact.id))
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "not accepted right now; please try again shortly",
                headers={"Retry-After": "30"},
            ) from exc

    async def reject(
        self,
        *,
        entry_point: str,
        reason: str,
        source_ref: str | None = None,
        kept_at: str | None = None,
        channel_data: Mapping[str, ChannelDataValue] | None = None,
    ) -> RejectedInput:
        """Record input that cannot become a contact in `dead.intake.<channel>`, with why."""
        rejected = RejectedInput(
            channel=self.channel,
            entry_point=entry_point,
            source_ref=source_ref,
            reason=reason,
            kept_at=kept_at,
            channel_data=dict(channel_data or {}),
            rejected_at=datetime.now(UTC),
        )
        queue = rejected_queue(self.channel)
        await self.publisher.publish(
            rejected,
            exchange=DEAD,
            routing_key=queue.name,
            message_type="input.rejected",
            message_id=f"{self.channel}:{entry_point}:{source_ref or kept_at or reason}",
        )
        log.warning("input rejected", entry_point=entry_point, reason=reason)
        return rejected

    def on_outbound(self, send: Send) -> None:
        """Consume `outbound.<channel>` with `send` and report every outcome as an event."""

        async def deliver(contact: ContactMessage) -> None:
            if contact.channel != self.channel or contact.direction is not Direction.OUTBOUND:
                raise Refused(
                    f"not an outbound {self.channel} contact "
                    f"({contact.direction} {contact.channel})"
                )
            try:
                channel_ref = await send(contact)
            except PermanentFailure as exc:
                await self._report(contact, DeliveryStatus.FAILED, reason=str(exc))
                return
            await self._report(contact, DeliveryStatus.SENT, channel_ref=channel_ref)

        subscribe(
            self.broker,
            outbound_queue(self.channel),
            model=ContactMessage,
            effect=deliver,
            publisher=self.publisher,
            retry_delay=self.settings.retry_delay,
            description=f"Outbound {self.channel} contacts to deliver.",
        )

    async def _report(
        self,
        contact: ContactMessage,
        status: DeliveryStatus,
        *,
        channel_ref: str | None = None,
        reason: str | None = None,
    ) -> None:
        report = DeliveryReport(
            contact_id=contact.id,
            channel=self.channel,
            case_ref=contact.case_ref,
            status=status,
            channel_ref=channel_ref,
            reason=reason,
            reported_at=datetime.now(UTC),
        )
        event = Event.CONTACT_SENT if status is DeliveryStatus.SENT else Event.CONTACT_FAILED
        await self.publisher.event(event, report, message_id=contact.id, channel=self.channel)
        log.info("outbound contact reported", contact_id=str(contact.id), status=status.value)

    def app(
        self,
        *,
        checks: Mapping[str, ReadinessCheck] | None = None,
        lifespan: Lifespan | None = None,
        **fastapi_args: Any,
    ) -> FastAPI:
        """The adapter's FastAPI app: /healthz, /readyz, /metrics and the broker's lifetime."""
        return broker_service_app(
            self.service,
            self.settings,
            self.broker,
            checks=checks,
            lifespan=lifespan,
            **fastapi_args,
        )
