"""The counter adapter against the real RabbitMQ: kiosk check-ins and desk events per location."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from kanaal.common.contract import ContactMessage, ContactUpdate
from kanaal.common.contract_kit import ContractKit, InputRefused, Sample
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import DOSSIER_EVENTS, DOSSIER_INTAKE, Event
from kanaal.counter.app import CounterSettings, create_app

REPO = Path(__file__).resolve().parents[3]
TOKENS = {
    "KANAAL_KIOSK_STADHUIS_TOKEN": "kiosk-stadhuis",
    "KANAAL_DESK_STADHUIS_TOKEN": "desk-stadhuis",
    "KANAAL_KIOSK_NOORD_TOKEN": "kiosk-noord",
    "KANAAL_DESK_NOORD_TOKEN": "desk-noord",
}
KIOSK = TOKENS["KANAAL_KIOSK_STADHUIS_TOKEN"]
DESK = TOKENS["KANAAL_DESK_STADHUIS_TOKEN"]
MONDAY_10H = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam: stadhuis is open


@dataclass
class Clock:
    now: datetime = MONDAY_10H

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Counter:
    client: httpx.AsyncClient
    clock: Clock
    vhost: RabbitVhost

    async def check_in(self, token: str = KIOSK, **changes: Any) -> httpx.Response:
        body = {"location": "stadhuis", "subject": "paspoort", "ticket": "A023", **changes}
        return await self.client.post(
            "/api/v1/visits", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    async def desk(
        self,
        visit_id: str,
        token: str = DESK,
        **body: Any,
    ) -> httpx.Response:
        return await self.client.post(
            f"/api/v1/visits/{visit_id}/events",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


@pytest.fixture
async def counter(
    rabbit_vhost: RabbitVhost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Counter]:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)
    settings = CounterSettings(
        amqp_url=SecretStr(rabbit_vhost.url),
        config_dir=REPO / "deploy/config",
        counter_database_url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}"),
    )
    clock = Clock()
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://counter") as client:
            yield Counter(client, clock, rabbit_vhost)


async def test_a_kiosk_check_in_is_one_contact_at_its_location(counter: Counter) -> None:
    answer = await counter.check_in(name="A. Burger", phone="06 12345678", appointment_ref="AP-7")
    assert answer.status_code == 201, answer.text
    visit = answer.json()
    assert visit["ticket"] == "A023"
    assert visit["status"] == "waiting"
    assert visit["visit_id"] == visit["contact_id"]
    # The kiosk did not hear back and sends it again: still one visit.
    again = await counter.check_in(ticket="a023", name="A. Burger", phone="06 12345678")
    assert again.json()["visit_id"] == visit["visit_id"]

    found = await counter.vhost.wait_for(DOSSIER_INTAKE.name, 2, timeout=15)
    contacts = [ContactMessage.model_validate_json(m.body) for m in found]
    assert {c.id for c in contacts} == {uuid.UUID(visit["contact_id"])}
    contact = contacts[0]
    assert (contact.channel, contact.location, contact.subject) == (
        "counter",
        "stadhuis",
        "paspoort",
    )
    assert contact.party.phone == "+31612345678"


async def test_desk_events_move_the_visit_and_reach_the_dossier_as_updates(
    counter: Counter,
) -> None:
    visit_id = (await counter.check_in()).json()["visit_id"]
    counter.clock.now += timedelta(minutes=9)
    called = await counter.desk(visit_id, event="called", desk="3", agent="mw-17")
    assert called.status_code == 200, called.text
    assert called.json()["status"] == "called"
    assert (await counter.desk(visit_id, event="called", desk="3", agent="mw-17")).json()[
        "duplicate"
    ] is True
    counter.clock.now += timedelta(minutes=6)
    served = await counter.desk(visit_id, event="served", outcome="afgehandeld", notes="Paspoort")
    assert served.json()["status"] == "served"
    too_late = await counter.desk(visit_id, event="no_show")
    assert too_late.status_code == 409

    found = await counter.vhost.wait_for(DOSSIER_EVENTS.name, 2, timeout=15, settle=0.5)
    assert len(found) == 2, "a repeated desk event is one update"
    assert {m.routing_key for m in found} == {Event.CONTACT_UPDATED.key("counter")}
    updates = [ContactUpdate.model_validate_json(m.body) for m in found]
    assert [u.event for u in updates] == ["called", "served"]
    assert all(str(u.contact_id) == visit_id for u in updates)
    assert updates[0].channel_data["wait_seconds"] == 540
    assert updates[1].channel_data == {
        "status": "served",
        "desk": "3",
        "outcome": "afgehandeld",
        "notes": "Paspoort",
        "service_seconds": 360,
    }
    assert [m.message_id for m in found] == [
        called.json()["update_id"],
        served.json()["update_id"],
    ]


async def test_a_visitor_who_does_not_show_is_recorded_as_no_show(counter: Counter) -> None:
    visit_id = (await counter.check_in(ticket="B001")).json()["visit_id"]
    await counter.desk(visit_id, event="called", desk="1")
    gone = await counter.desk(visit_id, event="no_show", desk="1")
    assert gone.json()["status"] == "no_show"


async def test_tokens_open_only_their_own_location(counter: Counter) -> None:
    assert (await counter.check_in(token="wrong")).status_code == 401
    assert (await counter.check_in(token="desk-stadhuis")).status_code == 401
    assert (await counter.check_in(token="kiosk-noord")).status_code == 403
    visit_id = (await counter.check_in()).json()["visit_id"]
    assert (
        await counter.desk(visit_id, token="kiosk-stadhuis", event="no_show")
    ).status_code == 401
    assert (await counter.desk(visit_id, token="desk-noord", event="no_show")).status_code == 403
    unknown = await counter.desk(str(uuid.uuid4()), event="no_show")
    assert unknown.status_code == 404


async def test_bad_check_ins_and_desk_events_get_422_naming_the_field(counter: Counter) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"location": "zuid"}, "location"),
        ({"subject": "ufo"}, "subject"),
        ({"bsn": "123456789"}, "bsn"),
        ({"ticket": ""}, "ticket"),
    ]
    for changes, field in cases:
        answer = await counter.check_in(**changes)
        assert answer.status_code == 422, changes
        assert answer.json()["detail"][0]["loc"][-1] == field
    counter.clock.now = MONDAY_10H + timedelta(days=5)  # saturday: the stadhuis is closed
    closed = await counter.check_in()
    assert closed.status_code == 422
    assert "closed" in closed.json()["detail"][0]["msg"]
    counter.clock.now = MONDAY_10H
    visit_id = (await counter.check_in()).json()["visit_id"]
    no_desk = await counter.desk(visit_id, event="called")
    assert no_desk.json()["detail"][0]["loc"] == ["body", "desk"]
    bad_desk = await counter.desk(visit_id, event="called", desk="99")
    assert bad_desk.status_code == 422
    assert (await counter.desk(visit_id, event="coffee")).status_code == 422


def random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            rng.randint(-(10**12), 10**12),
            True,
            "",
            "x" * rng.randint(0, 3000),
            "".join(rng.choice("0123456789 +-abcA\u00e9\x00") for _ in range(rng.randint(0, 20))),
            rng.choice(["stadhuis", "noord", "paspoort", "called", "served", "no_show", "1"]),
            [1, "a"],
            {"nested": True},
        ]
    )


def mutated(rng: random.Random, base: dict[str, Any], extra: str) -> dict[str, Any]:
    body = dict(base)
    for name in rng.sample([*base, extra], rng.randint(0, 2)):
        if rng.random() < 0.3:
            body.pop(name, None)
        else:
            body[name] = random_value(rng)
    return body


async def test_random_requests_get_clear_answers_and_never_a_5xx(counter: Counter) -> None:
    rng = random.Random(3)  # a fixed seed: the same requests on every run
    visit_ids = [(await counter.check_in(ticket=f"F{n}")).json()["visit_id"] for n in range(5)]
    seen: set[int] = set()
    for n in range(120):
        body = mutated(
            rng, {"location": "stadhuis", "subject": "paspoort", "ticket": f"R{n}"}, "bsn"
        )
        answer = await counter.client.post(
            "/api/v1/visits", json=body, headers={"Authorization": f"Bearer {KIOSK}"}
        )
        assert answer.status_code in (201, 403, 422), (body, answer.text)
        event = mutated(
            rng, {"event": rng.choice(["called", "served", "no_show"]), "desk": "1"}, "x"
        )
        answer = await counter.desk(rng.choice(visit_ids), **event)
        assert answer.status_code in (200, 409, 422), (event, answer.text)
        seen.add(answer.status_code)
    assert seen == {200, 409, 422}, "the desk events should be accepted, conflicting and refused"


async def test_the_counter_adapter_keeps_the_contact_contract(
    counter: Counter, contract_kit: Callable[[str], Awaitable[ContractKit]]
) -> None:
    kit = await contract_kit("counter")

    async def feed(body: dict[str, Any]) -> None:
        response = await counter.check_in(**body)
        if 400 <= response.status_code < 500:
            raise InputRefused(response.text)
        response.raise_for_status()

    valid = [
        Sample("passport check-in", {"ticket": "K101"}),
        Sample("second check-in", {"ticket": "K102", "subject": "paspoort"}),
    ]
    invalid = [
        Sample("unknown location", {"ticket": "K103", "location": "maan"}),
        Sample("subject not offered", {"ticket": "K104", "subject": "ufo"}),
    ]
    contacts = await kit.check_inbound(feed, valid, invalid)
    assert {c.location for c in contacts} == {"stadhuis"}
