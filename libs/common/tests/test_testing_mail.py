"""The mail fixtures start real servers that behave like the ones in production."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time

import pytest

from kanaal.common.testing_mail import DovecotServer, SmtpSink


def test_dovecot_keeps_appended_mail_and_comes_back_after_a_restart(
    dovecot: DovecotServer,
) -> None:
    dovecot.add_user("info@example.org", "geheim")
    dovecot.append("info@example.org", b"Subject: a\r\nMessage-ID: <1@x>\r\n\r\none\r\n")
    dovecot.stop()
    dovecot.start()
    dovecot.append("info@example.org", b"Subject: b\r\n\r\ntwo\r\n", folder="Archief")
    assert [m.endswith(b"one\r\n") for m in dovecot.messages("info@example.org")] == [True]
    assert len(dovecot.messages("info@example.org", "Archief")) == 1
    assert set(dovecot.folders("info@example.org")) >= {"INBOX", "Archief"}
    assert dovecot.messages("info@example.org", "Nergens") == []


def test_the_smtp_sink_keeps_mail_and_refuses_recipients_it_is_told_to(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.refuse.add("weg@example.org")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        refused = client.sendmail(
            "a@example.org", ["b@example.org", "weg@example.org"], b"Subject: x\r\n\r\nhi\r\n"
        )
    assert list(refused) == ["weg@example.org"]
    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ["b@example.org"]
    assert mail.message["Subject"] == "x"
    assert mail.tls_version is None


@pytest.mark.dovecot(imaps=True)
def test_dovecot_can_serve_imaps_with_a_certificate_only_its_throwaway_ca_vouches_for(
    dovecot: DovecotServer,
) -> None:
    assert dovecot.tls is not None
    assert dovecot.imaps_port is not None
    dovecot.add_user("info@example.org", "geheim")
    dovecot.append("info@example.org", b"Subject: a\r\n\r\none\r\n")
    context = dovecot.tls.client_context()
    with imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=context) as client:
        client.login("info@example.org", "geheim")
        assert client.select("INBOX") == ("OK", [b"1"])
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(
            dovecot.host, dovecot.imaps_port, ssl_context=ssl.create_default_context()
        )
    # The plain port stays as it was, for the helpers and every other test.
    assert len(dovecot.messages("info@example.org")) == 1


@pytest.mark.dovecot(withhold=["MOVE"])
def test_dovecot_can_leave_a_capability_out_and_keeps_the_rest(dovecot: DovecotServer) -> None:
    dovecot.add_user("info@example.org", "geheim")
    with dovecot.imap("info@example.org") as client:
        _, data = client.capability()
    capabilities = data[0].decode().split()
    assert "MOVE" not in capabilities
    assert {"IMAP4rev1", "IDLE", "UIDPLUS"} <= set(capabilities)
    # Dovecot logs every command it finished, so a test can see what a client really sent.
    # Its log process writes lines as they reach it: not always in order, nor at once.
    for _ in range(50):
        if {"CAPABILITY", "LOGOUT"} <= set(dovecot.commands()):
            break
        time.sleep(0.1)
    assert {"CAPABILITY", "LOGOUT"} <= set(dovecot.commands())


@pytest.mark.smtp_sink(starttls=True)
def test_the_smtp_sink_can_require_starttls(smtp_sink: SmtpSink) -> None:
    assert smtp_sink.tls is not None
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        code, _ = client.mail("a@example.org")
        assert code == 530  # STARTTLS first
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as client:
        client.starttls(context=smtp_sink.tls.client_context())
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhi\r\n")
    [mail] = smtp_sink.wait_for(1)
    assert mail.tls_version is not None  # delivered after the upgrade


@pytest.mark.smtp_sink(tls=True)
def test_the_smtp_sink_can_speak_tls_from_the_first_byte(smtp_sink: SmtpSink) -> None:
    assert smtp_sink.tls is not None
    assert smtp_sink.implicit_tls
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(smtp_sink.host, smtp_sink.port, context=ssl.create_default_context())
    context = smtp_sink.tls.client_context()
    with smtplib.SMTP_SSL(smtp_sink.host, smtp_sink.port, context=context, timeout=10) as client:
        client.ehlo()
        assert not client.has_extn("starttls")  # already encrypted: nothing to upgrade
        client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhi\r\n")
    [mail] = smtp_sink.wait_for(1)
    assert mail.rcpt_tos == ["b@example.org"]
    assert mail.tls_version in {"TLSv1.2", "TLSv1.3"}
