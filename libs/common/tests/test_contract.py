"""The contact message v1: what every channel publishes is deterministic, bounded and strict."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from kanaal.common.contract import (
    KANAAL_NS,
    MAX_ATTACHMENTS,
    MAX_CHANNEL_DATA_KEYS,
    MAX_CHANNEL_DATA_VALUE_CHARS,
    MAX_TEXT_CHARS,
    CaseStatus,
    Channel,
    ContactMessage,
    RegisteredContact,
    WorkItem,
    contact_id,
)

SHA = "ab" * 32
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def contact(**overrides: Any) -> ContactMessage:
    fields: dict[str, Any] = {
        "channel": "email",
        "entry_point": "info@gemeente.nl",
        "source_ref": "<a1b2c3@mail.example.nl>",
        "occurred_at": WHEN,
        "received_at": WHEN,
    }
    fields.update(overrides)
    return ContactMessage.new(**fields)


def errors_at(exc: ValidationError) -> set[tuple[str | int, ...]]:
    return {tuple(err["loc"]) for err in exc.errors()}


# --- the deterministic id -------------------------------------------------------------------


def test_the_same_source_item_twice_gets_the_same_id() -> None:
    assert contact().id == contact(text="seen again after a restart").id


def test_the_id_is_uuid5_of_channel_entry_point_and_source_ref() -> None:
    expected = uuid.uuid5(KANAAL_NS, "email:info@gemeente.nl:<a1b2c3@mail.example.nl>")
    assert (
        contact().id
        == expected
        == contact_id("email", "info@gemeente.nl", "<a1b2c3@mail.example.nl>")
    )


@pytest.mark.parametrize(
    "change",
    [
        {"source_ref": "<other@mail.example.nl>"},
        {"entry_point": "vergunningen@gemeente.nl"},
        {"channel": "web"},
    ],
)
def test_a_different_source_item_gets_a_different_id(change: dict[str, str]) -> None:
    assert contact(**change).id != contact().id


def test_surrounding_whitespace_in_the_source_ref_does_not_make_the_contact_unbuildable() -> None:
    # A folded Message-ID header arrives with a trailing newline; it is the same mail.
    padded = contact(source_ref=" <a1b2c3@mail.example.nl>\r\n", entry_point=" info@gemeente.nl ")
    assert padded.source_ref == "<a1b2c3@mail.example.nl>"
    assert padded.id == contact().id


def test_a_channel_given_as_enum_gets_the_same_id_as_its_slug() -> None:
    assert contact(channel=Channel.EMAIL).id == contact(channel="email").id


def test_a_message_whose_id_does_not_match_its_source_is_refused() -> None:
    data = contact().model_dump(mode="json")
    data["id"] = str(uuid.uuid4())
    with pytest.raises(ValidationError, match="id must be uuid5"):
        ContactMessage.model_validate(data)


def test_a_message_whose_source_ref_was_changed_after_the_fact_is_refused() -> None:
    data = contact().model_dump(mode="json")
    data["source_ref"] = "<tampered@mail.example.nl>"
    with pytest.raises(ValidationError, match="expected "):
        ContactMessage.model_validate(data)


# --- time -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["occurred_at", "received_at"])
def test_a_time_without_a_time_zone_is_refused(field: str) -> None:
    with pytest.raises(ValidationError) as info:
        contact(**{field: datetime(2026, 3, 2, 9, 30)})
    assert errors_at(info.value) == {(field,)}
    assert info.value.errors()[0]["type"] == "timezone_aware"


def test_a_time_in_another_zone_is_stored_as_the_same_instant_in_utc() -> None:
    amsterdam_summer = timezone(timedelta(hours=2))
    message = contact(occurred_at=datetime(2026, 7, 1, 14, 0, tzinfo=amsterdam_summer))
    assert message.occurred_at == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert message.occurred_at.utcoffset() == timedelta(0)
    assert message.model_dump(mode="json")["occurred_at"] == "2026-07-01T12:00:00Z"


def test_an_iso_string_with_an_offset_is_converted_to_utc() -> None:
    message = contact(
        received_at="2026-01-15T10:00:00+01:00", occurred_at="2026-01-15T09:59:00+01:00"
    )
    assert message.received_at == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert message.occurred_at == datetime(2026, 1, 15, 8, 59, tzinfo=UTC)


def test_without_times_new_stamps_received_and_occurred_now_in_utc() -> None:
    before = datetime.now(UTC)
    message = ContactMessage.new(channel="web", entry_point="contactformulier", source_ref="s-1")
    assert before <= message.received_at <= datetime.now(UTC)
    assert message.occurred_at == message.received_at


# --- channel, text, channel_data, attachments -----------------------------------------------


@pytest.mark.parametrize("slug", ["email", "phone", "web", "counter", "sms", "whats-app", "chat2"])
def test_builtin_channels_and_integrator_slugs_are_accepted(slug: str) -> None:
    assert contact(channel=slug).channel == slug


@pytest.mark.parametrize(
    "slug", ["E-mail", "x", "2chat", "chat_widget", "chat widget", "", "a" * 33]
)
def test_a_channel_that_is_no_lowercase_slug_is_refused(slug: str) -> None:
    with pytest.raises(ValidationError) as info:
        contact(channel=slug)
    assert ("channel",) in errors_at(info.value)


def test_text_up_to_the_limit_is_kept_whole() -> None:
    assert len(contact(text="a" * MAX_TEXT_CHARS).text) == MAX_TEXT_CHARS


def test_text_over_the_limit_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        contact(text="a" * (MAX_TEXT_CHARS + 1))
    assert errors_at(info.value) == {("text",)}


def test_small_channel_facts_are_kept() -> None:
    data = {"ivr_choice": "2", "call_duration": 75, "recorded": False, "score": 0.5, "agent": None}
    assert contact(channel="phone", channel_data=data).channel_data == data


def test_too_many_channel_facts_are_refused() -> None:
    full = {f"key{i}": i for i in range(MAX_CHANNEL_DATA_KEYS)}
    assert len(contact(channel_data=full).channel_data) == MAX_CHANNEL_DATA_KEYS
    with pytest.raises(ValidationError) as info:
        contact(channel_data={**full, "one-more": 1})
    assert errors_at(info.value) == {("channel_data",)}


def test_a_long_channel_fact_is_refused_naming_its_key() -> None:
    assert contact(channel_data={"header": "x" * MAX_CHANNEL_DATA_VALUE_CHARS})
    with pytest.raises(ValidationError, match="channel_data\\['header'\\] is longer"):
        contact(channel_data={"header": "x" * (MAX_CHANNEL_DATA_VALUE_CHARS + 1)})


@pytest.mark.parametrize(
    "data",
    [{"Bad Key": 1}, {"nested": {"a": 1}}, {"list": [1, 2]}, {"": 1}],
)
def test_channel_facts_are_flat_with_slug_keys(data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        contact(channel_data=data)


def attachment(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "filename": "bezwaar.pdf",
        "content_type": "application/pdf",
        "size": 1234,
        "sha256": SHA,
        "uri": "s3://attachments/ab/abab",
    }
    value.update(overrides)
    return value


def test_an_attachment_is_kept_by_reference_with_its_checksum() -> None:
    message = contact(attachments=[attachment()])
    assert message.attachments[0].sha256 == SHA
    assert message.attachments[0].uri == "s3://attachments/ab/abab"


@pytest.mark.parametrize("sha256", ["AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, ""])
def test_an_attachment_checksum_must_be_64_lowercase_hex_digits(sha256: str) -> None:
    with pytest.raises(ValidationError) as info:
        contact(attachments=[attachment(sha256=sha256)])
    assert errors_at(info.value) == {("attachments", 0, "sha256")}


@pytest.mark.parametrize(
    "change", [{"size": -1}, {"content_type": "pdf"}, {"filename": ""}, {"uri": ""}]
)
def test_an_attachment_with_a_bad_size_type_or_name_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        contact(attachments=[attachment(**change)])


def test_too_many_attachments_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        contact(attachments=[attachment()] * (MAX_ATTACHMENTS + 1))
    assert errors_at(info.value) == {("attachments",)}


# --- strictness, references, party ----------------------------------------------------------


def test_an_unknown_field_is_refused_not_ignored() -> None:
    with pytest.raises(ValidationError) as info:
        contact(colour="blue")
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_an_unknown_party_field_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        contact(party={"name": "Jan", "shoe_size": 44})
    assert errors_at(info.value) == {("party", "shoe_size")}


def test_a_built_message_cannot_be_changed() -> None:
    message = contact()
    with pytest.raises(ValidationError):
        message.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize("ref", ["K-2026-000042", "K-1999-999999"])
def test_a_case_reference_like_k_2026_000042_is_accepted(ref: str) -> None:
    assert contact(case_ref=ref).case_ref == ref


@pytest.mark.parametrize(
    "ref", ["K-2026-42", "k-2026-000042", "K-2026-0000420", "Z-2026-000042", "[K-2026-000042]"]
)
def test_a_malformed_case_reference_is_refused(ref: str) -> None:
    with pytest.raises(ValidationError) as info:
        contact(case_ref=ref)
    assert errors_at(info.value) == {("case_ref",)}


@pytest.mark.parametrize("priority", [-1, 10])
def test_priority_outside_0_to_9_is_refused(priority: int) -> None:
    with pytest.raises(ValidationError):
        contact(priority=priority)


def test_the_party_email_domain_is_lowercased_and_the_local_part_kept() -> None:
    message = contact(party={"email": "Jan.Jansen@Gemeente.Example.NL"})
    assert message.party.email == "Jan.Jansen@gemeente.example.nl"


@pytest.mark.parametrize("email", ["jan", "jan@", "@gemeente.nl", "jan jansen@gemeente.nl"])
def test_an_invalid_party_email_is_refused(email: str) -> None:
    with pytest.raises(ValidationError) as info:
        contact(party={"email": email})
    assert errors_at(info.value) == {("party", "email")}


def test_a_party_knows_when_the_channel_told_nothing_about_the_customer() -> None:
    assert contact().party.is_empty
    assert not contact(party={"identifiers": {"kvk_nummer": "69599084"}}).party.is_empty


# --- JSON on the wire ------------------------------------------------------------------------


def full_contact() -> ContactMessage:
    return contact(
        party={
            "name": "Jan Jansen",
            "email": "jan@example.nl",
            "phone": "06 12345678",
            "identifiers": {"bsn": "111222333", "kvk_nummer": "69599084"},
        },
        subject="parkeren",
        text="Mijn vergunning is verlopen.\nGraag contact.",
        language="nl",
        location="stadhuis",
        case_ref="K-2026-000042",
        in_reply_to="<earlier@gemeente.nl>",
        priority=3,
        confidential=True,
        attachments=[attachment()],
        channel_data={"x-mailer": "Thunderbird", "spam_score": 0.1},
    )


def test_a_contact_survives_a_json_round_trip_unchanged() -> None:
    message = full_contact()
    assert ContactMessage.model_validate_json(message.model_dump_json()) == message


def test_registered_contact_and_work_item_survive_a_json_round_trip() -> None:
    message = full_contact()
    registered = RegisteredContact(
        contact=message,
        party_id=uuid.uuid4(),
        case_ref="K-2026-000042",
        case_status=CaseStatus.OPEN,
        case_is_new=False,
        case_queue="work.subject.parkeren",
        registered_at=WHEN,
    )
    assert RegisteredContact.model_validate_json(registered.model_dump_json()) == registered
    item = WorkItem(
        contact_id=message.id,
        case_ref="K-2026-000042",
        party_id=registered.party_id,
        channel="email",
        queue="work.subject.parkeren",
        rule="sticky",
        routed_at=WHEN,
    )
    assert WorkItem.model_validate_json(item.model_dump_json()) == item
