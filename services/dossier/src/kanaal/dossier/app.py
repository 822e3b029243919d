"""The dossier's shell: consume contacts and events, store them, relay the outbox, serve the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.rabbit.annotations import RabbitMessage
from pydantic import BaseModel, Field, SecretStr

from kanaal.common.config import CHANNELS_FILE, ChannelsConfig, load_section, load_topology
from kanaal.common.contract import (
    CaseEvent,
    ContactMessage,
    ContactUpdate,
    DeliveryReport,
    WorkItem,
)
from kanaal.common.database import database_reachable
from kanaal.common.logging import get_logger
from kanaal.common.messaging import (
    Publisher,
    Refused,
    consume,
    make_broker,
    raw_body,
    subscribe,
)
from kanaal.common.service import broker_check, running_broker, service_app
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.common.topology import DOSSIER_EVENTS, DOSSIER_INTAKE, EVENTS, Event
from kanaal.dossier.agents import AgentDirectory, load_agents
from kanaal.dossier.api import api_router
from kanaal.dossier.database import create_engine, upgrade
from kanaal.dossier.intake import IntakeWriter
from kanaal.dossier.outbox import OutboxRelay
from kanaal.dossier.store import DossierStore, Unprocessable

log = get_logger(__name__)

CASE_EVENTS = frozenset(
    e.value
    for e in (Event.CASE_CLAIMED, Event.CASE_TRANSFERRED, Event.CASE_ESCALATED, Event.CASE_CLOSED)
)


class DossierSettings(ServiceSettings):
    dossier_port: int = Field(SERVICE_PORTS["dossier"], description="dossier HTTP port")
    database_url: SecretStr = Field(
        SecretStr("sqlite+aiosqlite:///var/dossier.db"),
        description="SQLAlchemy URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
    )
    dossier_api_token: SecretStr | None = Field(
        None,
        description="service token for /api/v1 (role service: contacts and cases, read only)",
    )
    outbox_interval: float = Field(
        5.0, gt=0, description="seconds between outbox passes that repair missed publishes"
    )
    case_reopen_days: float = Field(
        14.0, ge=0, description="a contact this many days after closing reopens the case"
    )
    intake_batch_size: int = Field(
        50, ge=1, le=1000, description="most contacts registered in one transaction"
    )


def create_app(settings: DossierSettings) -> FastAPI:
    agents = load_agents(settings.config_dir)
    token = settings.dossier_api_token
    directory = AgentDirectory.build(agents, token.get_secret_value() if token else None)
    topology = load_topology(settings.config_dir)
    channels = load_section(settings.config_dir / CHANNELS_FILE, ChannelsConfig)

    engine = create_engine(settings.database_url.get_secret_value())
    store = DossierStore(engine, reopen_window=timedelta(days=settings.case_reopen_days))
    broker = make_broker(settings, "dossier")
    publisher = Publisher(broker, settings.publish_timeout)
    outbox = OutboxRelay(store.sessions, publisher)
    intake = IntakeWriter(store.register_many, settings.intake_batch_size, on_committed=outbox.wake)

    async def register(contact: ContactMessage) -> None:
        await intake.register(contact)

    subscribe(
        broker,
        DOSSIER_INTAKE,
        model=ContactMessage,
        effect=register,
        publisher=publisher,
        retry_delay=settings.retry_delay,
        description="Received contacts: stored once each, then announced as registered.",
    )

    @broker.subscriber(
        DOSSIER_EVENTS.rabbit(),
        EVENTS.rabbit(),
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title=f"{DOSSIER_EVENTS.name}:consume",
        description="Routing, delivery reports and case events, onto the case timeline.",
    )
    async def events(message: RabbitMessage) -> None:
        """What happened to contacts and cases elsewhere, onto the case timeline."""
        event_type = message.raw_message.type or ""
        # FastStream invents a message id when there is none; dedup needs the real one.
        message_id = message.raw_message.message_id

        async def routed(item: WorkItem) -> None:
            await store.record_routed(item, message_id or str(item.contact_id))

        async def delivered(report: DeliveryReport) -> None:
            await store.record_delivery(report, message_id or str(report.contact_id), event_type)

        async def updated(update: ContactUpdate) -> None:
            fallback = f"{update.contact_id}:{update.event}:{update.at.isoformat()}"
            try:
                # An update ahead of its contact raises ContactNotYetKnown: retried later.
                await store.record_update(update, message_id or fallback)
            except Unprocessable as exc:
                raise Refused(str(exc)) from exc

        async def case_event(event: CaseEvent) -> None:
            fallback = f"{event.case_ref}:{event.event.value}:{event.at.isoformat()}"
            await store.record_case_event(event, message_id or fallback)

        handlers: dict[str, tuple[type[BaseModel], Callable[..., Awaitable[None]]]] = {
            Event.CONTACT_ROUTED.value: (WorkItem, routed),
            Event.CONTACT_SENT.value: (DeliveryReport, delivered),
            Event.CONTACT_FAILED.value: (DeliveryReport, delivered),
            Event.CONTACT_UPDATED.value: (ContactUpdate, updated),
            **dict.fromkeys(CASE_EVENTS, (CaseEvent, case_event)),
        }
        handler = handlers.get(event_type)
        if handler is None:
            log.info("event type not recorded; acked", event_type=event_type)
            await message.ack()
            return
        model, effect = handler
        await consume(
            message,
            queue=DOSSIER_EVENTS,
            model=model,
            effect=effect,
            publisher=publisher,
            retry_delay=settings.retry_delay,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await upgrade(engine)
            intake.start()
            try:
                async with running_broker(broker, settings):
                    relay = asyncio.create_task(outbox.run_forever(settings.outbox_interval))
                    try:
                        yield
                    finally:
                        relay.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await relay
            finally:
                await intake.stop()
        finally:
            await engine.dispose()

    app = service_app(
        "dossier",
        settings,
        checks={"broker": broker_check(broker), "database": lambda: database_reachable(engine)},
        lifespan=lifespan,
        description="Parties, cases, contacts and their timeline; the agents' API.",
    )
    app.include_router(
        api_router(
            store,
            directory,
            work_queues=[q.name for q in topology.queues if q.name.startswith("work.")],
            outbound_channels=channels.outbound_channels,
            agent_ids=[a.id for a in agents.agents],
        )
    )
    return app
