"""The desk's shell: the broker connection, the dossier client, the web pages and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from pydantic import Field, field_validator

from kanaal.common.agents import AgentDirectory, load_agents
from kanaal.common.config import ROUTING_FILE, WorkQueuesConfig, load_section
from kanaal.common.logging import get_logger
from kanaal.common.service import service_app
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.desk.actions import Desk
from kanaal.desk.api import api_router
from kanaal.desk.dossier import DossierClient
from kanaal.desk.served import DEFAULT_ORDER, parse_order
from kanaal.desk.sessions import Sessions
from kanaal.desk.web import security_headers, web_router

log = get_logger(__name__)
STATIC = Path(__file__).parent / "static"


class DeskSettings(ServiceSettings):
    desk_port: int = Field(SERVICE_PORTS["desk"], description="agent desk HTTP port")
    dossier_url: str = Field("http://127.0.0.1:8084", description="where the dossier API is")
    desk_queue_order: str = Field(
        ",".join(DEFAULT_ORDER),
        description="the order of an agent's queue families (ties between equally old queues)",
    )
    desk_session_minutes: int = Field(480, ge=1, le=7 * 24 * 60, description="web session life")
    desk_sessions_path: Path = Field(
        Path("var/desk-sessions.db"),
        description="SQLite file of the web sessions (they survive a restart of the desk)",
    )
    desk_secure_cookie: bool = Field(
        False, description="mark the session cookie Secure (always on for https requests)"
    )

    @field_validator("desk_queue_order")
    @classmethod
    def _known_families(cls, value: str) -> str:
        parse_order(value)
        return value


def create_app(settings: DeskSettings) -> FastAPI:
    agents = load_agents(settings.config_dir)
    directory = AgentDirectory.build(agents)
    routing = load_section(settings.config_dir / ROUTING_FILE, WorkQueuesConfig)
    work_queues = routing.work_queues
    order = parse_order(settings.desk_queue_order)
    sessions = Sessions(settings.desk_sessions_path, settings.desk_session_minutes * 60)
    state: dict[str, Desk] = {}

    def desk() -> Desk:
        return state["desk"]

    async def broker_ready() -> bool:
        found = state.get("desk")
        return found is not None and not found.connection.is_closed

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        connection = await aio_pika.connect_robust(
            settings.amqp_url.get_secret_value(),
            timeout=10,
            client_properties={"connection_name": "kanaal-desk"},
        )
        dossier = DossierClient(settings.dossier_url)
        try:
            state["desk"] = Desk(agents.agents, directory, work_queues, order, dossier, connection)
            log.info("desk ready", agents=len(agents.agents), work_queues=len(work_queues))
            yield
        finally:
            state.pop("desk", None)
            await dossier.aclose()
            await connection.close()
            sessions.close()

    app = service_app(
        "desk",
        settings,
        checks={"broker": broker_ready},
        lifespan=lifespan,
        title="Open Kanaal agent desk",
    )
    app.middleware("http")(security_headers)
    app.include_router(api_router(desk))
    app.include_router(web_router(desk, sessions, secure_cookie=settings.desk_secure_cookie))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
