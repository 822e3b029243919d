"""Generic CTI webhooks parsed: numbers, fields, JSON and forms, malformed events, signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kanaal.phone.config import HangupCause
from kanaal.phone.cti import (
    CallDirection,
    CallerStatus,
    CallEvent,
    EventKind,
    MalformedEvent,
    customer_number,
    parse_body,
    parse_event,
    sign,
    signature_matches,
)

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def event(**fields: str | list[str]) -> CallEvent:
    data = {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return parse_event(data, received_at=NOW)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0612345678", "+31612345678"),
        ("+31612345678", "+31612345678"),
        ("0031 6 1234 5678", "+31612345678"),
        ("06-12345678", "+31612345678"),
        ("(020) 123 4567", "+31201234567"),
        ("020-1234567", "+31201234567"),
        ("+32 470 12 34 56", "+32470123456"),
        ("0049 30 12345678", "+493012345678"),
    ],
)
def test_a_callers_number_in_any_dutch_notation_is_one_e164_number(raw: str, expected: str) -> None:
    assert customer_number(raw) == (expected, CallerStatus.KNOWN)


@pytest.mark.parametrize("raw", ["", "anonymous", "Anonymous", "unknown", "restricted", "private"])
def test_an_anonymous_caller_is_allowed_without_a_number(raw: str) -> None:
    assert customer_number(raw) == (None, CallerStatus.ANONYMOUS)


@pytest.mark.parametrize("raw", ["14020", "112", "0612", "+31 6 1234"])
def test_a_number_that_is_no_personal_number_is_kept_as_unrecognised(raw: str) -> None:
    assert customer_number(raw) == (None, CallerStatus.UNRECOGNISED)


@pytest.mark.parametrize(
    ("dialled", "entry_point"),
    [
        ("14020", "14020"),
        ("14 020", "14020"),
        ("140 20", "14020"),
        ("14 0318", "140318"),
        ("020 555 0100", "+31205550100"),
        ("+31205550100", "+31205550100"),
        ("0031205550100", "+31205550100"),
    ],
)
def test_the_dialled_number_is_the_entry_point_and_14_0xx_stays_as_dialled(
    dialled: str, entry_point: str
) -> None:
    parsed = event(
        event="newCall", direction="in", callId="c1", **{"from": "0612345678"}, to=dialled
    )
    assert parsed.ours == entry_point
    assert parsed.customer == "+31612345678"


def test_on_an_outbound_call_the_citizen_is_the_called_number_and_an_extension_is_ours() -> None:
    parsed = event(
        event="newCall", direction="out", callId="c2", **{"from": "201"}, to="06 12345678"
    )
    assert parsed.direction is CallDirection.OUT
    assert parsed.customer == "+31612345678"
    assert parsed.ours == "201"


def test_users_come_from_user_or_user_brackets_and_the_ivr_choice_from_queue() -> None:
    form = parse_body(
        b"event=newCall&direction=in&callId=abc&from=0612345678&to=14020"
        b"&user%5B%5D=Anna&user%5B%5D=Bram&queue=2",
        "application/x-www-form-urlencoded",
    )
    parsed = parse_event(form, received_at=NOW)
    assert parsed.users == ("Anna", "Bram")
    assert parsed.ivr_choice == "2"
    assert parsed.kind is EventKind.NEW_CALL


def test_json_and_form_bodies_give_the_same_event() -> None:
    fields = {
        "event": "hangup",
        "callId": "abc",
        "from": "0612345678",
        "to": "14020",
        "direction": "in",
        "cause": "noAnswer",
        "user": ["Anna"],
    }
    from_json = parse_event(
        parse_body(json.dumps(fields).encode(), "application/json"), received_at=NOW
    )
    form = "event=hangup&callId=abc&from=0612345678&to=14020&direction=in&cause=noAnswer&user=Anna"
    from_form = parse_event(parse_body(form.encode(), None), received_at=NOW)
    assert from_json == from_form
    assert from_json.fingerprint == from_form.fingerprint
    assert from_json.cause is HangupCause.NO_ANSWER


def test_the_ivr_choice_can_come_from_a_digits_field() -> None:
    fields = {"event": ["newCall"], "direction": ["in"], "callId": ["x"], "to": ["14020"]}
    parsed = parse_event({**fields, "digits": ["3"]}, received_at=NOW, ivr_field="digits")
    assert parsed.ivr_choice == "3"


def test_the_same_event_twice_has_one_fingerprint_whatever_its_arrival_time() -> None:
    fields = {"event": ["answer"], "callId": ["x"], "user": ["Anna"]}
    first = parse_event(fields, received_at=NOW)
    later = parse_event(fields, received_at=datetime(2026, 3, 2, 9, 31, tzinfo=UTC))
    assert first.fingerprint == later.fingerprint
    assert CallEvent.from_json(first.to_json()) == first


def test_a_pbx_timestamp_is_the_events_time() -> None:
    parsed = event(event="answer", callId="x", timestamp="1772443800")
    assert parsed.at == datetime.fromtimestamp(1772443800, UTC)
    iso = event(event="answer", callId="x", timestamp="2026-03-02T10:30:00+01:00")
    assert iso.at == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"callId": "x"}, "event: is required"),
        ({"event": "ring", "callId": "x"}, "event: must be one of"),
        ({"event": "answer"}, "callId: is required"),
        ({"event": "newCall", "callId": "x", "to": "14020"}, "direction: is required"),
        ({"event": "newCall", "callId": "x", "direction": "sideways"}, "direction: must be"),
        ({"event": "newCall", "callId": "x", "direction": "in"}, "to: the dialled number"),
        ({"event": "hangup", "callId": "x", "cause": "boredom"}, "cause: must be one of"),
        ({"event": "answer", "callId": "x", "timestamp": "yesterday"}, "timestamp:"),
        ({"event": "answer", "callId": "x" * 300}, "callId: at most"),
        ({"event": "newCall", "callId": "x", "direction": "in", "to": "hello"}, "to: not a phone"),
    ],
)
def test_a_malformed_event_is_refused_with_the_field_and_the_reason(
    fields: dict[str, str], reason: str
) -> None:
    with pytest.raises(MalformedEvent, match=reason):
        event(**fields)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"event": {"nested": 1}}', "application/json"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
    ],
)
def test_a_body_that_is_neither_json_nor_a_form_is_malformed(
    body: bytes, content_type: str
) -> None:
    with pytest.raises(MalformedEvent):
        parse_event(parse_body(body, content_type), received_at=NOW)


def test_a_signature_is_hmac_sha256_over_the_raw_body() -> None:
    body = b"event=answer&callId=x"
    key = b"secret-key"
    header = sign(body, key)
    assert header.startswith("sha256=")
    assert signature_matches(body, header, key)
    assert signature_matches(body, header.removeprefix("sha256="), key)
    assert not signature_matches(body + b" ", header, key)
    assert not signature_matches(body, header, b"other-key")
    assert not signature_matches(body, None, key)
    assert not signature_matches(body, "sha256=zz", key)
