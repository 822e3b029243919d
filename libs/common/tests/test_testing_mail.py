"""The mail fixtures start real servers that behave like the ones in production."""

from __future__ import annotations

import smtplib

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
