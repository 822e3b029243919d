"""A missed call and a counter visit travel the whole way: adapter → dossier → router → work queue.

The services run as their own processes, as `kanaal up` runs them, against a throw-away
vhost on the real RabbitMQ, with the repo's channels.yaml and a routing.yaml of the test.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kanaal.common.contract import WorkItem, contact_id
from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service

REPO = Path(__file__).resolve().parents[2]
CTI_TOKEN = "cti-" + uuid.uuid4().hex
KIOSK_TOKEN = "kiosk-" + uuid.uuid4().hex
DESK_TOKEN = "desk-" + uuid.uuid4().hex
DOSSIER_TOKEN = "dossier-" + uuid.uuid4().hex
CALLER = "06 24681357"
SECRETS_IN_LOGS = ("24681357", "+31624681357", "Gerrit Hofstede", "Hofstede")


def config_dir(tmp_path: Path, strategy: str, queues: list[str]) -> Path:
    target = tmp_path / "config"
    shutil.copytree(REPO / "deploy/config", target)
    channels = yaml.safe_load((target / "channels.yaml").read_text(encoding="utf-8"))
    # The test runs at any hour: this office is open whenever it does.
    channels["channels"]["counter"]["locations"]["stadhuis"]["opening_hours"] = None
    (target / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    routing = {"strategy": strategy, "queues": queues, "rules": [], "default": "work.central"}
    (target / "routing.yaml").write_text(yaml.safe_dump(routing), encoding="utf-8")
    return target


def run(
    names: tuple[str, ...], vhost: RabbitVhost, tmp_path: Path, config: Path
) -> Iterator[dict[str, RunningService]]:
    ports = {name: free_port() for name in names}
    env = {
        "KANAAL_AMQP_URL": vhost.url,
        "KANAAL_CONFIG_DIR": str(config),
        "KANAAL_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'dossier.db'}",
        "KANAAL_PHONE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}",
        "KANAAL_COUNTER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'counter.db'}",
        "KANAAL_PHONE_HANGUP_SETTLE": "0",
        "KANAAL_CTI_TOKEN": CTI_TOKEN,
        "KANAAL_KIOSK_STADHUIS_TOKEN": KIOSK_TOKEN,
        "KANAAL_DESK_STADHUIS_TOKEN": DESK_TOKEN,
        "KANAAL_DOSSIER_API_TOKEN": DOSSIER_TOKEN,
        "KANAAL_RETRY_DELAY": "0.2",
        "KANAAL_LOG_LEVEL": "DEBUG",
        **{f"KANAAL_{name.upper()}_PORT": str(port) for name, port in ports.items()},
    }
    started: list[RunningService] = []
    try:
        for name in names:
            started.append(start_service(name, f"kanaal.{name}", ports[name], env, tmp_path))
        yield {s.name: s for s in started}
    finally:
        for service in started:
            service.stop()


def assert_no_personal_data_logged(services: dict[str, RunningService]) -> None:
    for service in services.values():
        assert service.stop() == 0, f"{service.name} did not stop cleanly"
        log = service.log()
        for secret in SECRETS_IN_LOGS:
            assert secret not in log, f"{service.name} logged personal data ({secret!r})"


@pytest.fixture
def phone_suite(rabbit_vhost: RabbitVhost, tmp_path: Path) -> Iterator[dict[str, RunningService]]:
    config = config_dir(tmp_path, "subject", ["work.subject.parkeren"])
    yield from run(("dossier", "router", "phone"), rabbit_vhost, tmp_path, config)


async def test_a_missed_call_and_an_answered_call_each_become_one_work_item(
    phone_suite: dict[str, RunningService], rabbit_vhost: RabbitVhost
) -> None:
    url = f"{phone_suite['phone'].url}/api/v1/cti/{CTI_TOKEN}"
    call = {"callId": "e2e-call-1", "from": CALLER, "to": "14 020", "direction": "in"}
    events = [
        {"event": "newCall", "queue": "1", "user[]": ["Anna", "Bram"], **call},
        {"event": "hangup", "cause": "noAnswer", **call},
        {"event": "hangup", "cause": "noAnswer", **call},  # the exchange retried
    ]
    async with httpx.AsyncClient(timeout=10) as client:
        for event in events:
            answer = await client.post(url, data=event)
            assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "duplicate", "call": "published"}

    # An answered call whose events arrive out of order and twice.
    answered = {"callId": "e2e-call-2", "from": CALLER, "to": "14020", "direction": "in"}
    async with httpx.AsyncClient(timeout=10) as client:
        for event in (
            {"event": "answer", "user": "Anna", "queue": "1", **answered},
            {"event": "newCall", "queue": "1", **answered},
            {"event": "answer", "user": "Anna", "queue": "1", **answered},
            {"event": "hangup", "cause": "normalClearing", **answered},
        ):
            assert (await client.post(url, json=event)).status_code == 200

    items = await rabbit_vhost.wait_for("work.subject.parkeren", 2, timeout=20, settle=2)
    assert len(items) == 2, "one call is one work item, however often its events came"
    by_contact = {WorkItem.model_validate_json(m.body).contact_id: m for m in items}
    assert set(by_contact) == {
        contact_id("phone", "14020", "e2e-call-1"),
        contact_id("phone", "14020", "e2e-call-2"),
    }
    item = WorkItem.model_validate_json(by_contact[contact_id("phone", "14020", "e2e-call-1")].body)
    assert (item.channel, item.subject) == ("phone", "parkeren")
    assert_no_personal_data_logged(phone_suite)


@pytest.fixture
def counter_suite(rabbit_vhost: RabbitVhost, tmp_path: Path) -> Iterator[dict[str, RunningService]]:
    router_rules = pytest.importorskip("kanaal.router.rules")
    config = config_dir(tmp_path, "location", ["work.location.stadhuis"])
    try:
        router_rules.RoutingRules.load(config / "routing.yaml")
    except Exception as exc:
        pytest.skip(f"this router has no location strategy yet: {exc}")
    yield from run(("dossier", "router", "counter"), rabbit_vhost, tmp_path, config)


async def test_a_kiosk_check_in_lands_in_its_locations_work_queue(
    counter_suite: dict[str, RunningService], rabbit_vhost: RabbitVhost
) -> None:
    body = {
        "location": "stadhuis",
        "subject": "paspoort",
        "ticket": "E2E1",
        "name": "Gerrit Hofstede",
        "phone": CALLER,
    }
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.post(
            f"{counter_suite['counter'].url}/api/v1/visits",
            json=body,
            headers={"Authorization": f"Bearer {KIOSK_TOKEN}"},
        )
    assert answer.status_code == 201, answer.text
    items = await rabbit_vhost.wait_for("work.location.stadhuis", 1, timeout=20)
    item = WorkItem.model_validate_json(items[0].body)
    assert str(item.contact_id) == answer.json()["contact_id"]
    assert item.location == "stadhuis"

    # The desk calls the visitor (sent twice, as a desk system may) and serves them:
    # each desk event is one line on the case's timeline in the dossier.
    visit = answer.json()["visit_id"]
    desk = {"Authorization": f"Bearer {DESK_TOKEN}"}
    events = [
        {"event": "called", "desk": "2", "event_id": "e2e-called"},
        {"event": "called", "desk": "2", "event_id": "e2e-called"},
        {"event": "served", "outcome": "afgehandeld", "event_id": "e2e-served"},
    ]
    async with httpx.AsyncClient(timeout=10) as client:
        for event in events:
            moved = await client.post(
                f"{counter_suite['counter'].url}/api/v1/visits/{visit}/events",
                json=event,
                headers=desk,
            )
            assert moved.status_code == 200, moved.text
        case_url = f"{counter_suite['dossier'].url}/api/v1/cases/{item.case_ref}"
        lines: list[str] = []
        for _ in range(100):
            case = await client.get(case_url, headers={"Authorization": f"Bearer {DOSSIER_TOKEN}"})
            assert case.status_code == 200, case.text
            lines = [
                e["data"]["text"] for e in case.json()["timeline"] if e["kind"] == "contact.updated"
            ]
            if len(lines) >= 2:
                break
            await asyncio.sleep(0.1)
    # (in either order: an update that overtakes its contact waits for it and comes later)
    called, served = sorted(lines, reverse=True)
    assert called.startswith("opgeroepen, balie 2, wachttijd")
    assert served.startswith("geholpen, balie 2, duur")
    assert served.endswith("resultaat afgehandeld")
    assert_no_personal_data_logged(counter_suite)
