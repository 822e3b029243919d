"""Start real service processes for cross-service tests, as `kanaal up` would, and stop them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from kanaal.common.contract import WorkItem
from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service

REPO = Path(__file__).resolve().parents[2]
SERVICE_TOKEN = "e2e-" + uuid.uuid4().hex

RunServices = Callable[..., dict[str, RunningService]]


@pytest.fixture
def run_services(rabbit_vhost: RabbitVhost, tmp_path: Path) -> Iterator[RunServices]:
    """`run_services("dossier", "router", database_url=..., KANAAL_X="1")` → running services.

    Every service gets a free port, the test's vhost, the repo's config and one shared
    service token for the dossier API; all are stopped after the test.
    """
    started: list[RunningService] = []

    def run(
        *names: str, database_url: str | None = None, **extra_env: str
    ) -> dict[str, RunningService]:
        ports = {name: free_port() for name in names}
        env = {
            "KANAAL_AMQP_URL": rabbit_vhost.url,
            "KANAAL_CONFIG_DIR": str(REPO / "deploy" / "config"),
            "KANAAL_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp_path / 'dossier.db'}",
            "KANAAL_DOSSIER_API_TOKEN": SERVICE_TOKEN,
            "KANAAL_WEB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'web.db'}",
            "KANAAL_WEB_ATTACHMENT_DIR": str(tmp_path / "web-attachments"),
            "KANAAL_RETRY_DELAY": "0.2",
            "KANAAL_LOG_LEVEL": "DEBUG",
            **{f"KANAAL_{name.upper()}_PORT": str(port) for name, port in ports.items()},
            **extra_env,
        }
        if "dossier" in ports:
            env["KANAAL_DOSSIER_URL"] = f"http://127.0.0.1:{ports['dossier']}"
        for name in names:
            started.append(start_service(name, f"kanaal.{name}", ports[name], env, tmp_path))
        return {s.name: s for s in started if s.name in ports}

    yield run
    for service in started:
        service.stop()


# The agent anna of the sample agents.yaml, with her token (KANAAL_AGENT_ANNA_TOKEN).
AGENT_TOKEN = "e2e-anna-" + uuid.uuid4().hex
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
# What an agent answers in the e2e tests; the script must never reach a page.
ANSWER = "Wij hebben uw vergunning hersteld. <script>alert(1)</script>"


async def claim_and_answer(
    client: httpx.AsyncClient, dossier: str, item: WorkItem, agent: dict[str, str]
) -> httpx.Response:
    """The agent claims the work item's case and answers it with ANSWER through the dossier."""
    claimed = await client.post(
        f"{dossier}/api/v1/cases/{item.case_ref}/claim",
        json={"contact_id": str(item.contact_id), "queue": item.queue},
        headers=agent,
    )
    assert claimed.status_code == 200, claimed.text
    replied = await client.post(
        f"{dossier}/api/v1/cases/{item.case_ref}/reply", json={"text": ANSWER}, headers=agent
    )
    assert replied.status_code == 202, replied.text
    return replied


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("not reached in time")
