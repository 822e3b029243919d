"""Hypothesis throws arbitrary webhooks at the pure core: only clear refusals, never a crash."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kanaal.phone.call import fold, to_contact
from kanaal.phone.callbacks import CallbackRequest, UnknownSubject, callback_contact
from kanaal.phone.config import PhoneChannelConfig
from kanaal.phone.cti import MalformedEvent, parse_body, parse_event

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = PhoneChannelConfig.model_validate({"entry_points": {"14020": {"subject": "algemeen"}}})
FIELDS = ["event", "callId", "from", "to", "direction", "user", "user[]", "queue", "cause"]
VALUES = st.one_of(
    st.sampled_from(["newCall", "answer", "hangup", "in", "out", "noAnswer", "14020", ""]),
    st.sampled_from(["0612345678", "anonymous", "+31 20 555 0100", "201", "x" * 300]),
    st.text(max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), st.lists(VALUES, max_size=3), max_size=9))
def test_any_webhook_is_an_event_or_a_malformed_event(fields: dict[str, list[str]]) -> None:
    try:
        event = parse_event(fields, received_at=NOW)
    except MalformedEvent:
        return
    # Whatever was accepted folds into a valid contact.
    to_contact(fold([event]), CONFIG, received_at=NOW)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["application/json", None, "text/plain"]))
def test_any_body_is_fields_or_a_malformed_event(raw: bytes, content_type: str | None) -> None:
    with contextlib.suppress(MalformedEvent):
        parse_event(parse_body(raw, content_type), received_at=NOW)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {"phone": VALUES, "subject": st.sampled_from(["algemeen", "ufo", "A"])},
        optional={"preferred_from": st.sampled_from(["2026-03-03T09:00:00+01:00", "nope"])},
    )
)
def test_any_callback_request_is_a_contact_or_a_clear_refusal(body: dict[str, str]) -> None:
    with contextlib.suppress(ValidationError, UnknownSubject):
        callback_contact(CallbackRequest.model_validate(body), CONFIG, received_at=NOW)
