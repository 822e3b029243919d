"""The suite's AsyncAPI document, generated with FastStream from the contract and the topology.

Integrators in any language read it (committed as docs/asyncapi.yaml): which exchange,
which routing key, which payload schema, who publishes and who consumes. The document
is built from the same topology values and message models the services use, on a broker
that is never connected.
"""

from __future__ import annotations

from typing import Any

import yaml
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from kanaal.common.contract import (
    CaseEvent,
    ContactMessage,
    ContactUpdate,
    DeliveryReport,
    RegisteredContact,
    RejectedInput,
    WorkItem,
)
from kanaal.common.topology import (
    DEAD,
    DOSSIER_EVENTS,
    DOSSIER_INTAKE,
    EVENTS,
    OUTBOUND,
    ROUTER_INTAKE,
    WORK,
    Event,
)

CHANNEL = "{channel}"


def _consumer(
    broker: RabbitBroker, queue: RabbitQueue, exchange: Any, model: Any, title: str, text: str
) -> None:
    async def handle(message: model) -> None:
        """Documentation only: this broker never consumes."""

    handle.__annotations__ = {"message": model, "return": None}
    broker.subscriber(queue, exchange, title=title, description=text)(handle)


def _publisher(
    broker: RabbitBroker,
    exchange: Any,
    key: str,
    model: type[BaseModel],
    who: str,
    text: str,
    title: str | None = None,
) -> None:
    broker.publisher(
        exchange=exchange,
        routing_key=key,
        schema=model,
        persist=True,
        title=title or f"{key}:publish",
        description=f"Published by {who}. {text}",
    )


def suite_broker() -> RabbitBroker:
    """A never-connected broker carrying every publication and consumption of the suite."""
    broker = RabbitBroker("amqp://guest:guest@localhost:5672/")
    events, work, outbound, dead = EVENTS.rabbit(), WORK.rabbit(), OUTBOUND.rabbit(), DEAD.rabbit()

    # What every adapter does (built-in and integrators').
    _publisher(
        broker,
        events,
        Event.CONTACT_RECEIVED.key(CHANNEL),
        ContactMessage,
        "every channel adapter",
        "A contact as it came in; message_id = its deterministic id.",
    )
    for event in (Event.CONTACT_SENT, Event.CONTACT_FAILED):
        _publisher(
            broker,
            events,
            event.key(CHANNEL),
            DeliveryReport,
            "the channel adapter that sent an outbound contact",
            "Whether an answer went out (and the channel's reference), or why not.",
        )
    _publisher(
        broker,
        events,
        Event.CONTACT_UPDATED.key(CHANNEL),
        ContactUpdate,
        "a channel adapter",
        "Later facts about a received contact (called to a desk, served).",
    )
    _publisher(
        broker,
        dead,
        "dead.intake.{channel}",
        RejectedInput,
        "a channel adapter",
        "Input that could not become a contact: where it is kept and why.",
    )
    _consumer(
        broker,
        RabbitQueue("outbound.{channel}", routing_key=CHANNEL),
        outbound,
        ContactMessage,
        "outbound.{channel}:consume",
        "Consumed by the channel's adapter: answers (direction outbound) to deliver.",
    )

    # The dossier.
    _consumer(
        broker,
        DOSSIER_INTAKE.rabbit(),
        events,
        ContactMessage,
        "dossier.intake:consume",
        "Every received contact, stored once by id.",
    )
    _consumer(
        broker,
        DOSSIER_EVENTS.rabbit(),
        events,
        WorkItem | DeliveryReport | ContactUpdate | CaseEvent,
        "dossier.events:consume",
        "Routed, sent, failed, updated contacts and case events, onto the case timeline.",
    )
    _publisher(
        broker,
        events,
        Event.CONTACT_REGISTERED.key(CHANNEL),
        RegisteredContact,
        "the dossier",
        "The contact is stored, with its party and case (and the case's owner, for sticky "
        "routing).",
    )
    _publisher(
        broker,
        outbound,
        CHANNEL,
        ContactMessage,
        "the dossier",
        "An agent's answer (direction outbound), type contact.outbound, to the channel's adapter.",
        title="kanaal.outbound:publish",
    )
    for kind in ("case.claimed", "case.transferred", "case.closed"):
        _publisher(
            broker, events, kind, CaseEvent, "the dossier", "Decided atomically by the dossier."
        )

    # The router.
    _consumer(
        broker,
        ROUTER_INTAKE.rabbit(),
        events,
        RegisteredContact,
        "router.intake:consume",
        "Registered contacts to route.",
    )
    _publisher(
        broker,
        work,
        "work.{kind}.{name}",
        WorkItem,
        "the router",
        "A piece of work in a work queue; no message text.",
        title="kanaal.work:publish",
    )
    _publisher(
        broker,
        events,
        Event.CONTACT_ROUTED.key(CHANNEL),
        WorkItem,
        "the router",
        "Which queue and rule a contact went to.",
    )
    _publisher(
        broker, events, "case.escalated", CaseEvent, "the router", "An SLA passed unclaimed."
    )
    return broker


def asyncapi_yaml(version: str) -> str:
    """The AsyncAPI 3.0 document of the whole suite, as YAML."""
    spec = AsyncAPI(
        suite_broker(),
        title="Open Kanaal",
        version=version,
        description=(
            "Message contract of Open Kanaal. Every message: JSON body, content_type "
            "application/json, persistent (delivery_mode 2), message_id, type = the event "
            "name, header x-schema-version = 1; publishers use publisher confirms. "
            "See docs/integrators.md."
        ),
        license={"name": "EUPL-1.2", "url": "https://joinup.ec.europa.eu/software/page/eupl"},
    )
    # FastStream's order of channels varies between runs; sorted keys make it reviewable.
    document = yaml.safe_load(spec.to_specification().to_yaml())
    return str(yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100))
