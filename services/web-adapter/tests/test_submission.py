"""The web submission's mapping to a contact: ids, validation, subjects."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from kanaal.common.contract import ContactMessage
from kanaal.web.submission import UnknownSubject, WebChannelConfig, WebMessage, to_contact

CONFIG = WebChannelConfig(form_id="contactformulier", subjects=["parkeren", "afval"])
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
FORM = {"name": "J. Jansen", "email": "j.jansen@example.org", "subject": "parkeren", "text": "Hoi"}


def contact(body: dict[str, object], key: str | None = None, at: datetime = NOW) -> ContactMessage:
    return to_contact(WebMessage.model_validate(body), CONFIG, received_at=at, idempotency_key=key)


def test_the_same_form_sent_twice_is_the_same_contact() -> None:
    later = datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC)
    assert contact(FORM).id == contact(FORM, at=later).id


def test_a_different_text_is_a_different_contact() -> None:
    assert contact(FORM).id != contact({**FORM, "text": "Iets anders"}).id


def test_an_idempotency_key_decides_identity_over_content() -> None:
    assert contact(FORM, key="abc").id == contact({**FORM, "text": "gewijzigd"}, key="abc").id
    assert contact(FORM, key="abc").id != contact(FORM, key="abd").id
    assert contact({**FORM, "submission_id": "abc"}).id == contact(FORM, key="abc").id


def test_the_contact_is_a_web_contact_on_the_form_entry_point() -> None:
    made = contact({**FORM, "phone": "06 12345678", "case_ref": "K-2026-000042"})
    assert (made.channel, made.entry_point, made.subject) == ("web", "contactformulier", "parkeren")
    assert made.party.phone == "+31612345678"
    assert made.case_ref == "K-2026-000042"
    assert made.received_at == NOW


def test_a_subject_the_form_does_not_offer_is_refused() -> None:
    with pytest.raises(UnknownSubject, match="parkeren, afval"):
        contact({**FORM, "subject": "belastingen"})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("phone", "14 020"),
        ("email", "geen-adres"),
        ("text", ""),
        ("text", "x" * 20_001),
        ("case_ref", "K-26-1"),
        ("subject", "Parkeren!"),
        ("unexpected", "field"),
    ],
)
def test_invalid_fields_are_refused_by_name(field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        WebMessage.model_validate({**FORM, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_control_characters_are_removed_from_the_text() -> None:
    assert WebMessage.model_validate({**FORM, "text": "a\x00b\x1bc\nd"}).text == "abc\nd"
