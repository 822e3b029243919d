"""The dossier's shell: consume contacts and events, store them, relay the outbox, serve the API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream import AckPolicy
from faststream.rabbit.annotations import RabbitMessage
from pydantic import Field, SecretStr

from kanaal.common.contract import ContactMessage, WorkItem
from kanaal.common.logging import get_logger
from kanaal.common.messaging import Publisher, consume, make_broker, raw_body, subscribe
from kanaal.common.service import broker_check, running_broker, service_app
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.common.topology import DOSSIER_EVENTS, DOSSIER_INTAKE, EVENTS, Event
from kanaal.dossier.api import api_router
from kanaal.dossier.database import create_engine, database_reachable, upgrade
from kanaal.dossier.outbox import OutboxRelay
from kanaal.dossier.store import DossierStore

log = get_logger(__name__)


class DossierSettings(ServiceSettings):
    dossier_port: int = Field(SERVICE_PORTS["dossier"], description="dossier HTTP port")
    database_url: SecretStr = Field(
        SecretStr("sqlite+aiosqlite:///var/dossier.db"),
        description="SQLAlchemy URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
    )
    dossier_api_token: SecretStr | None = Field(
        None,
        description="bearer token for /api/v1 (KANAAL_DOSSIER_API_TOKEN); the API is off unset",
    )
    outbox_interval: float = Field(
        5.0, gt=0, description="seconds between outbox passes that repair missed publishes"
    )


def create_app(settings: DossierSettings) -> FastAPI:
    engine = create_engine(settings.database_url.get_secret_value())
    store = DossierStore(engine)
    broker = make_broker(settings, "dossier")
    publisher = Publisher(broker, settings.publish_timeout)
    outbox = OutboxRelay(store.sessions, publisher)

    async def register(contact: ContactMessage) -> None:
        if await store.register(contact) is not None:
            await outbox.relay_quietly()

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
        DOSSIER_EVENTS.rabbit(), EVENTS.rabbit(), ack_policy=AckPolicy.MANUAL, decoder=raw_body
    )
    async def events(message: RabbitMessage) -> None:
        """What happened to contacts and cases elsewhere, onto the case timeline."""
        event_type = message.raw_message.type
        if event_type != Event.CONTACT_ROUTED:
            log.info("event type not recorded yet; acked", event_type=event_type)
            await message.ack()
            return
        # FastStream invents a message id when there is none; dedup needs the real one.
        message_id = message.raw_message.message_id

        async def record(item: WorkItem) -> None:
            await store.record_routed(item, message_id or str(item.contact_id))

        await consume(
            message,
            queue=DOSSIER_EVENTS,
            model=WorkItem,
            effect=record,
            publisher=publisher,
            retry_delay=settings.retry_delay,
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await upgrade(engine)
            async with running_broker(broker, settings):
                relay = asyncio.create_task(outbox.run_forever(settings.outbox_interval))
                try:
                    yield
                finally:
                    relay.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await relay
        finally:
            await engine.dispose()

    app = service_app(
        "dossier",
        settings,
        checks={"broker": broker_check(broker), "database": lambda: database_reachable(engine)},
        lifespan=lifespan,
    )
    app.include_router(api_router(store, settings.dossier_api_token))
    return app
