"""Answers become mails that thread, carry the case and cannot smuggle in headers."""

from __future__ import annotations

import pytest

from kanaal.common.contract import ContactMessage, Direction, Party
from kanaal.email.compose import CannotCompose, compose_acknowledgement, compose_reply
from kanaal.email.config import MailboxConfig
from kanaal.email.message_ids import own_message_id

MAILBOX = MailboxConfig.model_validate(
    {
        "address": "info@gemeente.example",
        "display_name": "Gemeente Voorbeeld",
        "imap": {"host": "imap.example", "user": "info", "password_env": "KANAAL_X"},
    }
)


def answer(**fields: object) -> ContactMessage:
    values: dict[str, object] = {
        "channel": "email",
        "direction": Direction.OUTBOUND,
        "entry_point": "info@gemeente.example",
        "source_ref": "reply-1",
        "party": Party(name="Fenna Zwartveld", email="fenna@example.org"),
        "text": "Uw vergunning is verlengd.",
        "case_ref": "K-2026-000042",
        "in_reply_to": "m1@example.org",
    }
    values.update(fields)
    return ContactMessage.new(**values)


def test_a_reply_comes_from_the_mailbox_threads_and_names_the_case() -> None:
    message = compose_reply(answer(), MAILBOX)
    assert message["From"].addresses[0].addr_spec == "info@gemeente.example"
    assert message["From"].addresses[0].display_name == "Gemeente Voorbeeld"
    assert message["To"].addresses[0].addr_spec == "fenna@example.org"
    assert message["Subject"] == "Uw bericht aan de gemeente [K-2026-000042]"
    assert message["In-Reply-To"] == "<m1@example.org>"
    assert message["X-Loop"] == "info@gemeente.example"
    own = own_message_id(str(message["Message-ID"]))
    assert own is not None
    assert own.case_ref == "K-2026-000042"


def test_the_same_outbound_contact_always_gives_the_same_mail() -> None:
    contact = answer()
    assert compose_reply(contact, MAILBOX).as_bytes() == compose_reply(contact, MAILBOX).as_bytes()


def test_the_case_ref_is_not_repeated_when_the_subject_has_it() -> None:
    contact = answer(channel_data={"subject_line": "Re: vraag [K-2026-000042]"})
    assert compose_reply(contact, MAILBOX)["Subject"] == "Re: vraag [K-2026-000042]"


@pytest.mark.parametrize(
    "fields",
    [
        {"channel_data": {"subject_line": "Vraag\r\nBcc: everyone@example.org"}},
        {"channel_data": {"subject_line": "Vraag\nBcc: everyone@example.org"}},
        {"party": Party(name="Fenna\rBcc: x@example.org", email="fenna@example.org")},
        {"in_reply_to": "m1@example.org>\r\nBcc: <x@example.org"},
        {"in_reply_to": "not a message id"},
    ],
)
def test_header_injection_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(CannotCompose):
        compose_reply(answer(**fields), MAILBOX)


def test_an_answer_without_an_address_cannot_be_sent() -> None:
    with pytest.raises(CannotCompose, match="no e-mail address"):
        compose_reply(answer(party=Party(name="Fenna")), MAILBOX)


def test_an_acknowledgement_is_marked_automatic_and_threads_to_the_mail() -> None:
    inbound = ContactMessage.new(
        channel="email",
        entry_point="info@gemeente.example",
        source_ref="m7@example.org",
        party=Party(email="fenna@example.org"),
    )
    message = compose_acknowledgement(inbound, MAILBOX, "K-2026-000007")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Subject"] == "Ontvangstbevestiging [K-2026-000007]"
    assert message["In-Reply-To"] == "<m7@example.org>"
    own = own_message_id(str(message["Message-ID"]))
    assert own is not None
    assert own.case_ref == "K-2026-000007"
