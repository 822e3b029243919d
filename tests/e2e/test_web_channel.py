"""The web channel the whole way: a citizen writes, an agent answers, the citizen reads and replies.

Web adapter, dossier and router run as their own processes on a throw-away vhost; the
agent answers through the dossier's API, as the agent desk does.
"""

from __future__ import annotations

import re

import httpx

from kanaal.common.contract import WorkItem
from kanaal.common.testing import RabbitVhost
from tests.e2e.conftest import (
    AGENT,
    AGENT_TOKEN,
    SERVICE_TOKEN,
    RunServices,
    claim_and_answer,
    wait_until,
)

CITIZEN = {
    "name": "Wietske Hoogeveen",
    "email": "wietske.hoogeveen@example.org",
    "phone": "06 24681359",
    "subject": "parkeren",
    "text": "Mijn bezoekersvergunning voor de Palmgracht doet het niet.",
}
PERSONAL = ("Wietske", "Hoogeveen", "wietske.hoogeveen", "24681359", "Palmgracht")


async def test_a_web_message_is_answered_on_its_status_page_and_the_reply_joins_the_case(
    rabbit_vhost: RabbitVhost, run_services: RunServices
) -> None:
    services = run_services("dossier", "router", "web", KANAAL_AGENT_ANNA_TOKEN=AGENT_TOKEN)
    web, dossier = services["web"].url, services["dossier"].url

    async with httpx.AsyncClient(timeout=10) as client:
        accepted = await client.post(f"{web}/api/v1/messages", json=CITIZEN)
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()

        # Registered by the dossier, routed to the subject's work queue.
        [routed] = await rabbit_vhost.wait_for("work.subject.parkeren", 1, timeout=20)
        item = WorkItem.model_validate_json(routed.body)
        assert str(item.contact_id) == body["contact_id"]
        status = (await client.get(f"{web}{body['status_url']}")).json()
        assert status["status"] == "registered"
        assert status["case_ref"] == item.case_ref

        # The agent claims the case and answers; the customer's channel is the web.
        replied = await claim_and_answer(client, dossier, item, AGENT)
        assert replied.json()["channel"] == "web"

        page_url = f"{web}{body['status_page_url']}"

        async def answer_shown() -> bool:
            return "Wij hebben uw vergunning hersteld." in (await client.get(page_url)).text

        await wait_until(answer_shown)
        page = await client.get(page_url)
        assert item.case_ref in page.text
        assert "<script>alert(1)</script>" not in page.text

        async def delivery_recorded() -> bool:
            case = await client.get(
                f"{dossier}/api/v1/cases/{item.case_ref}",
                headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
            )
            return any(c.get("delivery_status") == "sent" for c in case.json()["contacts"])

        await wait_until(delivery_recorded)

        # The citizen answers from the status page: a new contact on the same case.
        hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page.text))
        sent = await client.post(
            f"{page_url}/reply",
            data={**hidden, "text": "Dank u, het werkt weer. Wietske"},
        )
        assert sent.status_code == 303, sent.text

        async def reply_on_case() -> bool:
            case = await client.get(
                f"{dossier}/api/v1/cases/{item.case_ref}",
                headers={"Authorization": f"Bearer {SERVICE_TOKEN}"},
            )
            inbound = [c for c in case.json()["contacts"] if c["direction"] == "inbound"]
            return len(inbound) == 2

        await wait_until(reply_on_case)

    for service in services.values():
        assert service.stop() == 0, f"{service.name} did not stop cleanly"
        for secret in PERSONAL:
            assert secret not in service.log(), f"{service.name} logged {secret!r}"


async def test_a_case_number_typed_by_someone_else_gives_them_no_view_of_that_case(
    rabbit_vhost: RabbitVhost, run_services: RunServices
) -> None:
    services = run_services("dossier", "router", "web", KANAAL_AGENT_ANNA_TOKEN=AGENT_TOKEN)
    web, dossier = services["web"].url, services["dossier"].url

    async with httpx.AsyncClient(timeout=10) as client:
        citizen = (await client.post(f"{web}/api/v1/messages", json=CITIZEN)).json()
        [routed] = await rabbit_vhost.wait_for("work.subject.parkeren", 1, timeout=20)
        item = WorkItem.model_validate_json(routed.body)
        assert citizen["case_ref"] == item.case_ref

        # Someone else types the citizen's case number, with their own e-mail address.
        typist = await client.post(
            f"{web}/api/v1/messages",
            json={
                "email": "nieuwsgierig@example.org",
                "subject": "parkeren",
                "text": "Hoe staat het met deze zaak?",
                "case_ref": item.case_ref,
            },
        )
        assert typist.status_code == 202, typist.text
        [other] = await rabbit_vhost.wait_for("work.subject.parkeren", 1, timeout=20)
        theirs = WorkItem.model_validate_json(other.body)
        assert theirs.case_ref != item.case_ref
        status = (await client.get(f"{web}{typist.json()['status_url']}")).json()
        assert status["case_ref"] == theirs.case_ref
        assert (
            item.case_ref not in (await client.get(f"{web}{typist.json()['status_page_url']}")).text
        )

        # The agent answers the citizen's case: the answer reaches the citizen's page only.
        await claim_and_answer(client, dossier, item, AGENT)

        async def answer_shown() -> bool:
            page = await client.get(f"{web}{citizen['status_page_url']}")
            return "Wij hebben uw vergunning hersteld." in page.text

        await wait_until(answer_shown)
        assert (await client.get(f"{web}{typist.json()['status_url']}")).json()["answers"] == []

        # The agent sees the typed number as a note on the typist's case, not on the citizen's.
        case = await client.get(f"{dossier}/api/v1/cases/{theirs.case_ref}", headers=AGENT)
        notes = [e["data"]["text"] for e in case.json()["timeline"] if e["kind"] == "case.noted"]
        assert notes == [f"Noemt zaak {item.case_ref}, niet gekoppeld: andere klant"]

    for service in services.values():
        assert service.stop() == 0, f"{service.name} did not stop cleanly"
