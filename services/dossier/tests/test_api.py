"""The agents' API against the real RabbitMQ and database: tokens, roles, the customer view,
claim / reply / transfer / close, merge and the Klantinteracties export.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

from kanaal.common.contract import (
    CaseEvent,
    CaseEventKind,
    ContactMessage,
    Direction,
    RegisteredContact,
    WorkItem,
)
from kanaal.common.messaging import contract_message
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import Event
from kanaal.dossier.app import DossierSettings, create_app

DEPLOY_CONFIG = Path(__file__).resolve().parents[3] / "deploy" / "config"
SERVICE = "service-token"
TOKENS = {"anna": "anna-token", "bram": "bram-token", "sara": "sara-token"}
Q = "work.subject.parkeren"
BSN = "111222333"

ContactFactory = Callable[..., ContactMessage]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    for name in ("channels.yaml", "routing.yaml"):
        shutil.copy(DEPLOY_CONFIG / name, config / name)
    (config / "agents.yaml").write_text(
        f"""
agents:
  - {{id: anna, name: Anna, role: agent, token_sha256: {sha256(TOKENS["anna"])}}}
  - {{id: bram, name: Bram, role: agent, bsn: true, token_sha256: {sha256(TOKENS["bram"])}}}
  - {{id: sara, name: Sara, role: supervisor, token_env: TEST_SARA_TOKEN}}
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
async def app(
    rabbit_vhost: RabbitVhost,
    database_url: str,
    config_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[FastAPI]:
    monkeypatch.setenv("TEST_SARA_TOKEN", TOKENS["sara"])
    settings = DossierSettings(
        amqp_url=rabbit_vhost.url,
        config_dir=config_dir,
        database_url=database_url,
        dossier_api_token=SERVICE,
        retry_delay=0.1,
        outbox_interval=0.5,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[Callable[[str | None], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def make(who: str | None) -> httpx.AsyncClient:
        token = SERVICE if who == "service" else TOKENS.get(who or "")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dossier", headers=headers
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        await c.aclose()


async def receive(
    amqp: aio_pika.abc.AbstractChannel, rabbit_vhost: RabbitVhost, *contacts: ContactMessage
) -> list[RegisteredContact]:
    """Publish each contact as an adapter would and wait until it is registered."""
    exchange = await amqp.get_exchange("kanaal.events")
    registered = []
    for contact in contacts:
        await exchange.publish(
            contract_message(contact, message_type=Event.CONTACT_RECEIVED, message_id=contact.id),
            routing_key=Event.CONTACT_RECEIVED.key(contact.channel),
        )
        [message] = await rabbit_vhost.wait_for("router.intake", 1, timeout=15)
        registered.append(RegisteredContact.model_validate_json(message.body))
    return registered


async def publish_event(
    amqp: aio_pika.abc.AbstractChannel, event: str, key: str, body: bytes, message_id: str
) -> None:
    exchange = await amqp.get_exchange("kanaal.events")
    await exchange.publish(
        aio_pika.Message(
            body, type=event, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        ),
        routing_key=key,
    )


async def eventually(
    http: httpx.AsyncClient, path: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """GET `path` until `condition` holds (events are consumed asynchronously)."""
    for _ in range(150):
        response = await http.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if condition(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path} never reached the expected state")


async def test_no_token_is_401_and_a_call_beyond_the_role_is_403(
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    ref = "K-2026-000001"
    party = uuid.uuid4()
    assert (await client(None).get(f"/api/v1/cases/{ref}")).status_code == 401
    bad = httpx.Headers({"Authorization": "Bearer nope"})
    assert (await client(None).get(f"/api/v1/cases/{ref}", headers=bad)).status_code == 401
    service, anna, sara = client("service"), client("anna"), client("sara")
    assert (await service.get(f"/api/v1/cases/{ref}")).status_code == 404
    assert (await service.get("/api/v1/parties", params={"email": "a@x.nl"})).status_code == 403
    claim = {"contact_id": str(uuid.uuid4()), "queue": Q}
    assert (await service.post(f"/api/v1/cases/{ref}/claim", json=claim)).status_code == 403
    assert (await anna.get("/api/v1/parties", params={"bsn": BSN})).status_code == 403
    merge = {"party_id": str(uuid.uuid4())}
    assert (await anna.post(f"/api/v1/parties/{party}/merge", json=merge)).status_code == 403
    assert (await sara.post(f"/api/v1/parties/{party}/merge", json=merge)).status_code == 404
    assert (await anna.post(f"/api/v1/cases/{ref}/claim", json=claim)).status_code == 404


async def test_the_customer_view_shows_email_phone_and_counter_contacts_together(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    mail, call, visit = await receive(
        amqp_channel,
        rabbit_vhost,
        make_contact(
            channel="email",
            entry_point="info@gemeente.nl",
            party={"name": "Fenna", "email": "fenna@example.org", "phone": "0613572468"},
        ),
        make_contact(channel="phone", entry_point="14020", party={"phone": "+31613572468"}),
        make_contact(
            channel="counter",
            entry_point="balie-centrum-3",
            location="centrum",
            party={"email": "FENNA@example.org", "identifiers": {"bsn": BSN}},
        ),
    )
    assert mail.party_id == call.party_id == visit.party_id

    anna, bram = client("anna"), client("bram")
    found = (await anna.get("/api/v1/parties", params={"phone": "06 13572468"})).json()
    assert [p["id"] for p in found] == [str(mail.party_id)]
    assert found[0]["identifier_types"] == ["bsn"]

    view = (await anna.get(f"/api/v1/parties/{mail.party_id}")).json()
    assert [c["channel"] for c in view["contacts"]] == ["counter", "phone", "email"]
    assert {c["ref"] for c in view["cases"]} == {mail.case_ref, call.case_ref, visit.case_ref}
    assert view["emails"] == ["fenna@example.org"]
    assert view["phones"] == ["+31613572468"]
    assert view["preferred_channel"] == "email"
    assert view["identifiers"] == {}  # agents without the need see no BSN
    assert view["identifier_types"] == ["bsn"]

    with_bsn = (await bram.get(f"/api/v1/parties/{mail.party_id}")).json()
    assert with_bsn["identifiers"] == {"bsn": BSN}
    by_bsn = (await bram.get("/api/v1/parties", params={"bsn": BSN})).json()
    assert [p["id"] for p in by_bsn] == [str(mail.party_id)]


async def test_claim_reply_transfer_and_close_through_the_api(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    [registered] = await receive(
        amqp_channel,
        rabbit_vhost,
        make_contact(
            channel="email",
            entry_point="info@gemeente.nl",
            source_ref="<vraag-1@example.org>",
            party={"name": "Fenna", "email": "fenna@example.org"},
        ),
    )
    ref, contact_id = registered.case_ref, str(registered.contact.id)
    anna, bram = client("anna"), client("bram")
    claim = {"contact_id": contact_id, "queue": Q}

    first, second = await asyncio.gather(
        anna.post(f"/api/v1/cases/{ref}/claim", json=claim),
        bram.post(f"/api/v1/cases/{ref}/claim", json=claim),
    )
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 409]
    winner, loser = (anna, bram) if first.status_code == 200 else (bram, anna)
    stale = (second if first.status_code == 200 else first).json()
    assert stale["stale"] is True
    assert stale["reason"] == "claimed"

    reply = await winner.post(
        f"/api/v1/cases/{ref}/reply",
        json={"text": "Uw vergunning is verlengd."},
        headers={"Idempotency-Key": "antwoord-1"},
    )
    assert reply.status_code == 202, reply.text
    [outbound] = await rabbit_vhost.wait_for("outbound.email", 1, timeout=15)
    assert outbound.type == "contact.outbound"
    assert outbound.routing_key == "email"
    answer = ContactMessage.model_validate_json(outbound.body)
    assert answer.direction is Direction.OUTBOUND
    assert (answer.entry_point, answer.in_reply_to) == ("info@gemeente.nl", "<vraag-1@example.org>")
    assert answer.party.email == "fenna@example.org"
    assert str(answer.id) == reply.json()["contact_id"] == outbound.message_id

    assert (
        await winner.post(
            f"/api/v1/cases/{ref}/transfer", json={"queue": "work.nowhere", "reason": "x"}
        )
    ).status_code == 422
    moved = await winner.post(
        f"/api/v1/cases/{ref}/transfer", json={"queue": "work.central", "reason": "jurist nodig"}
    )
    assert moved.status_code == 200, moved.text
    [work] = await rabbit_vhost.wait_for("work.central", 1, timeout=15)
    item = WorkItem.model_validate_json(work.body)
    assert (str(item.contact_id), item.queue, item.case_ref) == (contact_id, "work.central", ref)

    old_item = await loser.post(f"/api/v1/cases/{ref}/claim", json=claim)
    assert old_item.status_code == 409
    assert old_item.json()["reason"] == "transferred"
    new_item = {"contact_id": contact_id, "queue": "work.central"}
    assert (await loser.post(f"/api/v1/cases/{ref}/claim", json=new_item)).status_code == 200

    closed = await loser.post(f"/api/v1/cases/{ref}/close", json={"outcome": "beantwoord"})
    assert closed.status_code == 200
    assert closed.json()["status"] == "closed"
    again = await loser.post(f"/api/v1/cases/{ref}/close", json={"outcome": "beantwoord"})
    assert again.status_code == 409

    case = (await anna.get(f"/api/v1/cases/{ref}")).json()
    kinds = [e["kind"] for e in case["timeline"]]
    for kind in ("case.claimed", "case.replied", "case.transferred", "case.closed"):
        assert kind in kinds
    assert [s["status"] for s in case["status_history"]] == [
        "open",
        "in_progress",
        "open",
        "in_progress",
        "closed",
    ]
    # The dossier's own case events come back over dossier.events and change nothing.
    await asyncio.sleep(0.5)
    case = (await anna.get(f"/api/v1/cases/{ref}")).json()
    assert [e["kind"] for e in case["timeline"]].count("case.claimed") == 2


async def test_an_escalation_and_a_delivery_report_from_the_bus_land_on_the_case(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    [registered] = await receive(
        amqp_channel, rabbit_vhost, make_contact(party={"email": "a@example.org"})
    )
    ref = registered.case_ref
    escalation = CaseEvent(
        event=CaseEventKind.ESCALATED,
        case_ref=ref,
        contact_id=registered.contact.id,
        queue="work.escalation",
        from_queue=None,
        reason="SLA passed",
        at=datetime.now(UTC),
    )
    await publish_event(
        amqp_channel,
        "case.escalated",
        "case.escalated",
        escalation.model_dump_json().encode(),
        "e1",
    )
    anna = client("anna")
    case = await eventually(anna, f"/api/v1/cases/{ref}", lambda c: c["queue"] is not None)
    assert case["queue"] == "work.escalation"

    reply = await anna.post(f"/api/v1/cases/{ref}/reply", json={"text": "Antwoord"})
    assert reply.status_code == 202
    report = {
        "contact_id": reply.json()["contact_id"],
        "channel": "web",
        "case_ref": ref,
        "status": "failed",
        "reason": "mailbox full",
        "reported_at": datetime.now(UTC).isoformat(),
    }
    await publish_event(
        amqp_channel,
        "contact.failed",
        "contact.failed.web",
        json.dumps(report).encode(),
        reply.json()["contact_id"],
    )
    case = await eventually(
        anna, f"/api/v1/cases/{ref}", lambda c: c["contacts"][-1]["delivery_status"] is not None
    )
    assert case["contacts"][-1]["delivery_status"] == "failed"
    assert "contact.failed" in [e["kind"] for e in case["timeline"]]


async def test_a_supervisor_merges_parties_unless_their_strong_identifiers_conflict(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    by_mail, by_phone, other_bsn = await receive(
        amqp_channel,
        rabbit_vhost,
        make_contact(party={"email": "a@example.org", "identifiers": {"bsn": BSN}}),
        make_contact(channel="phone", entry_point="14020", party={"phone": "0612345678"}),
        make_contact(party={"email": "b@example.org", "identifiers": {"bsn": "123456782"}}),
    )
    sara = client("sara")
    refused = await sara.post(
        f"/api/v1/parties/{by_mail.party_id}/merge", json={"party_id": str(other_bsn.party_id)}
    )
    assert refused.status_code == 409
    assert refused.json()["detail"]["reason"] == "conflicting_identifiers"

    merged = await sara.post(
        f"/api/v1/parties/{by_mail.party_id}/merge", json={"party_id": str(by_phone.party_id)}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["cases_moved"] == 1
    view = (await sara.get(f"/api/v1/parties/{by_mail.party_id}")).json()
    assert view["phones"] == ["+31612345678"]
    assert {c["channel"] for c in view["contacts"]} == {"web", "phone"}
    assert (await sara.get(f"/api/v1/parties/{by_phone.party_id}")).status_code == 404


async def test_the_klantinteracties_export_renders_contacts_betrokkenen_and_the_zaak(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    [registered] = await receive(
        amqp_channel,
        rabbit_vhost,
        make_contact(
            party={"name": "Fenna", "email": "a@example.org", "identifiers": {"bsn": BSN}}
        ),
    )
    anna = client("anna")
    await anna.post(f"/api/v1/cases/{registered.case_ref}/reply", json={"text": "Antwoord"})
    export = (await anna.get(f"/api/v1/cases/{registered.case_ref}/klantinteracties")).json()
    assert export["klantcontacten"][0]["uuid"] == str(registered.contact.id)
    assert len(export["klantcontacten"]) == len(export["betrokkenen"]) == 2
    assert {o["onderwerpobjectidentificator"]["objectId"] for o in export["onderwerpobjecten"]} == {
        registered.case_ref
    }
    assert export["betrokkenen"][0]["wasPartij"]["uuid"] == str(registered.party_id)
    assert export["actoren"][0]["actoridentificator"]["objectId"] == "anna"
    assert export["partijen"][0]["partijIdentificatoren"] == []  # no BSN for this agent
    supervisor = (
        await client("sara").get(f"/api/v1/cases/{registered.case_ref}/klantinteracties")
    ).json()
    assert (
        supervisor["partijen"][0]["partijIdentificatoren"][0]["partijIdentificator"]["objectId"]
        == BSN
    )


async def test_notes_held_cases_and_waiting_queues_for_the_agent_desk(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    client: Callable[[str | None], httpx.AsyncClient],
) -> None:
    first, second = await receive(
        amqp_channel,
        rabbit_vhost,
        make_contact(channel="counter", entry_point="noord", location="noord"),
        make_contact(channel="phone", entry_point="14020", party={"phone": "+31612121212"}),
    )
    anna, service = client("anna"), client("service")
    for registered in (first, second):
        item = WorkItem(
            contact_id=registered.contact.id,
            case_ref=registered.case_ref,
            party_id=registered.party_id,
            channel=registered.contact.channel,
            queue=Q,
            rule="test",
            sla_due_at=datetime(2020, 1, 1, tzinfo=UTC),
            routed_at=datetime.now(UTC),
        )
        await publish_event(
            amqp_channel,
            "contact.routed",
            f"contact.routed.{item.channel}",
            item.model_dump_json().encode(),
            str(uuid.uuid4()),
        )
    waiting = await eventually(anna, "/api/v1/queues", lambda b: any(q["waiting"] == 2 for q in b))
    [parkeren] = [q for q in waiting if q["queue"] == Q]
    assert parkeren["sla_breached"] == 2
    assert parkeren["oldest_since"] is not None
    assert (await service.get("/api/v1/queues")).status_code == 403

    ref = first.case_ref
    claim = {"contact_id": str(first.contact.id), "queue": Q}
    assert (await anna.post(f"/api/v1/cases/{ref}/claim", json=claim)).status_code == 200
    held = (await anna.get("/api/v1/agents/me/cases")).json()
    assert [c["ref"] for c in held] == [ref]
    assert held[0]["location"] == "noord"
    waiting = (await anna.get("/api/v1/queues")).json()
    assert [q["waiting"] for q in waiting if q["queue"] == Q] == [1]

    noted = await anna.post(f"/api/v1/cases/{ref}/notes", json={"text": "Paspoort mee."})
    assert noted.status_code == 201, noted.text
    called = await anna.post(
        f"/api/v1/cases/{ref}/notes", json={"text": "Teruggebeld, opgelost.", "callback": True}
    )
    assert called.json()["kind"] == "case.called_back"
    assert (await anna.post(f"/api/v1/cases/{ref}/notes", json={"text": " "})).status_code == 422
    case = (await anna.get(f"/api/v1/cases/{ref}")).json()
    notes = [e for e in case["timeline"] if e["kind"] in ("case.noted", "case.called_back")]
    assert [(e["kind"], e["data"]["text"], e["actor"]) for e in notes] == [
        ("case.noted", "Paspoort mee.", "anna"),
        ("case.called_back", "Teruggebeld, opgelost.", "anna"),
    ]
    assert case["contacts"][0]["location"] == "noord"
    party = (await anna.get(f"/api/v1/parties/{first.party_id}")).json()
    assert party["contacts"][0]["location"] == "noord"
    await anna.post(f"/api/v1/cases/{ref}/close", json={"outcome": "beantwoord"})
    assert (await anna.get("/api/v1/agents/me/cases")).json() == []
    closed_note = await anna.post(f"/api/v1/cases/{ref}/notes", json={"text": "te laat"})
    assert closed_note.status_code == 409
