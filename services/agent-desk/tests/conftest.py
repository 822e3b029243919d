"""A small real suite for the desk's tests: the dossier and the router as processes on a
fresh vhost, the desk in this process, agents with known tokens, and contacts sent in as an
adapter would send them."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

from kanaal.common.contract import ContactMessage
from kanaal.common.messaging import contract_message
from kanaal.common.testing import (
    RabbitVhost,
    RunningService,
    free_port,
    sample_contact,
    start_service,
)
from kanaal.common.topology import Event
from kanaal.desk.app import DeskSettings, create_app

DEPLOY_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"
PARKEREN = "work.subject.parkeren"
_refs = count(1)


def token_of(agent: str) -> str:
    return f"token-of-{agent}"


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


AGENTS = [
    {"id": "anna", "skills": ["parkeren"], "locations": ["centrum"], "capacity": 5},
    {"id": "bram", "skills": ["belastingen"], "locations": ["noord"], "capacity": 1},
    {"id": "sara", "role": "supervisor", "skills": [], "locations": [], "capacity": 5},
    *({"id": f"kcc{i}", "skills": ["parkeren"], "capacity": 10} for i in range(10)),
]


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("channels.yaml", "routing.yaml"):
        shutil.copy(DEPLOY_CONFIG / name, config / name)
    lines = ["agents:"]
    for agent in AGENTS:
        lines.append(
            f"  - {{id: {agent['id']}, name: Medewerker {agent['id']}, "
            f"role: {agent.get('role', 'agent')}, skills: {agent['skills']}, "
            f"locations: {agent.get('locations', [])}, capacity: {agent['capacity']}, "
            f"token_sha256: {sha256(token_of(str(agent['id'])))}}}"
        )
    (config / "agents.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@dataclass
class Suite:
    vhost: RabbitVhost
    dossier: RunningService
    router: RunningService
    desk_app: FastAPI
    desk_url: str
    channel: aio_pika.abc.AbstractChannel
    clients: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    def desk(self, agent: str | None) -> httpx.AsyncClient:
        """An HTTP client of the desk's API, as `agent` (None: without a token)."""
        key = agent or ""
        if key not in self.clients:
            headers = {"Authorization": f"Bearer {token_of(agent)}"} if agent else {}
            self.clients[key] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.desk_app),
                base_url=self.desk_url,
                headers=headers,
                timeout=30,
            )
        return self.clients[key]

    async def send(self, **fields: Any) -> ContactMessage:
        """Publish a contact as an adapter would (contact.received.<channel>)."""
        fields.setdefault("entry_point", "contactformulier")
        fields.setdefault("source_ref", f"desk-test-{next(_refs)}")
        contact = sample_contact(**fields)
        exchange = await self.channel.get_exchange("kanaal.events")
        await exchange.publish(
            contract_message(contact, message_type=Event.CONTACT_RECEIVED, message_id=contact.id),
            routing_key=Event.CONTACT_RECEIVED.key(contact.channel),
        )
        return contact

    async def depth(self, queue: str) -> int:
        # robust=False: a robust channel caches passive declarations, counts and all.
        declared = await self.channel.declare_queue(queue, passive=True, robust=False)
        return int(declared.declaration_result.message_count or 0)

    async def wait_depth(self, queue: str, expected: int, timeout: float = 30) -> None:
        """Until `queue` holds `expected` ready messages (the router works asynchronously)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (found := await self.depth(queue)) != expected:
            if loop.time() > deadline:
                raise AssertionError(f"{queue} holds {found} messages, not {expected}")
            await asyncio.sleep(0.1)


@pytest.fixture
def services(
    rabbit_vhost: RabbitVhost, tmp_path: Path, config_dir: Path
) -> Iterator[dict[str, RunningService]]:
    """The dossier and the router as their own processes, as `kanaal up` runs them."""
    ports = {"dossier": free_port(), "router": free_port()}
    env = {
        "KANAAL_AMQP_URL": rabbit_vhost.url,
        "KANAAL_CONFIG_DIR": str(config_dir),
        "KANAAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dossier.db'}",
        "KANAAL_ROUTER_STATE_PATH": str(tmp_path / "router-state.db"),
        "KANAAL_ROUTER_RELOAD_INTERVAL": "0",
        "KANAAL_OUTBOX_INTERVAL": "0.2",
        "KANAAL_RETRY_DELAY": "0.2",
        **{f"KANAAL_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    started: list[RunningService] = []
    try:
        for name in ("dossier", "router"):
            started.append(start_service(name, f"kanaal.{name}", ports[name], env, tmp_path))
        yield {s.name: s for s in started}
    finally:
        for service in started:
            service.stop()


@pytest.fixture
def desk_settings(
    rabbit_vhost: RabbitVhost,
    config_dir: Path,
    services: dict[str, RunningService],
    tmp_path: Path,
) -> DeskSettings:
    return DeskSettings(
        amqp_url=rabbit_vhost.url,
        config_dir=config_dir,
        dossier_url=services["dossier"].url,
        desk_sessions_path=tmp_path / "desk-sessions.db",
    )


@pytest.fixture
async def suite(
    rabbit_vhost: RabbitVhost,
    services: dict[str, RunningService],
    desk_settings: DeskSettings,
    amqp_channel: aio_pika.abc.AbstractChannel,
) -> AsyncIterator[Suite]:
    app = create_app(desk_settings)
    async with app.router.lifespan_context(app):
        found = Suite(
            rabbit_vhost,
            services["dossier"],
            services["router"],
            app,
            "http://desk",
            amqp_channel,
        )
        try:
            yield found
        finally:
            for client in found.clients.values():
                await client.aclose()


ContactSender = Callable[..., Any]
