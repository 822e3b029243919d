"""The router's shell: consume `router.intake`, decide, publish the work item and the event."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import FastAPI
from pydantic import Field

from kanaal.common.config import ROUTING_FILE
from kanaal.common.contract import RegisteredContact, WorkItem
from kanaal.common.messaging import Publisher, make_broker, subscribe
from kanaal.common.service import broker_service_app
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.common.topology import ROUTER_INTAKE, WORK, Event
from kanaal.router.rules import RoutingRules


class RouterSettings(ServiceSettings):
    router_port: int = Field(SERVICE_PORTS["router"], description="router HTTP port")


def create_app(settings: RouterSettings) -> FastAPI:
    rules = RoutingRules.load(settings.config_dir / ROUTING_FILE)
    broker = make_broker(settings, "router")
    publisher = Publisher(broker, settings.publish_timeout)

    async def route(registered: RegisteredContact) -> None:
        decision = rules.decide(registered)
        contact = registered.contact
        item = WorkItem(
            contact_id=contact.id,
            case_ref=registered.case_ref,
            party_id=registered.party_id,
            channel=contact.channel,
            subject=contact.subject,
            location=contact.location,
            queue=decision.queue,
            rule=decision.rule,
            priority=decision.priority,
            routed_at=datetime.now(UTC),
        )
        await publisher.publish(
            item,
            exchange=WORK,
            routing_key=decision.queue,
            message_type=Event.WORK_ITEM,
            message_id=contact.id,
        )
        await publisher.event(
            Event.CONTACT_ROUTED, item, message_id=contact.id, channel=contact.channel
        )

    subscribe(
        broker,
        ROUTER_INTAKE,
        model=RegisteredContact,
        effect=route,
        publisher=publisher,
        retry_delay=settings.retry_delay,
        description="Registered contacts; each becomes one work item and a contact.routed event.",
    )
    return broker_service_app("router", settings, broker)
