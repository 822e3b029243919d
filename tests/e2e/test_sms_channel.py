"""The integrator's worked example, the whole way: an SMS webhook becomes a routed contact."""

from __future__ import annotations

import json

import httpx

from kanaal.common.contract import WorkItem
from kanaal.common.testing import RabbitVhost
from kanaal.sms.gateway import SIGNATURE_HEADER, sign
from tests.e2e.conftest import SERVICE_TOKEN, RunServices

SECRET = "e2e-sms-secret"


async def test_an_inbound_sms_reaches_the_dossier_and_its_subject_queue(
    rabbit_vhost: RabbitVhost, run_services: RunServices
) -> None:
    services = run_services("dossier", "router", "sms", KANAAL_SMS_WEBHOOK_SECRET=SECRET)
    raw = json.dumps(
        {
            "id": "gw-e2e-1",
            "originator": "06 24681358",
            "recipient": "+3197010000001",
            "body": "Mijn vergunning is verlopen",
            "received": "2026-11-22T09:00:00Z",
        }
    ).encode()
    async with httpx.AsyncClient(timeout=10) as client:
        accepted = await client.post(
            f"{services['sms'].url}/api/v1/sms/inbound",
            content=raw,
            headers={SIGNATURE_HEADER: sign(raw, SECRET.encode())},
        )
        assert accepted.status_code == 202, accepted.text
        contact_id = accepted.json()["contact_id"]

        (message,) = await rabbit_vhost.wait_for("work.subject.parkeren", 1, timeout=20)
        item = WorkItem.model_validate_json(message.body)
        assert str(item.contact_id) == contact_id
        assert item.channel == "sms"

        stored = await client.get(
            f"{services['dossier'].url}/api/v1/contacts/{contact_id}",
            headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
        )
    assert stored.status_code == 200
    assert stored.json()["case_ref"] == item.case_ref
