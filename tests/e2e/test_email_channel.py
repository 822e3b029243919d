"""E-mail end to end: Dovecot → email adapter → dossier → router → work item, an answer out
through SMTP threaded to the case, the customer's reply back on the same case; a crash
of the adapter between publish and move that neither loses nor doubles a mail; and the
web channel's answer notice, mailed by the e-mail adapter.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from kanaal.common.contract import ContactMessage, Direction, WorkItem
from kanaal.common.messaging import contract_message
from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service
from kanaal.common.testing_mail import DovecotServer, SmtpSink
from kanaal.common.topology import OUTBOUND, Event

from .conftest import (
    AGENT,
    AGENT_TOKEN,
    ANSWER,
    REPO,
    SERVICE_TOKEN,
    RunServices,
    claim_and_answer,
    wait_until,
)

MAILBOX = "parkeren@gemeente.example"
WORK_QUEUE = "work.subject.parkeren"


def email_config(root: Path, dovecot: DovecotServer, smtp: SmtpSink) -> Path:
    config = root / "email-config"
    config.mkdir(exist_ok=True)
    for name in ("routing.yaml", "agents.yaml"):
        shutil.copy(REPO / "deploy" / "config" / name, config / name)
    channels = yaml.safe_load((REPO / "deploy" / "config" / "channels.yaml").read_text())
    channels["channels"]["email"]["mailboxes"] = [
        {
            "address": MAILBOX,
            "imap": {
                "host": dovecot.host,
                "port": dovecot.port,
                "user": MAILBOX,
                "password_env": "KANAAL_E2E_IMAP_PASSWORD",
                "tls": False,
            },
            "smtp": {"host": smtp.host, "port": smtp.port, "security": "none"},
            "subject": "parkeren",
            "acknowledgement": {"enabled": True},
        }
    ]
    (config / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    return config


STARTED: list[RunningService] = []


@pytest.fixture(autouse=True)
def stop_email_adapters() -> Iterator[None]:
    """Every adapter a test started is stopped, whatever the test's outcome."""
    yield
    while STARTED:
        STARTED.pop().stop()


def start_email(
    vhost: RabbitVhost, config: Path, root: Path, dossier: RunningService, **extra: str
) -> RunningService:
    port = free_port()
    env = {
        "KANAAL_AMQP_URL": vhost.url,
        "KANAAL_CONFIG_DIR": str(config),
        "KANAAL_EMAIL_PORT": str(port),
        "KANAAL_EMAIL_ATTACHMENT_DIR": str(root / "attachments"),
        "KANAAL_EMAIL_STATE_DIR": str(root / "email-state"),
        "KANAAL_EMAIL_RECONNECT_MAX": "0.5",
        "KANAAL_DOSSIER_URL": dossier.url,
        "KANAAL_DOSSIER_API_TOKEN": SERVICE_TOKEN,
        "KANAAL_E2E_IMAP_PASSWORD": "geheim",
        "KANAAL_RETRY_DELAY": "0.2",
        **extra,
    }
    service = start_service("email", "kanaal.email", port, env, root)
    STARTED.append(service)
    return service


def mail(number: int, *, subject: str = "Parkeervergunning verlopen", extra: str = "") -> bytes:
    return (
        f"From: Joost Achterberg <joost.achterberg@example.org>\r\nTo: {MAILBOX}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <e2e-{number}@example.org>\r\n"
        f"Date: Mon, 16 Nov 2026 10:00:00 +0100\r\n{extra}"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\nMijn vergunning voor de Havenstraat.\r\n"
    ).encode()


def crash_email(
    vhost: RabbitVhost, config: Path, root: Path, services: dict[str, RunningService]
) -> int:
    """Start the adapter with the fault injection on; return its exit code once it died."""
    try:
        service = start_email(
            vhost, config, root, services["dossier"], KANAAL_EMAIL_CRASH_AFTER_PUBLISH="true"
        )
    except RuntimeError as exc:  # it died before /readyz answered: the usual case
        found = re.search(r"exited with (\d+)", str(exc))
        return int(found.group(1)) if found else -1
    try:
        return service.process.wait(30)
    finally:
        service.stop()


async def dossier_get(dossier: RunningService, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(
            f"{dossier.url}{path}", headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}
        )


async def wait_for_folder(dovecot: DovecotServer, folder: str, count: int) -> None:
    for _ in range(200):
        if len(await asyncio.to_thread(dovecot.messages, MAILBOX, folder)) >= count:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{folder} did not reach {count} mails")


async def test_a_mail_is_registered_routed_answered_by_smtp_and_the_reply_finds_its_case(
    run_services: RunServices,
    rabbit_vhost: RabbitVhost,
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    dovecot.add_user(MAILBOX, "geheim")
    services = run_services("dossier", "router")
    email = start_email(
        rabbit_vhost, email_config(tmp_path, dovecot, smtp_sink), tmp_path, services["dossier"]
    )
    dovecot.append(MAILBOX, mail(1))

    [routed] = await rabbit_vhost.wait_for(WORK_QUEUE, 1, timeout=30)
    item = WorkItem.model_validate_json(routed.body)
    assert item.channel == "email"
    stored = (await dossier_get(services["dossier"], f"/api/v1/contacts/{item.contact_id}")).json()
    case_ref = stored["case_ref"]
    assert case_ref == item.case_ref

    # The acknowledgement names the case the dossier opened.
    [ack] = await asyncio.to_thread(smtp_sink.wait_for, 1, 30)
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert f"[{case_ref}]" in ack.message["Subject"]

    # An agent's answer, as the dossier puts it on kanaal.outbound.
    answer = ContactMessage.new(
        channel="email",
        direction=Direction.OUTBOUND,
        entry_point=MAILBOX,
        source_ref=f"answer-{item.contact_id}",
        party={"email": "joost.achterberg@example.org"},
        text="Uw vergunning is verlengd.",
        case_ref=case_ref,
        in_reply_to="e2e-1@example.org",
    )
    connection = await rabbit_vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        outbound = await channel.get_exchange(OUTBOUND.name)
        await outbound.publish(
            contract_message(answer, message_type=Event.CONTACT_OUTBOUND, message_id=answer.id),
            routing_key="email",
        )
    mails = await asyncio.to_thread(smtp_sink.wait_for, 2, 30)
    [sent] = [m for m in mails if m.message["Auto-Submitted"] is None]
    assert f"[{case_ref}]" in sent.message["Subject"]
    assert re.search(rb"In-Reply-To:\s*<e2e-1@example.org>", sent.data)
    ours = re.search(rb"Message-ID:\s*<([^>]+)>", sent.data)
    assert ours is not None

    # The customer answers the answer; the mail program dropped the case from the subject.
    reply = mail(2, subject="Re: antwoord", extra=f"In-Reply-To: <{ours.group(1).decode()}>\r\n")
    dovecot.append(MAILBOX, reply)
    [second] = await rabbit_vhost.wait_for(WORK_QUEUE, 1, timeout=30)
    assert WorkItem.model_validate_json(second.body).case_ref == case_ref
    case = (await dossier_get(services["dossier"], f"/api/v1/cases/{case_ref}")).json()
    inbound = [c for c in case["contacts"] if c.get("direction", "inbound") == "inbound"]
    assert len(inbound) == 2

    assert email.stop() == 0
    for secret in ("Joost", "Achterberg", "joost.achterberg", "Havenstraat"):
        assert secret not in email.log(), f"the e-mail adapter logged {secret!r}"


async def test_a_crash_between_publish_and_move_registers_every_mail_exactly_once(
    run_services: RunServices,
    rabbit_vhost: RabbitVhost,
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    dovecot.add_user(MAILBOX, "geheim")
    services = run_services("dossier", "router")
    config = email_config(tmp_path, dovecot, smtp_sink)
    dovecot.append(MAILBOX, *(mail(n) for n in range(5)))

    # The adapter publishes the batch, then dies before the IMAP MOVE.
    exit_code = await asyncio.to_thread(crash_email, rabbit_vhost, config, tmp_path, services)
    assert exit_code == 70
    assert len(dovecot.messages(MAILBOX, "INBOX")) == 5, "nothing may move before the confirm"
    assert dovecot.messages(MAILBOX, "Verwerkt") == []

    start_email(rabbit_vhost, config, tmp_path, services["dossier"])
    await wait_for_folder(dovecot, "Verwerkt", 5)
    assert dovecot.messages(MAILBOX, "INBOX") == []

    items = await rabbit_vhost.wait_for(WORK_QUEUE, 5, timeout=30, settle=2)
    contact_ids = [WorkItem.model_validate_json(m.body).contact_id for m in items]
    assert len(contact_ids) == 5, "each mail is routed exactly once"
    assert len(set(contact_ids)) == 5
    for contact_id in contact_ids:
        stored = await dossier_get(services["dossier"], f"/api/v1/contacts/{contact_id}")
        assert stored.status_code == 200


async def test_a_web_answer_is_announced_by_mail_with_its_link_and_without_its_text(
    run_services: RunServices,
    rabbit_vhost: RabbitVhost,
    dovecot: DovecotServer,
    smtp_sink: SmtpSink,
    tmp_path: Path,
) -> None:
    dovecot.add_user(MAILBOX, "geheim")
    config = email_config(tmp_path, dovecot, smtp_sink)
    channels = yaml.safe_load((config / "channels.yaml").read_text())
    channels["channels"]["web"]["notify"] = {
        "mailbox": MAILBOX,
        "text": "Er staat een antwoord voor u klaar. U leest het op: {status_url}",
    }
    (config / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    public = "https://loket.gemeente.example"
    services = run_services(
        "dossier",
        "router",
        "web",
        KANAAL_CONFIG_DIR=str(config),
        KANAAL_AGENT_ANNA_TOKEN=AGENT_TOKEN,
        KANAAL_WEB_PUBLIC_URL=public,
    )
    email = start_email(rabbit_vhost, config, tmp_path, services["dossier"])
    web, dossier = services["web"].url, services["dossier"].url
    async with httpx.AsyncClient(timeout=10) as client:
        accepted = await client.post(
            f"{web}/api/v1/messages",
            json={
                "name": "Femke Zwart",
                "email": "femke.zwart@example.org",
                "subject": "parkeren",
                "text": "Mijn vergunning voor de Lindengracht is niet verlengd.",
            },
        )
        assert accepted.status_code == 202, accepted.text
        status_page = accepted.json()["status_page_url"]
        [routed] = await rabbit_vhost.wait_for(WORK_QUEUE, 1, timeout=30)
        item = WorkItem.model_validate_json(routed.body)
        await claim_and_answer(client, dossier, item, AGENT)

        # One mail, to the citizen, from the mailbox: the status page's public link, and
        # not a word of the answer (mail is not the channel the citizen chose).
        [notice] = await asyncio.to_thread(smtp_sink.wait_for, 1, 30)
        assert notice.rcpt_tos == ["femke.zwart@example.org"]
        assert MAILBOX in str(notice.message["From"])
        body = notice.message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        assert f"{public}{status_page}" in text
        assert "hersteld" not in text

        # The link opens the page with the answer.
        page = await client.get(f"{web}{status_page}")
        assert ANSWER.split("<")[0].strip() in page.text

        # The case's timeline shows the notice as sent by the e-mail channel.
        async def notice_recorded() -> bool:
            case = await dossier_get(services["dossier"], f"/api/v1/cases/{item.case_ref}")
            return any(
                entry["kind"] == "contact.sent" and entry["actor"] == "channel:email"
                for entry in case.json()["timeline"]
            )

        await wait_until(notice_recorded)

    assert email.stop() == 0
    for name, service in {**services, "email": email}.items():
        for secret in ("Femke", "Zwart", "femke.zwart", "Lindengracht"):
            assert secret not in service.log(), f"{name} logged {secret!r}"
