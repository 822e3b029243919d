""" "Next" while the dossier fails: an undecided claim hands the item back to its queue
exactly once and answers 502; a dossier that is down entirely costs no delivery at all.

The real dossier sits behind a small proxy that can fail the claim (503) or everything.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from kanaal.common.testing import RabbitVhost, RunningService
from kanaal.common.testing_browser import serve_app
from kanaal.desk.app import DeskSettings, create_app

from .conftest import PARKEREN, Suite, token_of

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class FaultyDossier:
    """A pass-through to the real dossier that fails claims or all calls when told to."""

    target: str
    fail_claims: bool = False
    down: bool = False
    claims: list[int] = field(default_factory=list)
    #: A cookie-keeping client of the same desk, for its web pages.
    browser: httpx.AsyncClient | None = None

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.api_route("/{path:path}", methods=["GET", "POST"])
        async def forward(path: str, request: Request) -> Response:
            if self.down:
                return Response("dossier down", status_code=503)
            if path.endswith("/claim") and self.fail_claims:
                self.claims.append(503)
                return Response('{"detail": "database is locked"}', status_code=503)
            async with httpx.AsyncClient(base_url=self.target) as http:
                answer = await http.request(
                    request.method,
                    f"/{path}",
                    content=await request.body(),
                    headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
                )
            if path.endswith("/claim"):
                self.claims.append(answer.status_code)
            return Response(answer.content, answer.status_code, media_type="application/json")

        return app


@pytest.fixture
async def faulty(
    rabbit_vhost: RabbitVhost,
    services: dict[str, RunningService],
    desk_settings: DeskSettings,
    suite: Suite,
) -> AsyncIterator[tuple[FaultyDossier, httpx.AsyncClient]]:
    """The fault proxy, and anna's client of a desk that calls the dossier through it."""
    proxy = FaultyDossier(services["dossier"].url)
    async with serve_app(proxy.app()) as proxy_url:
        settings = desk_settings.model_copy(update={"dossier_url": proxy_url})
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=transport,
                base_url="http://desk",
                headers={"Authorization": f"Bearer {token_of('anna')}"},
                timeout=30,
            ) as anna,
            httpx.AsyncClient(transport=transport, base_url="http://desk") as browser,
        ):
            proxy.browser = browser
            yield proxy, anna


async def test_an_undecided_claim_hands_the_item_back_once_and_next_answers_502(
    suite: Suite, faulty: tuple[FaultyDossier, httpx.AsyncClient]
) -> None:
    proxy, anna = faulty
    contact = await suite.send(subject="parkeren")
    await suite.wait_depth(PARKEREN, 1)

    proxy.fail_claims = True
    failed = await anna.post("/api/v1/next")
    assert failed.status_code == 502, failed.text
    detail: dict[str, Any] = failed.json()["detail"]
    assert detail["reason"] == "claim_undecided"
    assert "could not decide the claim" in detail["detail"]
    assert "the dossier answered 503: database is locked" in detail["detail"]
    assert f"went back to {PARKEREN}" in detail["detail"]
    assert proxy.claims == [503]  # one claim tried, not a loop over the queue
    # Back in its queue (a quorum queue's requeue is committed a moment later).
    await suite.wait_depth(PARKEREN, 1, timeout=5)
    assert await suite.depth(f"dead.{PARKEREN}") == 0

    # On the web desk, the agent reads why in Dutch; the item goes back once more.
    assert proxy.browser is not None
    web = proxy.browser
    [csrf] = CSRF.findall((await web.get("/login")).text)
    await web.post("/login", data={"token": token_of("anna"), "csrf": csrf})
    csrf = CSRF.findall((await web.get("/")).text)[0]
    await web.post("/next", data={"csrf": csrf})
    assert "het werk staat weer in de werkbak" in (await web.get("/")).text
    assert proxy.claims == [503, 503]
    await suite.wait_depth(PARKEREN, 1, timeout=5)

    proxy.fail_claims = False
    taken = await anna.post("/api/v1/next")
    assert taken.status_code == 200, taken.text
    body = taken.json()
    assert (body["status"], body["contact_id"]) == ("claimed", str(contact.id))
    assert body["redelivered"] == 2  # handed back exactly once per failed "next"
    assert await suite.depth(PARKEREN) == 0
    assert (await anna.post("/api/v1/next")).json()["status"] == "empty"


async def test_a_dossier_that_is_down_answers_502_and_costs_the_item_no_delivery(
    suite: Suite, faulty: tuple[FaultyDossier, httpx.AsyncClient]
) -> None:
    proxy, anna = faulty
    contact = await suite.send(subject="parkeren")
    await suite.wait_depth(PARKEREN, 1)

    proxy.down = True
    failed = await anna.post("/api/v1/next")
    assert failed.status_code == 502, failed.text
    assert "the dossier answered 503" in failed.json()["detail"]["detail"]
    assert proxy.claims == []  # nothing was taken from the queue
    assert await suite.depth(PARKEREN) == 1

    proxy.down = False
    body = (await anna.post("/api/v1/next")).json()
    assert (body["status"], body["contact_id"], body["redelivered"]) == (
        "claimed",
        str(contact.id),
        0,
    )
