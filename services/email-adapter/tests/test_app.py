"""The e-mail adapter against real Dovecot, RabbitMQ and an SMTP server, as its own process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aio_pika
import httpx
import pytest
from fastapi import FastAPI, Header

from kanaal.common.contract import (
    ContactMessage,
    DeliveryReport,
    DeliveryStatus,
    RejectedInput,
)
from kanaal.common.contract_kit import ContractKit, Sample
from kanaal.common.testing import serve_app
from kanaal.common.topology import DOSSIER_EVENTS, DOSSIER_INTAKE, rejected_queue

from .conftest import (
    MAILBOX,
    EmailRig,
    MailFactory,
    outbound,
    publish_outbound,
    readiness,
    wait_until,
)

PDF = b"%PDF-1.4\n" + b"x" * 5000


def with_attachment(make_mail: MailFactory) -> bytes:
    import base64

    body = (
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nZie bijlage.\r\n"
        "--b\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="brief.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(PDF).decode().replace("\n", "\r\n")
        + "--b--"
    )
    return make_mail("att", body=body).replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"',
        1,
    )


async def test_mail_becomes_a_contact_and_moves_to_processed_after_the_confirm(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    rig.append(make_mail(1), make_mail(2, subject="Re: vraag [K-2026-000042]"))
    rig.append(with_attachment(make_mail))
    service = rig.start()

    messages = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 3, timeout=20)
    contacts = {ContactMessage.model_validate_json(m.body).source_ref: m for m in messages}
    assert set(contacts) == {"m1@example.org", "m2@example.org", "matt@example.org"}
    first = ContactMessage.model_validate_json(contacts["m1@example.org"].body)
    assert first.channel == "email"
    assert first.entry_point == MAILBOX
    assert (first.subject, first.location) == ("parkeren", "centrum")
    assert first.party.email == "fenna.zwartveld@example.org"
    assert contacts["m1@example.org"].message_id == str(first.id)
    assert contacts["m1@example.org"].delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    reply = ContactMessage.model_validate_json(contacts["m2@example.org"].body)
    assert reply.case_ref == "K-2026-000042"

    attached = ContactMessage.model_validate_json(contacts["matt@example.org"].body)
    [attachment] = attached.attachments
    assert (attachment.filename, attachment.size) == ("brief.pdf", len(PDF))
    stored = Path(attachment.uri.removeprefix("file://"))
    assert await asyncio.to_thread(stored.read_bytes) == PDF

    await wait_until(lambda: len(rig.folder("Verwerkt")) == 3)
    assert rig.folder("INBOX") == []
    assert readiness(service.url) == 200

    # New mail while the adapter idles is picked up without a restart.
    rig.append(make_mail(4))
    [later] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20)
    assert ContactMessage.model_validate_json(later.body).source_ref == "m4@example.org"

    assert service.stop() == 0
    log = service.log()
    for secret in ("Fenna", "Zwartveld", "fenna.zwartveld", "Zuiderkade", "parkeervergunning"):
        assert secret not in log, f"the adapter logged personal data ({secret!r})"


async def test_unparsable_and_oversized_mail_go_to_the_error_folder_with_a_reason(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    rig.append(b"\x00\x01\x02 no headers at all", with_attachment(make_mail), make_mail(3))
    rig.start(KANAAL_EMAIL_MAX_ATTACHMENT_BYTES="1000")

    dead = await rig.vhost.wait_for(rejected_queue("email").name, 2, timeout=20)
    reasons = sorted(RejectedInput.model_validate_json(m.body).reason for m in dead)
    assert "the mail has no headers" in reasons
    assert any("at most 1000 bytes" in r for r in reasons)
    for message in dead:
        rejected = RejectedInput.model_validate_json(message.body)
        assert rejected.entry_point == MAILBOX
        assert rejected.kept_at is not None
        assert "Fouten" in rejected.kept_at
    [good] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20)
    assert ContactMessage.model_validate_json(good.body).source_ref == "m3@example.org"
    await wait_until(lambda: len(rig.folder("Fouten")) == 2 and len(rig.folder("Verwerkt")) == 1)
    assert rig.folder("INBOX") == []


async def test_a_reply_is_sent_once_threaded_with_the_case_ref_even_when_delivered_twice(
    rig: EmailRig,
) -> None:
    rig.start()
    reply = outbound()
    await publish_outbound(rig, reply, times=2)

    reports = await rig.vhost.wait_for(DOSSIER_EVENTS.name, 2, timeout=20)
    assert {DeliveryReport.model_validate_json(r.body).status for r in reports} == {
        DeliveryStatus.SENT
    }
    [sent] = rig.smtp.wait_for(1)
    message = sent.message
    assert sent.rcpt_tos == ["fenna@example.org"]
    assert message["From"].addresses[0].addr_spec == MAILBOX
    assert message["Subject"] == "Re: Mijn parkeervergunning [K-2026-000042]"
    assert message["In-Reply-To"] == "<m1@example.org>"
    assert message["References"] == "<m1@example.org>"
    found = re.search(rb"Message-ID:\s*<([^>]+)>", sent.data)
    assert found is not None
    message_id = found.group(1).decode()
    assert message_id.startswith("kanaal.K-2026-000042.")
    assert {DeliveryReport.model_validate_json(r.body).channel_ref for r in reports} == {message_id}
    assert message.get_content().strip() == "Uw vergunning is verlengd."
    assert len(rig.smtp.received) == 1


async def test_a_refused_recipient_is_reported_as_failed_and_a_temporary_failure_is_retried(
    rig: EmailRig,
) -> None:
    rig.smtp.refuse.add("weg@example.org")
    rig.smtp.fail_temporarily = 1
    rig.start()
    await publish_outbound(rig, outbound(email="weg@example.org"))
    [failed] = await rig.vhost.wait_for(DOSSIER_EVENTS.name, 1, timeout=20)
    report = DeliveryReport.model_validate_json(failed.body)
    assert report.status is DeliveryStatus.FAILED
    assert report.reason is not None
    assert "550" in report.reason

    retried = outbound(text="Tweede poging")
    await publish_outbound(rig, retried)
    [sent] = await rig.vhost.wait_for(DOSSIER_EVENTS.name, 1, timeout=20)
    assert DeliveryReport.model_validate_json(sent.body).status is DeliveryStatus.SENT
    assert len(rig.smtp.wait_for(1)) == 1
    assert rig.smtp.fail_temporarily == 0


async def test_readiness_is_false_while_the_mailbox_is_unreachable_and_intake_resumes(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    service = rig.start()
    rig.dovecot.stop()
    await wait_until(lambda: readiness(service.url) == 503)
    async with httpx.AsyncClient(timeout=3) as client:
        health = await client.get(f"{service.url}/healthz")
    assert health.json()["status"] == "ok"

    rig.dovecot.start()
    await wait_until(lambda: readiness(service.url) == 200)
    rig.append(make_mail(9))
    [contact] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20)
    assert ContactMessage.model_validate_json(contact.body).source_ref == "m9@example.org"


async def test_normal_mail_is_acknowledged_and_automatic_mail_is_not(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    rig.mailbox["acknowledgement"] = {"enabled": True, "subject": "Ontvangstbevestiging"}
    rig.append(
        make_mail(1, extra="Auto-Submitted: auto-replied\r\n"),
        make_mail(2, extra="Precedence: bulk\r\nList-Unsubscribe: <mailto:x@example.org>\r\n"),
        make_mail(3, subject="Re: [K-2026-000042]"),
    )
    rig.start()
    await rig.vhost.wait_for(DOSSIER_INTAKE.name, 3, timeout=20)
    [ack] = rig.smtp.wait_for(1)
    assert ack.message["In-Reply-To"] == "<m3@example.org>"
    # No dossier to ask: no case reference, and never the one the sender typed.
    assert ack.message["Subject"] == "Ontvangstbevestiging"
    assert ack.message["Auto-Submitted"] == "auto-replied"
    await wait_until(lambda: len(rig.folder("Verwerkt")) == 3)
    assert len(rig.smtp.received) == 1


async def test_the_acknowledgement_names_the_case_the_dossier_gave_not_the_typed_one(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    # The dossier did not follow the [K-…] typed in the subject (someone else's case):
    # the acknowledgement names the case the mail really landed in.
    dossier = FastAPI()

    @dossier.get("/api/v1/contacts/{contact_id}")
    async def contact(contact_id: str, authorization: str = Header()) -> dict[str, str]:
        assert authorization == "Bearer dossier-token"
        return {"contact_id": contact_id, "case_ref": "K-2026-000099"}

    rig.mailbox["acknowledgement"] = {"enabled": True, "subject": "Ontvangstbevestiging"}
    rig.append(make_mail(3, subject="Vraag over [K-2026-000042]"))
    async with serve_app(dossier) as url:
        rig.start(KANAAL_DOSSIER_URL=url, KANAAL_DOSSIER_API_TOKEN="dossier-token")
        [ack] = await asyncio.to_thread(rig.smtp.wait_for, 1)
    assert ack.message["Subject"] == "Ontvangstbevestiging [K-2026-000099]"


@pytest.mark.parametrize("security", ["starttls"])
async def test_required_starttls_never_falls_back_to_plain_text(
    rig: EmailRig, security: str
) -> None:
    from kanaal.email.compose import compose_reply
    from kanaal.email.config import MailboxConfig
    from kanaal.email.smtp import TemporaryFailure, send_mail

    mailbox = MailboxConfig.model_validate(
        {**rig.mailbox, "smtp": {**rig.mailbox["smtp"], "security": security}}
    )
    with pytest.raises(TemporaryFailure):
        await send_mail(compose_reply(outbound(), mailbox), mailbox, None, timeout=5)
    assert rig.smtp.received == []


async def test_the_email_adapter_keeps_the_contact_contract(
    rig: EmailRig,
    make_mail: MailFactory,
    contract_kit: Callable[[str], Awaitable[ContractKit]],
) -> None:
    kit = await contract_kit("email")
    service = rig.start()

    async def feed(raw: bytes) -> None:
        await asyncio.to_thread(rig.append, raw)

    valid = [
        Sample("a mail", make_mail("kit-1"), ("Zwartveld", "fenna.zwartveld", "Zuiderkade")),
        Sample("another mail", make_mail("kit-2", body="Wanneer wordt het oud papier opgehaald?")),
    ]
    invalid = [Sample("no headers at all", b"\x00\x01 not a mail")]
    contacts = await kit.check_inbound(feed, valid, invalid)
    assert {c.entry_point for c in contacts} == {MAILBOX}
    [report] = await kit.check_outbound([outbound()])
    assert report.channel_ref
    assert service.stop() == 0
    kit.check_logs(service.log(), valid)
