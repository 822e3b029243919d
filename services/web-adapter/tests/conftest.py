"""A web adapter in this process, on the test's vhost, with its own database and store."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from kanaal.common.testing import RabbitVhost
from kanaal.web.app import WebSettings, create_app

REPO = Path(__file__).resolve().parents[3]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Web:
    client: httpx.AsyncClient
    settings: WebSettings
    vhost: RabbitVhost

    async def form(self, path: str = "/") -> dict[str, str]:
        """GET a page with a form; its hidden fields (CSRF token, submission id)."""
        page = await self.client.get(path)
        assert page.status_code == 200, page.text
        return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))


MakeWeb = Callable[..., Any]


def web_settings(vhost: RabbitVhost, tmp_path: Path, **overrides: Any) -> WebSettings:
    values: dict[str, Any] = {
        "amqp_url": SecretStr(vhost.url),
        "config_dir": REPO / "deploy/config",
        "web_registration_wait": 0,
        "dossier_url": "http://127.0.0.1:9",  # no dossier: the adapter must not need one
        "web_database_url": f"sqlite+aiosqlite:///{tmp_path / 'web.db'}",
        "web_attachment_dir": tmp_path / "attachments",
        "retry_delay": 0.2,
        **overrides,
    }
    return WebSettings(**values)


@pytest.fixture
async def web(rabbit_vhost: RabbitVhost, tmp_path: Path) -> AsyncIterator[Web]:
    settings = web_settings(rabbit_vhost, tmp_path)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            yield Web(client, settings, rabbit_vhost)
