"""parse.py against a corpus of real-world-shaped mails, and against anything at all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kanaal.email.config import MailboxConfig
from kanaal.email.message_ids import message_ids, outbound_message_id, own_message_id
from kanaal.email.parse import (
    Limits,
    OverLimit,
    ParsedMail,
    Unparsable,
    html_to_text,
    parse_mail,
)

CORPUS = Path(__file__).parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = yaml.safe_load(
    (CORPUS / "expected.yaml").read_text(encoding="utf-8")
)
RECEIVED = datetime(2026, 11, 16, 12, 0, tzinfo=UTC)
LIMITS = Limits(max_attachment_bytes=200_000, max_attachments=5, max_total_bytes=500_000)
MAILBOX = MailboxConfig.model_validate(
    {
        "address": "info@gemeente.example",
        "imap": {"host": "imap.example", "user": "info", "password_env": "KANAAL_IMAP_PW"},
        "subject": "algemeen",
        "location": "centrum",
        "priority": 2,
    }
)


def parse(raw: bytes, limits: Limits = LIMITS) -> ParsedMail:
    return parse_mail(
        raw,
        MAILBOX,
        received_at=RECEIVED,
        attachment_uri=lambda sha: f"file:///store/{sha}",
        limits=limits,
    )


def test_the_corpus_has_at_least_thirty_mails_each_with_an_expected_outcome() -> None:
    mails = {p.stem for p in CORPUS.glob("*.eml")}
    assert len(mails) >= 30
    assert mails == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_mail_gives_its_expected_outcome(name: str) -> None:
    expected = EXPECTED[name]
    raw = (CORPUS / f"{name}.eml").read_bytes()
    outcome = expected["outcome"]
    if outcome != "contact":
        error = OverLimit if outcome == "over_limit" else Unparsable
        with pytest.raises(error) as caught:
            parse(raw)
        if outcome == "unparsable":
            assert not isinstance(caught.value, OverLimit)
        assert expected["reason_contains"] in caught.value.reason
        return

    contact = parse(raw).contact
    assert contact.channel == "email"
    assert contact.entry_point == "info@gemeente.example"
    assert (contact.subject, contact.location, contact.priority) == ("algemeen", "centrum", 2)
    checks = {
        "source_ref": lambda v: contact.source_ref == v,
        "source_ref_is_hash": lambda v: contact.source_ref.startswith("sha256:") == v,
        "party_name": lambda v: contact.party.name == v,
        "party_email": lambda v: contact.party.email == v,
        "text": lambda v: contact.text == v,
        "text_contains": lambda v: all(part in contact.text for part in v),
        "text_excludes": lambda v: not any(part in contact.text for part in v),
        "text_length": lambda v: len(contact.text) == v,
        "case_ref": lambda v: contact.case_ref == v,
        "in_reply_to": lambda v: contact.in_reply_to == v,
        "attachments": lambda v: [[a.filename, a.content_type] for a in contact.attachments] == v,
        "channel_data": lambda v: {k: contact.channel_data.get(k) for k in v} == v,
        "subject_line_length": lambda v: len(str(contact.channel_data["subject_line"])) == v,
        "occurred_at": lambda v: (
            contact.occurred_at == (RECEIVED if v == "received" else datetime.fromisoformat(v))
        ),
        "confidential": lambda v: contact.confidential == v,
        "same_id_as": lambda v: contact.id == parse((CORPUS / f"{v}.eml").read_bytes()).contact.id,
    }
    for key, value in expected.items():
        if key == "outcome":
            continue
        assert checks[key](value), f"{name}: {key} should be {value!r}"


def test_attachments_carry_size_hash_and_the_store_uri_but_no_bytes_on_the_bus() -> None:
    parsed = parse((CORPUS / "11-nested-multipart.eml").read_bytes())
    pdf = parsed.contact.attachments[1]
    assert pdf.size == len(parsed.attachments[1].data) == 2009
    assert pdf.uri == f"file:///store/{pdf.sha256}"
    assert parsed.attachments[1].data.startswith(b"%PDF")
    assert b"%PDF" not in parsed.contact.model_dump_json().encode()


def test_the_same_bytes_always_give_the_same_contact_id() -> None:
    raw = (CORPUS / "16-missing-message-id.eml").read_bytes()
    assert parse(raw).contact.id == parse(raw).contact.id
    assert parse(raw).contact.id != parse(raw + b"extra\r\n").contact.id


def test_the_total_attachment_size_limit_is_enforced() -> None:
    raw = (CORPUS / "11-nested-multipart.eml").read_bytes()
    with pytest.raises(OverLimit, match="together"):
        parse(raw, Limits(max_attachment_bytes=10_000, max_attachments=5, max_total_bytes=2_000))


def test_html_is_sanitised_before_it_becomes_text() -> None:
    text = html_to_text(
        "<div onclick='x()'>Hallo<script>steal()</script></div><ul><li>een</li><li>twee</li></ul>"
        "<table><tr><td>a</td><td>b</td></tr></table><style>.x{}</style>&lt;geen tag&gt;"
    )
    assert text == "Hallo\n- een\n- twee\n\na b\n\n<geen tag>"


def test_our_message_ids_round_trip_with_the_case_and_contact() -> None:
    contact = uuid.uuid4()
    mid = outbound_message_id(contact, "K-2026-000042", "Gemeente.Example")
    own = own_message_id(f"<{mid}>")
    assert own is not None
    assert (own.contact_id, own.case_ref, own.domain) == (
        contact,
        "K-2026-000042",
        "gemeente.example",
    )
    assert own_message_id(outbound_message_id(contact, None, "x.example")) is not None
    assert own_message_id("kanaal.K-2026-000042.not-a-uuid@x") is None
    assert own_message_id("someone@example.org") is None


def test_message_ids_are_found_in_folded_and_bare_header_values() -> None:
    assert message_ids("<a@b>\r\n <c@d>  <nope>") == ["a@b", "c@d"]
    assert message_ids("bare@id.example") == ["bare@id.example"]
    assert message_ids(None) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3_000))
def test_any_bytes_give_a_contact_or_unparsable_never_a_crash(raw: bytes) -> None:
    reason = "parsed"
    try:
        parse(raw)
    except Unparsable as exc:
        reason = exc.reason
    assert reason


HEADER_LINES = st.sampled_from(
    [
        b"From: =?utf-8?q?X=E2=82=AC?= <a@b.example>",
        b"From: \xff\xfe <@>",
        b"Subject: =?iso-8859-1?b?////?=",
        b"Subject: [K-2026-000001] re",
        b"Message-ID: <<>>",
        b"Message-ID: <x@y>",
        b"Date: 31 Feb 2026 99:99:99 +9999",
        b"In-Reply-To: <kanaal.K-2026-000001.00000000-0000-0000-0000-000000000000@x>",
        b"Content-Type: multipart/mixed; boundary=",
        b'Content-Type: text/plain; charset="utf-99"',
        b"Content-Transfer-Encoding: base64",
        b"Content-Transfer-Encoding: quoted-printable",
        b"Content-Disposition: attachment; filename*=bogus''%%%",
        b"Auto-Submitted: auto-generated",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HEADER_LINES, max_size=8), st.binary(max_size=500))
def test_mail_shaped_garbage_never_crashes_the_parser(headers: list[bytes], body: bytes) -> None:
    raw = b"\r\n".join(headers) + b"\r\n\r\n" + body
    try:
        contact = parse(raw).contact
    except Unparsable:
        return
    assert contact.id is not None
    assert "\x00" not in contact.text


def test_a_folded_in_reply_to_with_our_message_id_still_finds_the_case() -> None:
    contact_id = uuid.uuid4()
    ours = outbound_message_id(contact_id, "K-2026-000042", "gemeente.example")
    raw = (
        f"From: a@example.org\r\nSubject: Re: iets\r\nMessage-ID:\r\n <reply-x@example.org>\r\n"
        f"In-Reply-To:\r\n <{ours}>\r\n\r\nDank.\r\n"
    ).encode()
    contact = parse(raw).contact
    assert contact.source_ref == "reply-x@example.org"
    assert contact.in_reply_to == ours
    assert contact.case_ref == "K-2026-000042"
