"""The adapter against mail servers set up as organisations run them, not as the other tests do.

IMAPS with a certificate from the organisation's own CA (trusted only through the
mailbox's `ca_file`), an IMAP server without MOVE or without IDLE, and SMTP with STARTTLS
or implicit TLS (port 465) to a server of an internal CA.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from kanaal.common.config import ConfigError
from kanaal.common.contract import ContactMessage, DeliveryReport, DeliveryStatus
from kanaal.common.testing_mail import ServerTls
from kanaal.common.topology import DOSSIER_EVENTS, DOSSIER_INTAKE
from kanaal.email.app import EmailSettings, load_channel
from kanaal.email.compose import compose_reply
from kanaal.email.config import MailboxConfig
from kanaal.email.smtp import TemporaryFailure, send_mail

from .conftest import (
    MAILBOX,
    PASSWORD_ENV,
    EmailRig,
    MailFactory,
    outbound,
    publish_outbound,
    readiness,
    wait_until,
)


def source_refs(messages: list[bytes]) -> list[str]:
    """The Message-IDs of raw mails, sorted."""
    found = [re.search(rb"Message-ID: <([^>]+)>", m) for m in messages]
    return sorted(m.group(1).decode() for m in found if m)


def tls_logins(log: str) -> list[str]:
    """Dovecot's log lines for logins over TLS (the test helpers log in over plain IMAP)."""
    return [line for line in log.splitlines() if "Login:" in line and ", TLS" in line]


@pytest.mark.dovecot(imaps=True)
async def test_mail_is_fetched_over_imaps_when_the_mailbox_trusts_the_organisations_ca(
    rig: EmailRig, make_mail: MailFactory, server_tls: ServerTls
) -> None:
    rig.use_imaps(server_tls.ca_file)
    rig.append(make_mail(1))
    service = rig.start()

    [message] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20)
    contact = ContactMessage.model_validate_json(message.body)
    assert (contact.source_ref, contact.entry_point) == ("m1@example.org", MAILBOX)
    await wait_until(lambda: len(rig.folder("Verwerkt")) == 1)
    assert rig.folder("INBOX") == []
    assert readiness(service.url) == 200
    # The adapter logged in over the TLS port, not the plain one the helpers use.
    assert len(tls_logins(rig.dovecot.log())) >= 1
    # After LOGIN it asked what the server offers this user (only it sends CAPABILITY
    # once logged in here: the helpers never do), so MOVE and IDLE follow that answer.
    await wait_until(lambda: "CAPABILITY" in rig.dovecot.commands())


@pytest.mark.dovecot(imaps=True)
async def test_an_untrusted_imaps_certificate_is_refused_and_the_mail_stays_in_the_inbox(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    rig.use_imaps(None)  # the system's CAs: they never signed the throwaway CA's certificate
    rig.append(make_mail(1))
    service = rig.start(wait_ready=False)

    await wait_until(lambda: service.log().count("certificate is not trusted") >= 2)
    async with httpx.AsyncClient(timeout=3) as client:
        ready = await client.get(f"{service.url}/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"broker": True, "imap": False}
    assert await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=2) == []
    assert source_refs(rig.folder("INBOX")) == ["m1@example.org"]
    assert rig.folder("Verwerkt") == []
    # Refused at the handshake: the password never went to the server.
    assert tls_logins(rig.dovecot.log()) == []

    assert service.stop() == 0
    log = service.log()
    assert "imap.ca_file" in log, "the log should say how to trust an internal CA"
    for secret in (MAILBOX, "geheim", "fenna.zwartveld"):
        assert secret not in log


@pytest.mark.parametrize(
    "expunge",
    [
        pytest.param("UID EXPUNGE", marks=pytest.mark.dovecot(withhold=["MOVE"])),
        pytest.param("EXPUNGE", marks=pytest.mark.dovecot(withhold=["MOVE", "UIDPLUS"])),
    ],
)
async def test_without_move_mail_lands_in_processed_once_and_is_not_published_again(
    rig: EmailRig, make_mail: MailFactory, expunge: str
) -> None:
    with rig.dovecot.imap(MAILBOX) as client:
        _, data = client.capability()
    advertised = data[0].decode().split()
    assert "MOVE" not in advertised
    assert ("UIDPLUS" in advertised) == (expunge == "UID EXPUNGE")

    rig.append(make_mail(1), make_mail(2))
    service = rig.start(KANAAL_EMAIL_POLL_INTERVAL="1")
    first = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 2, timeout=20)
    refs = sorted(ContactMessage.model_validate_json(m.body).source_ref for m in first)
    assert refs == ["m1@example.org", "m2@example.org"]
    await wait_until(lambda: len(rig.folder("Verwerkt")) == 2)
    assert rig.folder("INBOX") == []

    # Polls every second from here on: the processed mail is never published again...
    assert await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=3) == []
    # ...and the next mail is the only one that is.
    rig.append(make_mail(3))
    later = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20, settle=2.5)
    assert [ContactMessage.model_validate_json(m.body).source_ref for m in later] == [
        "m3@example.org"
    ]
    await wait_until(lambda: len(rig.folder("Verwerkt")) == 3)
    assert source_refs(rig.folder("Verwerkt")) == [
        "m1@example.org",
        "m2@example.org",
        "m3@example.org",
    ]
    assert rig.folder("INBOX") == []
    assert "COPY, STORE, EXPUNGE" in service.log()


@pytest.mark.smtp_sink(starttls=True)
async def test_starttls_to_a_server_of_an_internal_ca_needs_the_mailbox_ca_file(
    rig: EmailRig, server_tls: ServerTls
) -> None:
    smtp = {**rig.mailbox["smtp"], "security": "starttls"}
    untrusting = MailboxConfig.model_validate({**rig.mailbox, "smtp": smtp})
    with pytest.raises(TemporaryFailure, match="certificate is not trusted"):
        await send_mail(compose_reply(outbound(), untrusting), untrusting, None, timeout=5)
    assert rig.smtp.received == []

    smtp["ca_file"] = str(server_tls.ca_file)
    trusting = MailboxConfig.model_validate({**rig.mailbox, "smtp": smtp})
    await send_mail(compose_reply(outbound(), trusting), trusting, None, timeout=5)
    [sent] = rig.smtp.wait_for(1)
    assert sent.rcpt_tos == ["fenna@example.org"]


@pytest.mark.dovecot(withhold=["IDLE"])
async def test_without_idle_the_mailbox_is_polled_and_new_mail_arrives_within_the_interval(
    rig: EmailRig, make_mail: MailFactory
) -> None:
    with rig.dovecot.imap(MAILBOX) as client:
        _, data = client.capability()
    assert "IDLE" not in data[0].decode().split()

    rig.append(make_mail(1))
    service = rig.start(KANAAL_EMAIL_POLL_INTERVAL="1")
    [first] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=20)
    assert ContactMessage.model_validate_json(first.body).source_ref == "m1@example.org"
    assert "polling every 1s (the server has no IDLE)" in service.log()

    # Mail that arrives while the adapter waits is found by the next poll (nothing else
    # would find it: the server sends no news)...
    for number in (2, 3):
        rig.append(make_mail(number))
        [message] = await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=15)
        assert (
            ContactMessage.model_validate_json(message.body).source_ref == f"m{number}@example.org"
        )
    # ...and later polls publish nothing again.
    assert await rig.vhost.wait_for(DOSSIER_INTAKE.name, 1, timeout=3) == []
    await wait_until(lambda: len(rig.folder("Verwerkt")) == 3)
    assert rig.folder("INBOX") == []

    searches = [c for c in rig.dovecot.commands() if c.startswith("UID SEARCH")]
    assert len(searches) >= 3, "one search per poll, about one a second"
    # Dovecot would take an IDLE it does not advertise: the adapter never tried one.
    assert not any(c.startswith("IDLE") for c in rig.dovecot.commands())
    assert service.stop() == 0
    assert MAILBOX not in service.log()


@pytest.mark.smtp_sink(tls=True)
async def test_an_answer_goes_out_over_implicit_tls_to_a_server_of_an_internal_ca(
    rig: EmailRig, server_tls: ServerTls
) -> None:
    rig.mailbox["smtp"] = {
        **rig.mailbox["smtp"],
        "security": "tls",
        "ca_file": str(server_tls.ca_file),
    }
    rig.start()
    await publish_outbound(rig, outbound())

    [report] = await rig.vhost.wait_for(DOSSIER_EVENTS.name, 1, timeout=20)
    assert DeliveryReport.model_validate_json(report.body).status is DeliveryStatus.SENT
    [sent] = rig.smtp.wait_for(1)
    assert sent.rcpt_tos == ["fenna@example.org"]
    assert sent.message.get_content().strip() == "Uw vergunning is verlengd."
    # The sink speaks nothing but TLS: the session was encrypted from the greeting on.
    assert sent.tls_version in {"TLSv1.2", "TLSv1.3"}


@pytest.mark.smtp_sink(tls=True)
async def test_implicit_tls_without_the_ca_file_is_a_temporary_failure_and_sends_nothing(
    rig: EmailRig,
) -> None:
    smtp = {**rig.mailbox["smtp"], "security": "tls"}
    untrusting = MailboxConfig.model_validate({**rig.mailbox, "smtp": smtp})
    with pytest.raises(TemporaryFailure, match="certificate is not trusted") as failure:
        await send_mail(compose_reply(outbound(), untrusting), untrusting, None, timeout=5)
    assert "smtp.ca_file" in str(failure.value)
    assert rig.smtp.received == []


def test_a_ca_file_must_exist_hold_certificates_and_go_with_tls(
    rig: EmailRig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    imap = rig.mailbox["imap"]
    with pytest.raises(ValidationError, match="ca_file is only used with tls: true"):
        MailboxConfig.model_validate({**rig.mailbox, "imap": {**imap, "ca_file": __file__}})
    with pytest.raises(ValidationError, match="does not point to a file"):
        MailboxConfig.model_validate(
            {**rig.mailbox, "imap": {**imap, "tls": True, "ca_file": str(tmp_path / "no.pem")}}
        )

    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n", encoding="utf-8")
    rig.mailbox["imap"] = {**imap, "tls": True, "ca_file": str(not_pem)}
    monkeypatch.setenv(PASSWORD_ENV, "geheim")
    settings = EmailSettings(config_dir=rig.write_config())
    with pytest.raises(ConfigError, match=r"mailboxes\.0\.imap\.ca_file: not a PEM CA bundle"):
        load_channel(settings)
