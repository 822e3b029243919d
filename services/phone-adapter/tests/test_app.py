"""The phone adapter against the real RabbitMQ: CTI webhooks in, one contact per call out."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import SecretStr

from kanaal.common.contract import ContactMessage, contact_id
from kanaal.common.contract_kit import ContractKit, InputRefused, Sample, captured_logs
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import DOSSIER_INTAKE
from kanaal.phone.app import PhoneSettings, create_app
from kanaal.phone.cti import sign

REPO = Path(__file__).resolve().parents[3]
CTI_TOKEN = "cti-token-for-tests"
CALLBACK_TOKEN = "callback-token-for-tests"
HMAC_KEY = "hmac-key-for-tests"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CALLER = "06 12345678"


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Phone:
    client: httpx.AsyncClient
    clock: Clock
    app: FastAPI
    vhost: RabbitVhost
    sent: list[dict[str, Any]] = field(default_factory=list)

    async def cti(
        self, event: str, call_id: str = "call-1", *, form: bool = False, **fields: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {
            "event": event,
            "callId": call_id,
            "from": CALLER,
            "to": "14020",
            "direction": "in",
            **fields,
        }
        self.sent.append(body)
        if form:
            return await self.client.post(f"/api/v1/cti/{CTI_TOKEN}", data=body)
        return await self.client.post(f"/api/v1/cti/{CTI_TOKEN}", json=body)

    async def contacts(self, count: int, settle: float = 0.0) -> list[ContactMessage]:
        found = await self.vhost.wait_for(DOSSIER_INTAKE.name, count, timeout=15, settle=settle)
        return [ContactMessage.model_validate_json(m.body) for m in found]


def config_dir(tmp_path: Path, **phone: Any) -> Path:
    """deploy/config with the `phone:` entry changed as given."""
    target = tmp_path / "config"
    shutil.copytree(REPO / "deploy/config", target)
    channels = yaml.safe_load((target / "channels.yaml").read_text(encoding="utf-8"))
    for key, value in phone.items():
        channels["channels"]["phone"].setdefault(key, {})
        if isinstance(value, dict):
            channels["channels"]["phone"][key].update(value)
        else:
            channels["channels"]["phone"][key] = value
    (target / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    return target


@asynccontextmanager
async def running(
    vhost: RabbitVhost, tmp_path: Path, config: Path | None = None, settle: float = 0.0
) -> AsyncIterator[Phone]:
    settings = PhoneSettings(
        amqp_url=SecretStr(vhost.url),
        config_dir=config or REPO / "deploy/config",
        phone_database_url=SecretStr(f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}"),
        phone_hangup_settle=settle,
        phone_sweep_interval=0.05,
        retry_delay=0.05,
    )
    clock = Clock()
    app = create_app(settings, clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://phone") as client:
            yield Phone(client, clock, app, vhost)


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KANAAL_CTI_TOKEN", CTI_TOKEN)
    monkeypatch.setenv("KANAAL_CALLBACK_TOKEN", CALLBACK_TOKEN)
    monkeypatch.setenv("KANAAL_CTI_HMAC_KEY", HMAC_KEY)


@pytest.fixture
async def phone(rabbit_vhost: RabbitVhost, tmp_path: Path) -> AsyncIterator[Phone]:
    async with running(rabbit_vhost, tmp_path) as started:
        yield started


async def test_a_new_call_answer_hangup_sequence_is_one_contact(phone: Phone) -> None:
    assert (await phone.cti("newCall", queue="1", user=["Anna", "Bram"])).json() == {
        "status": "recorded",
        "call": "open",
    }
    phone.clock.advance(15)
    await phone.cti("answer", user="Bram", answeringNumber="201")
    phone.clock.advance(90)
    answer = await phone.cti("hangup", cause="normalClearing")
    assert answer.json() == {"status": "recorded", "call": "published"}

    [contact] = await phone.contacts(1, settle=0.5)
    assert contact.id == contact_id("phone", "14020", "call-1")
    assert contact.party.phone == "+31612345678"
    assert contact.subject == "parkeren"
    assert contact.channel_data["answered_by"] == "Bram"
    assert (contact.channel_data["wait_seconds"], contact.channel_data["talk_seconds"]) == (15, 90)
    assert contact.channel_data["callback"] is False


async def test_form_encoded_events_with_user_brackets_work_like_json(phone: Phone) -> None:
    await phone.cti("newCall", form=True, **{"user[]": ["Anna", "Bram"]})
    await phone.cti("hangup", form=True, cause="noAnswer")
    [contact] = await phone.contacts(1)
    assert contact.channel_data["users_rung"] == 2
    assert contact.channel_data["callback"] is True


async def test_duplicated_events_give_one_contact(phone: Phone) -> None:
    await phone.cti("newCall")
    assert (await phone.cti("newCall")).json()["status"] == "duplicate"
    await phone.cti("answer", user="Anna")
    await phone.cti("answer", user="Anna")
    await phone.cti("hangup", cause="normalClearing")
    again = await phone.cti("hangup", cause="normalClearing")
    assert again.json() == {"status": "duplicate", "call": "published"}
    contacts = await phone.contacts(1, settle=1.0)
    assert len(contacts) == 1


async def test_events_out_of_order_within_the_settle_time_give_one_complete_contact(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    async with running(rabbit_vhost, tmp_path, settle=3) as phone:
        # The exchange's retries deliver the hangup first, the newCall last.
        assert (await phone.cti("hangup", cause="normalClearing")).json()["call"] == "open"
        await phone.cti("answer", user="Anna", answeringNumber="202")
        await phone.cti("newCall", queue="2")
        await phone.cti("answer", user="Anna", answeringNumber="202")
        phone.clock.advance(3)  # the settle time passes: the sweeper publishes the call
        contacts = await phone.contacts(1, settle=1.0)
    assert len(contacts) == 1
    data = contacts[0].channel_data
    assert (data["answered"], data["answered_by"], data["callback"]) == (True, "Anna", False)
    assert contacts[0].subject == "afval"


async def test_an_unanswered_call_becomes_a_callback_contact_on_the_dossier_intake(
    phone: Phone,
) -> None:
    await phone.cti("newCall", queue="3")
    phone.clock.advance(40)
    await phone.cti("hangup", cause="cancel")
    [contact] = await phone.contacts(1)
    assert contact.channel_data["callback"] is True
    assert contact.channel_data["outcome"] == "missed"
    assert contact.channel_data["wait_seconds"] == 40
    assert contact.subject == "paspoort"


async def test_a_call_without_hangup_is_published_after_the_time_out(phone: Phone) -> None:
    await phone.cti("newCall", "lost-call")
    phone.clock.advance(4 * 3600)
    [contact] = await phone.contacts(1)
    assert contact.source_ref == "lost-call"
    assert contact.channel_data["ended_by"] == "timeout"


async def test_a_call_kept_before_a_restart_is_published_after_it(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    async with running(rabbit_vhost, tmp_path, settle=60) as phone:
        await phone.cti("newCall")
        await phone.cti("hangup", cause="busy")
    async with running(rabbit_vhost, tmp_path, settle=60) as phone:
        phone.clock.advance(60)
        [contact] = await phone.contacts(1)
    assert contact.channel_data["hangup_cause"] == "busy"


async def test_an_unknown_token_gets_401_and_a_malformed_event_422_with_the_reason(
    phone: Phone,
) -> None:
    refused = await phone.client.post("/api/v1/cti/wrong-token", json={"event": "newCall"})
    assert refused.status_code == 401
    malformed = await phone.cti("ring")
    assert malformed.status_code == 422
    assert "event: must be one of newCall, answer, hangup" in malformed.json()["detail"]
    not_json = await phone.client.post(
        f"/api/v1/cti/{CTI_TOKEN}", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert "not valid JSON" in not_json.json()["detail"]


async def test_a_signed_exchange_needs_a_valid_hmac_signature(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    config = config_dir(tmp_path, cti={"hmac_key_env": "KANAAL_CTI_HMAC_KEY"})
    async with running(rabbit_vhost, tmp_path, config=config) as phone:
        body = json.dumps(
            {"event": "newCall", "callId": "s1", "from": CALLER, "to": "14020", "direction": "in"}
        ).encode()
        url = f"/api/v1/cti/{CTI_TOKEN}"
        headers = {"content-type": "application/json"}
        unsigned = await phone.client.post(url, content=body, headers=headers)
        assert unsigned.status_code == 401
        forged = await phone.client.post(
            url, content=body, headers={**headers, "X-Kanaal-Signature": sign(body, b"guess")}
        )
        assert forged.status_code == 401
        assert forged.json()["detail"] == "missing or invalid signature"
        signed = await phone.client.post(
            url,
            content=body,
            headers={**headers, "X-Kanaal-Signature": sign(body, HMAC_KEY.encode())},
        )
        assert signed.status_code == 200, signed.text


async def test_an_ivr_choice_in_a_digits_field_maps_to_the_subject(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    config = config_dir(tmp_path, cti={"ivr_field": "digits"})
    async with running(rabbit_vhost, tmp_path, config=config) as phone:
        await phone.cti("newCall", digits="4", queue="1")
        await phone.cti("hangup", cause="noAnswer")
        [contact] = await phone.contacts(1)
    assert contact.subject == "belastingen"
    assert contact.channel_data["ivr_choice"] == "4"


async def callback(
    phone: Phone, body: dict[str, Any], token: str = CALLBACK_TOKEN
) -> httpx.Response:
    return await phone.client.post(
        "/api/v1/callbacks", json=body, headers={"Authorization": f"Bearer {token}"}
    )


async def test_the_callback_api_publishes_a_callback_contact_once(phone: Phone) -> None:
    body = {
        "phone": "0612345678",
        "subject": "parkeren",
        "preferred_from": "2026-03-03T09:00:00+01:00",
        "preferred_until": "2026-03-03T12:00:00+01:00",
        "request_id": "web-42",
    }
    first = await callback(phone, body)
    assert first.status_code == 202, first.text
    again = await callback(phone, {**body, "phone": "+31 6 1234 5678"})
    assert again.json() == first.json()
    contacts = await phone.contacts(2, settle=0.5)
    assert {c.id for c in contacts} == {contact_id("phone", "terugbelverzoek", "callback:web-42")}
    contact = contacts[0]
    assert contact.party.phone == "+31612345678"
    assert contact.channel_data == {
        "callback": True,
        "requested_via": "api",
        "preferred_from": "2026-03-03T08:00:00+00:00",
        "preferred_until": "2026-03-03T11:00:00+00:00",
    }


BAD_CALLBACKS: list[tuple[dict[str, Any], str | None]] = [
    ({"subject": "ufo"}, "subject"),
    ({"phone": "14 020"}, "phone"),
    ({"phone": "hello"}, "phone"),
    ({"preferred_until": "2026-03-03T08:00:00+01:00"}, None),
    ({"unexpected": 1}, "unexpected"),
]


async def test_a_bad_callback_request_gets_422_naming_the_field(phone: Phone) -> None:
    for change, field_name in BAD_CALLBACKS:
        body = {
            "phone": "0612345678",
            "subject": "parkeren",
            "preferred_from": "2026-03-03T09:00:00+01:00",
            **change,
        }
        response = await callback(phone, body)
        assert response.status_code == 422, change
        if field_name is not None:
            assert response.json()["detail"][0]["loc"][-1] == field_name


async def test_the_callback_api_needs_its_token(phone: Phone) -> None:
    body = {"phone": "0612345678", "subject": "parkeren"}
    assert (await callback(phone, body, token="wrong")).status_code == 401
    unauthenticated = await phone.client.post("/api/v1/callbacks", json=body)
    assert unauthenticated.status_code == 401


def random_value(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            rng.randint(-(10**12), 10**12),
            rng.random(),
            True,
            "",
            "x" * rng.randint(0, 3000),
            "".join(rng.choice("0123456789 +-()abc\u00e9\x00") for _ in range(rng.randint(0, 20))),
            rng.choice(["newCall", "answer", "hangup", "in", "out", "noAnswer", "14020"]),
            [rng.choice(["Anna", 1, None])],
            {"nested": [1, 2]},
        ]
    )


def mutated(rng: random.Random, base: dict[str, Any], extra: str) -> dict[str, Any]:
    """`base` with up to two fields changed to random values, dropped, or one added."""
    body = dict(base)
    for name in rng.sample([*base, extra], rng.randint(0, 2)):
        if rng.random() < 0.3:
            body.pop(name, None)
        else:
            body[name] = random_value(rng)
    return body


async def test_random_requests_get_clear_answers_and_never_a_5xx(phone: Phone) -> None:
    rng = random.Random(4)  # a fixed seed: the same requests on every run
    cti_base = {
        "event": "newCall",
        "callId": "fuzz",
        "from": CALLER,
        "to": "14020",
        "direction": "in",
        "user": ["Anna"],
        "queue": "1",
    }
    callback_base = {"phone": CALLER, "subject": "parkeren", "request_id": "fuzz"}
    seen: set[int] = set()
    for n in range(150):
        cti = mutated(rng, {**cti_base, "callId": f"fuzz-{n}"}, "cause")
        answer = await phone.client.post(f"/api/v1/cti/{CTI_TOKEN}", json=cti)
        assert answer.status_code in (200, 422), (cti, answer.text)
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        kind = rng.choice(["application/json", "application/x-www-form-urlencoded", "text/x"])
        answer = await phone.client.post(
            f"/api/v1/cti/{CTI_TOKEN}", content=raw, headers={"content-type": kind}
        )
        assert answer.status_code in (200, 422), answer.text
        body = mutated(rng, {**callback_base, "request_id": f"fuzz-{n}"}, "preferred_from")
        answer = await callback(phone, body)
        assert answer.status_code in (202, 422), (body, answer.text)
        seen.add(answer.status_code)
    assert seen == {202, 422}, "the requests should be both accepted and refused"


async def test_the_phone_adapter_keeps_the_contact_contract(
    phone: Phone, contract_kit: Callable[[str], Awaitable[ContractKit]]
) -> None:
    kit = await contract_kit("phone")

    async def feed(events: list[dict[str, Any]]) -> None:
        for event in events:
            response = await phone.cti(**event)
            if 400 <= response.status_code < 500:
                raise InputRefused(response.text)
            response.raise_for_status()

    def missed(call_id: str) -> list[dict[str, Any]]:
        return [
            {"event": "newCall", "call_id": call_id, "queue": "2"},
            {"event": "hangup", "call_id": call_id, "cause": "noAnswer"},
        ]

    valid = [
        Sample("missed call", missed("kit-1"), ("12345678",)),
        Sample("another missed call", missed("kit-2"), ("12345678",)),
    ]
    invalid = [Sample("unknown event", [{"event": "ringing", "call_id": "kit-3"}])]
    with captured_logs("phone") as logs:
        contacts = await kit.check_inbound(feed, valid, invalid)
    assert all(c.channel_data["callback"] is True for c in contacts)
    kit.check_logs(logs.getvalue(), valid)
