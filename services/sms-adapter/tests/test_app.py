"""The SMS adapter on the real RabbitMQ: the contract kit, a real HTTP gateway, the whole way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from kanaal.common.contract import DeliveryStatus, Party
from kanaal.common.contract_kit import (
    ContractKit,
    InputRefused,
    Sample,
    captured_logs,
    outbound_reply,
)
from kanaal.common.testing import RabbitVhost, free_port
from kanaal.sms.app import SmsSettings, create_app
from kanaal.sms.gateway import SIGNATURE_HEADER, sign

REPO = Path(__file__).resolve().parents[3]
SECRET = "webhook-secret"


def webhook(message_id: str, originator: str, body: str) -> dict[str, str]:
    return {
        "id": message_id,
        "originator": originator,
        "recipient": "+3197010000001",
        "body": body,
        "received": "2026-11-22T09:00:00Z",
    }


VALID = [
    Sample(
        "inbound sms",
        webhook("gw-100", "06 11223344", "Mijn bezoekersvergunning werkt niet, Kees Brouwerij"),
        ("11223344", "Kees Brouwerij", "bezoekersvergunning"),
    ),
    Sample("second sms", webhook("gw-101", "+31 6 55667788", "Dank u"), ("55667788",)),
]
INVALID = [
    Sample("unknown recipient", {**webhook("gw-102", "0611223344", "x"), "recipient": "+3112"}),
    Sample("missing id", {k: v for k, v in webhook("", "0611223344", "x").items() if k != "id"}),
    Sample("unsigned", {"unsigned": True}),
]


class Gateway:
    """A real HTTP SMS gateway on a free port that records what it is asked to send."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sent: list[dict[str, Any]] = []
        self.refuse: set[str] = set()
        app = FastAPI()

        @app.post("/messages")
        async def messages(request: Request) -> Response:
            body = await request.json()
            if body["body"] in self.refuse:
                return Response(status_code=422)
            self.sent.append(body)
            return Response(json.dumps({"id": f"gw-out-{len(self.sent)}"}), status_code=201)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/messages"


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gateway = Gateway()
    task = asyncio.create_task(gateway.server.serve())
    while not gateway.server.started:  # noqa: ASYNC110 - uvicorn offers no started event
        await asyncio.sleep(0.02)
    yield gateway
    gateway.server.should_exit = True
    await task


def settings(vhost: RabbitVhost, gateway: Gateway) -> SmsSettings:
    return SmsSettings(
        amqp_url=SecretStr(vhost.url),
        config_dir=REPO / "deploy/config",
        sms_webhook_secret=SecretStr(SECRET),
        sms_gateway_url=gateway.url,  # type: ignore[arg-type]
        retry_delay=0.05,
    )


async def test_the_sms_adapter_keeps_the_contract(
    contract_kit: Callable[[str], Awaitable[ContractKit]],
    rabbit_vhost: RabbitVhost,
    gateway: Gateway,
) -> None:
    kit = await contract_kit("sms")
    app = create_app(settings(rabbit_vhost, gateway))
    gateway.refuse.add("onbestelbaar")
    with captured_logs("sms") as logs:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sms") as client:

                async def feed(payload: dict[str, Any]) -> None:
                    raw = json.dumps(payload).encode()
                    headers = (
                        {}
                        if "unsigned" in payload
                        else {SIGNATURE_HEADER: sign(raw, SECRET.encode())}
                    )
                    response = await client.post(
                        "/api/v1/sms/inbound", content=raw, headers=headers
                    )
                    if 400 <= response.status_code < 500:
                        raise InputRefused(response.text)
                    response.raise_for_status()

                contacts = await kit.check_inbound(feed, VALID, INVALID)
                reports = await kit.check_outbound(
                    [
                        outbound_reply(
                            "sms",
                            "+3197010000001",
                            "Wij bellen u morgen.",
                            party=Party(phone="0611223344"),
                        ),
                        outbound_reply(
                            "sms", "+3197010000001", "onbestelbaar", party=Party(phone="0611223344")
                        ),
                    ]
                )
    assert {c.party.phone for c in contacts} == {"+31611223344", "+31655667788"}
    assert sorted(r.status for r in reports) == [DeliveryStatus.FAILED, DeliveryStatus.SENT]
    assert [m["body"] for m in gateway.sent] == ["Wij bellen u morgen."]
    assert gateway.sent[0]["recipients"] == ["+31611223344"]
    kit.check_logs(logs.getvalue(), VALID)
