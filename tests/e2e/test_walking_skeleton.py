"""One web contact travels the whole way: web adapter → RabbitMQ → dossier → router → work queue.

The three services run as their own processes, as `kanaal up` runs them, against a
throw-away vhost on the real RabbitMQ and a real database (SQLite, then PostgreSQL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import aio_pika
import httpx
import pytest

from kanaal.common.contract import WorkItem
from kanaal.common.messaging import DEAD_REASON_HEADER
from kanaal.common.testing import RabbitVhost, RunningService
from kanaal.common.topology import DOSSIER_INTAKE
from tests.e2e.conftest import SERVICE_TOKEN, RunServices

TOKEN = SERVICE_TOKEN

# Personal data the logs must never show, in every form the services see it.
CITIZEN = {
    "name": "Fenna Zwartveld",
    "email": "fenna.zwartveld@example.org",
    "phone": "06 13572468",
    "subject": "parkeren",
    "text": "Mijn parkeervergunning voor de Zuiderkade is verlopen, kunt u mij terugbellen?",
}
SECRETS_IN_LOGS = (
    "Fenna",
    "Zwartveld",
    "fenna.zwartveld",
    "13572468",
    "+31613572468",
    "Zuiderkade",
    "parkeervergunning",
)


@dataclass
class Suite:
    web: RunningService
    dossier: RunningService
    router: RunningService
    vhost: RabbitVhost

    @property
    def services(self) -> tuple[RunningService, ...]:
        return (self.web, self.dossier, self.router)

    async def dossier_get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.get(
                f"{self.dossier.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
            )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def suite(
    request: pytest.FixtureRequest, rabbit_vhost: RabbitVhost, run_services: RunServices
) -> Suite:
    database_url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    services = run_services("dossier", "router", "web", database_url=database_url)
    return Suite(services["web"], services["dossier"], services["router"], rabbit_vhost)


async def post(suite: Suite, body: dict[str, object], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{suite.web.url}/api/v1/messages", json=body, headers=headers)


async def test_a_web_message_becomes_one_stored_contact_and_one_work_item(suite: Suite) -> None:
    first = await post(suite, CITIZEN)
    assert first.status_code == 202, first.text
    accepted = first.json()
    contact_id = accepted["contact_id"]

    # The citizen sends the same form again (a double click, a retry).
    again = await post(suite, CITIZEN)
    assert again.status_code == 202
    assert again.json()["contact_id"] == contact_id

    items = await suite.vhost.wait_for("work.subject.parkeren", 1, timeout=15, settle=3)
    assert len(items) == 1, "the same submission twice must give exactly one work item"
    item = WorkItem.model_validate_json(items[0].body)
    assert str(item.contact_id) == contact_id
    assert items[0].message_id == contact_id
    assert items[0].delivery_mode == aio_pika.DeliveryMode.PERSISTENT

    stored = await suite.dossier_get(f"/api/v1/contacts/{contact_id}")
    assert stored.status_code == 200, stored.text
    case_ref = stored.json()["case_ref"]
    assert case_ref == item.case_ref
    case = (await suite.dossier_get(f"/api/v1/cases/{case_ref}")).json()
    assert [c["id"] for c in case["contacts"]] == [contact_id]

    async with httpx.AsyncClient(timeout=5) as client:
        status = (await client.get(f"{suite.web.url}{accepted['status_url']}")).json()
    assert (status["status"], status["case_ref"]) == ("registered", case_ref)

    for service in suite.services:
        assert service.stop() == 0, f"{service.name} did not stop cleanly"
        log = service.log()
        assert contact_id in log or service is not suite.web, "logs should name contact ids"
        for secret in SECRETS_IN_LOGS:
            assert secret not in log, f"{service.name} logged personal data ({secret!r})"


async def test_an_invalid_intake_message_is_dead_lettered_and_intake_keeps_going(
    suite: Suite,
) -> None:
    connection = await suite.vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                json.dumps({"channel": "web", "text": "no id, no entry point"}).encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id="not-a-contact",
            ),
            routing_key=DOSSIER_INTAKE.name,
        )

    dead = await suite.vhost.get(DOSSIER_INTAKE.dead_letter_key, timeout=15)
    assert dead.message_id == "not-a-contact"
    reason = str(dead.headers[DEAD_REASON_HEADER])
    assert "id" in reason
    assert "entry_point" in reason

    accepted = await post(
        suite, {**CITIZEN, "subject": "afval", "text": "De container is niet geleegd"}
    )
    assert accepted.status_code == 202
    items = await suite.vhost.wait_for("work.subject.afval", 1, timeout=15)
    assert (
        str(WorkItem.model_validate_json(items[0].body).contact_id)
        == (accepted.json()["contact_id"])
    )


async def test_a_subject_without_its_own_queue_goes_to_the_central_queue(suite: Suite) -> None:
    accepted = await post(suite, {**CITIZEN, "subject": "vergunningen", "text": "Een dakkapel?"})
    assert accepted.status_code == 202
    items = await suite.vhost.wait_for("work.central", 1, timeout=15)
    assert WorkItem.model_validate_json(items[0].body).rule == "default"


async def test_an_invalid_form_gets_a_422_naming_the_field(suite: Suite) -> None:
    response = await post(suite, {**CITIZEN, "phone": "14 020"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "phone"]
    unknown = await post(suite, {**CITIZEN, "subject": "ufo"})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["loc"] == ["body", "subject"]
