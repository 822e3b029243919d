"""The web adapter passes the integrator contract kit against the real RabbitMQ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from kanaal.common.contract_kit import (
    ContractKit,
    InputRefused,
    Sample,
    captured_logs,
    outbound_reply,
)
from kanaal.web.app import create_app

from .conftest import web_settings

VALID = [
    Sample(
        "complete form",
        {
            "name": "Joris Dekkerswald",
            "email": "joris.dekkerswald@example.org",
            "phone": "06 24681357",
            "subject": "afval",
            "text": "De groene bak aan de Lindelaan is twee keer overgeslagen.",
        },
        ("Dekkerswald", "joris.dekkerswald", "24681357", "Lindelaan"),
    ),
    Sample(
        "text and subject only",
        {"subject": "algemeen", "text": "Wanneer is het gemeentehuis open op tweede paasdag?"},
        ("tweede paasdag",),
    ),
]
INVALID = [
    Sample("unknown subject", {"subject": "ufo", "text": "x"}),
    Sample("empty text", {"subject": "afval", "text": ""}),
    Sample("municipal number as phone", {"subject": "afval", "text": "x", "phone": "14 020"}),
]


async def test_the_web_adapter_keeps_the_contact_contract(
    contract_kit: Callable[[str], Awaitable[ContractKit]], rabbit_vhost: Any, tmp_path: Path
) -> None:
    kit = await contract_kit("web")
    app = create_app(web_settings(rabbit_vhost, tmp_path))
    with captured_logs("web") as logs:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:

                async def feed(form: dict[str, object]) -> None:
                    response = await client.post("/api/v1/messages", json=form)
                    if 400 <= response.status_code < 500:
                        raise InputRefused(response.text)
                    response.raise_for_status()

                contacts = await kit.check_inbound(feed, VALID, INVALID)
                # One answer to a known submission (sent), one to nothing we know (failed).
                reports = await kit.check_outbound(
                    [
                        outbound_reply(
                            "web",
                            "contactformulier",
                            "Antwoord",
                            in_reply_to=contacts[0].source_ref,
                        ),
                        outbound_reply("web", "contactformulier", "Antwoord op niets"),
                    ]
                )
    assert sorted(r.status.value for r in reports) == ["failed", "sent"]
    assert {c.subject for c in contacts} == {"afval", "algemeen"}
    kit.check_logs(logs.getvalue(), VALID)
