"""The dossier's wiring against the real RabbitMQ: intake, dedup, dead-lettering, events, API."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI

from kanaal.common.contract import ContactMessage, ContactUpdate, RegisteredContact, WorkItem
from kanaal.common.messaging import DEAD_REASON_HEADER, contract_message
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import Event
from kanaal.dossier.app import DossierSettings, create_app
from kanaal.dossier.database import create_engine, upgrade
from kanaal.dossier.store import DossierStore

CONFIG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "config"
TOKEN = "test-dossier-token"

ContactFactory = Callable[..., ContactMessage]


@pytest.fixture
def settings(rabbit_vhost: RabbitVhost, tmp_path: Path) -> DossierSettings:
    return DossierSettings(
        amqp_url=rabbit_vhost.url,
        config_dir=CONFIG_DIR,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/dossier.db",
        dossier_api_token=TOKEN,
        retry_delay=0.1,
        outbox_interval=0.5,
    )


def running(app: FastAPI) -> AbstractAsyncContextManager[Any]:
    """The app's lifespan: migrate, declare the topology, consume, relay; stop on exit."""
    return app.router.lifespan_context(app)


@pytest.fixture
async def app(settings: DossierSettings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with running(app):
        yield app


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://dossier",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


async def publish_contact(channel: aio_pika.abc.AbstractChannel, contact: ContactMessage) -> None:
    exchange = await channel.get_exchange("kanaal.events")
    await exchange.publish(
        contract_message(contact, message_type=Event.CONTACT_RECEIVED, message_id=contact.id),
        routing_key=Event.CONTACT_RECEIVED.key(contact.channel),
    )


async def registered_on_router_intake(
    rabbit_vhost: RabbitVhost, count: int = 1, settle: float = 0.0
) -> list[RegisteredContact]:
    messages = await rabbit_vhost.wait_for("router.intake", count, timeout=15, settle=settle)
    for message in messages:
        assert message.type == "contact.registered"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    return [RegisteredContact.model_validate_json(m.body) for m in messages]


async def case_when(
    http: httpx.AsyncClient, ref: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The case from the API once `condition` holds (events are consumed asynchronously)."""
    for _ in range(100):
        response = await http.get(f"/api/v1/cases/{ref}")
        assert response.status_code == 200
        case: dict[str, Any] = response.json()
        if condition(case):
            return case
        await asyncio.sleep(0.1)
    raise AssertionError(f"case {ref} never reached the expected state")


@pytest.mark.usefixtures("app")
async def test_a_received_contact_is_registered_for_the_router(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    http: httpx.AsyncClient,
) -> None:
    contact = make_contact(party={"email": "jan@example.nl"})
    await publish_contact(amqp_channel, contact)
    [registered] = await registered_on_router_intake(rabbit_vhost)
    assert registered.contact == contact
    assert registered.case_is_new

    response = await http.get(f"/api/v1/contacts/{contact.id}")
    assert response.status_code == 200
    body = response.json()
    assert body["case_ref"] == registered.case_ref
    assert body["party_id"] == str(registered.party_id)
    assert body["case_status"] == "open"
    assert body["channel"] == "web"


@pytest.mark.usefixtures("app")
async def test_same_contact_twice_is_stored_once(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    http: httpx.AsyncClient,
) -> None:
    contact = make_contact()
    await publish_contact(amqp_channel, contact)
    await publish_contact(amqp_channel, contact)
    registered = await registered_on_router_intake(rabbit_vhost, 1, settle=2.0)
    assert len(registered) == 1
    case = (await http.get(f"/api/v1/cases/{registered[0].case_ref}")).json()
    assert [c["id"] for c in case["contacts"]] == [str(contact.id)]


@pytest.mark.usefixtures("app")
async def test_an_invalid_body_is_dead_lettered_and_intake_keeps_going(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
) -> None:
    await amqp_channel.default_exchange.publish(
        aio_pika.Message(b'{"channel": "web", "text": ', content_type="application/json"),
        routing_key="dossier.intake",
    )
    [dead] = await rabbit_vhost.wait_for("dead.dossier.intake", 1, timeout=15)
    assert "invalid message" in str(dead.headers[DEAD_REASON_HEADER])
    assert dead.body == b'{"channel": "web", "text": '

    contact = make_contact()
    await publish_contact(amqp_channel, contact)
    [registered] = await registered_on_router_intake(rabbit_vhost)
    assert registered.contact.id == contact.id


@pytest.mark.usefixtures("app")
async def test_contacts_find_their_party_and_case(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
) -> None:
    await publish_contact(amqp_channel, make_contact(party={"email": "jan@example.nl"}))
    [first] = await registered_on_router_intake(rabbit_vhost)

    same_email = make_contact(
        channel="email", entry_point="info@gemeente.nl", party={"email": "jan@example.nl"}
    )
    await publish_contact(amqp_channel, same_email)
    [second] = await registered_on_router_intake(rabbit_vhost)
    assert second.party_id == first.party_id
    assert second.case_is_new

    on_case = make_contact(
        channel="phone",
        entry_point="14020",
        party={"email": "jan@example.nl"},
        case_ref=first.case_ref,
    )
    await publish_contact(amqp_channel, on_case)
    [third] = await registered_on_router_intake(rabbit_vhost)
    assert third.case_ref == first.case_ref
    assert not third.case_is_new


@pytest.mark.usefixtures("app")
async def test_a_routed_event_lands_once_on_the_case_timeline_and_makes_the_queue_sticky(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    http: httpx.AsyncClient,
) -> None:
    contact = make_contact(party={"email": "vast@example.nl"})
    await publish_contact(amqp_channel, contact)
    [registered] = await registered_on_router_intake(rabbit_vhost)
    item = WorkItem(
        contact_id=contact.id,
        case_ref=registered.case_ref,
        party_id=registered.party_id,
        channel=contact.channel,
        queue="work.subject.parkeren",
        rule="strategy:subject",
        routed_at=datetime.now(UTC),
    )
    exchange = await amqp_channel.get_exchange("kanaal.events")
    for _ in range(2):
        await exchange.publish(
            aio_pika.Message(
                item.model_dump_json().encode(),
                message_id=str(contact.id),
                type=Event.CONTACT_ROUTED.value,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=Event.CONTACT_ROUTED.key(contact.channel),
        )
    # A case event that is not a valid CaseEvent is dead-lettered, not looped on.
    await exchange.publish(
        aio_pika.Message(
            json.dumps({"case_ref": registered.case_ref}).encode(), type="case.claimed"
        ),
        routing_key="case.claimed",
    )

    case = await case_when(http, registered.case_ref, lambda c: c["queue"] is not None)
    assert case["queue"] == "work.subject.parkeren"
    [dead] = await rabbit_vhost.wait_for("dead.dossier.events", 1, timeout=15)
    assert "invalid message" in str(dead.headers[DEAD_REASON_HEADER])

    # The customer writes again by e-mail (a web form's typed address proves nothing).
    follow_up = make_contact(
        channel="email",
        entry_point="info@gemeente.nl",
        party=contact.party,
        case_ref=registered.case_ref,
    )
    await publish_contact(amqp_channel, follow_up)
    [sticky] = await registered_on_router_intake(rabbit_vhost)
    assert sticky.case_queue == "work.subject.parkeren"

    case = (await http.get(f"/api/v1/cases/{registered.case_ref}")).json()
    kinds = [entry["kind"] for entry in case["timeline"]]
    assert kinds.count("contact.routed") == 1
    assert await rabbit_vhost.wait_for("dossier.events", 1, timeout=0.5) == []


async def test_a_registration_whose_publish_was_missed_is_published_after_a_restart(
    settings: DossierSettings, rabbit_vhost: RabbitVhost, make_contact: ContactFactory
) -> None:
    # A crash after the commit and before the publish leaves the message in the outbox.
    engine = create_engine(settings.database_url.get_secret_value())
    await upgrade(engine)
    contact = make_contact()
    assert await DossierStore(engine).register(contact) is not None
    await engine.dispose()

    app = create_app(settings)
    async with running(app):
        [registered] = await registered_on_router_intake(rabbit_vhost)
    assert registered.contact.id == contact.id


async def test_the_api_needs_the_token(app: FastAPI, settings: DossierSettings) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier") as client:
        assert (await client.get("/api/v1/cases/K-2026-000001")).status_code == 401
        wrong = {"Authorization": "Bearer wrong"}
        assert (await client.get("/api/v1/cases/K-2026-000001", headers=wrong)).status_code == 401
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert (await client.get("/api/v1/cases/K-2026-000001", headers=right)).status_code == 404
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"broker": True, "database": True}

    closed = create_app(settings.model_copy(update={"dossier_api_token": None}))
    transport = httpx.ASGITransport(app=closed)
    async with httpx.AsyncClient(transport=transport, base_url="http://dossier") as client:
        response = await client.get("/api/v1/cases/K-2026-000001", headers=right)
    assert response.status_code == 503
    assert "KANAAL_DOSSIER_API_TOKEN" in response.json()["detail"]


async def publish_update(
    channel: aio_pika.abc.AbstractChannel, update: ContactUpdate, message_id: str
) -> None:
    exchange = await channel.get_exchange("kanaal.events")
    await exchange.publish(
        aio_pika.Message(
            update.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=Event.CONTACT_UPDATED.value,
        ),
        routing_key=Event.CONTACT_UPDATED.key(update.channel),
    )


@pytest.mark.usefixtures("app")
async def test_counter_desk_events_land_once_each_on_the_case_timeline(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    http: httpx.AsyncClient,
) -> None:
    visit = make_contact(channel="counter", entry_point="centrum", source_ref="ticket-C03")
    called = ContactUpdate(
        contact_id=visit.id,
        channel="counter",
        event="called",
        channel_data={"status": "called", "desk": "2", "wait_seconds": 95},
        at=datetime.now(UTC),
    )
    # The counter adapter's update may overtake its contact: it waits for it (retried).
    await publish_update(amqp_channel, called, "update-called")
    await asyncio.sleep(0.3)
    await publish_contact(amqp_channel, visit)
    [registered] = await registered_on_router_intake(rabbit_vhost)
    served = ContactUpdate(
        contact_id=visit.id,
        channel="counter",
        event="served",
        channel_data={"status": "served", "desk": "2", "outcome": "afgehandeld"},
        at=datetime.now(UTC),
    )
    for _ in range(2):  # a redelivery, as the counter adapter may send it
        await publish_update(amqp_channel, served, "update-served")
        await publish_update(amqp_channel, called, "update-called")

    def both_recorded(case: dict[str, Any]) -> bool:
        return [e["kind"] for e in case["timeline"]].count("contact.updated") >= 2

    await case_when(http, registered.case_ref, both_recorded)
    await asyncio.sleep(0.5)  # let the redeliveries arrive: they must change nothing
    case = (await http.get(f"/api/v1/cases/{registered.case_ref}")).json()
    lines = [e for e in case["timeline"] if e["kind"] == "contact.updated"]
    assert sorted(e["data"]["text"] for e in lines) == [
        "geholpen, balie 2, resultaat afgehandeld",
        "opgeroepen, balie 2, wachttijd 2 min",
    ]
    assert all(e["actor"] == "channel:counter" for e in lines)
    assert await rabbit_vhost.wait_for("dead.dossier.events", 1, timeout=0.5) == []


@pytest.mark.usefixtures("app")
async def test_a_typed_case_ref_of_another_customer_is_not_followed_and_not_shown(
    rabbit_vhost: RabbitVhost,
    amqp_channel: aio_pika.abc.AbstractChannel,
    make_contact: ContactFactory,
    http: httpx.AsyncClient,
) -> None:
    await publish_contact(amqp_channel, make_contact(party={"email": "jan@example.nl"}))
    [citizen] = await registered_on_router_intake(rabbit_vhost)
    typist = make_contact(party={"email": "piet@example.nl"}, case_ref=citizen.case_ref)
    await publish_contact(amqp_channel, typist)
    [registered] = await registered_on_router_intake(rabbit_vhost)
    assert registered.case_is_new
    assert registered.case_ref != citizen.case_ref

    # What the web adapter's status page asks: the typist's own new case, status open.
    landed = (await http.get(f"/api/v1/contacts/{typist.id}")).json()
    assert (landed["case_ref"], landed["case_status"]) == (registered.case_ref, "open")
    case = (await http.get(f"/api/v1/cases/{registered.case_ref}")).json()
    [note] = [e for e in case["timeline"] if e["kind"] == "case.noted"]
    assert note["actor"] == "dossier"
    assert note["data"]["text"] == f"Noemt zaak {citizen.case_ref}, niet gekoppeld: andere klant"
    other = (await http.get(f"/api/v1/cases/{citizen.case_ref}")).json()
    assert len(other["contacts"]) == 1
