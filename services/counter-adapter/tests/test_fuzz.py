"""Hypothesis throws arbitrary check-ins and desk events at the pure core: clear refusals only."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kanaal.counter.config import CounterChannelConfig
from kanaal.counter.visits import (
    CheckIn,
    Conflict,
    DeskEvent,
    Visit,
    VisitError,
    VisitStatus,
    apply_event,
    visit_contact,
)

MONDAY_10H = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LOCATION = {"kiosk_token_env": "KANAAL_K", "desk_token_env": "KANAAL_D", "desks": ["1", "2"]}
CONFIG = CounterChannelConfig.model_validate(
    {
        "subjects": ["paspoort", "afval"],
        "locations": {
            "stadhuis": {**LOCATION, "opening_hours": {"mon": "08:30-17:00"}},
            "noord": {**LOCATION, "subjects": ["paspoort"]},
        },
    }
)
TEXT = st.one_of(
    st.sampled_from(["stadhuis", "noord", "zuid", "paspoort", "afval", "A023", "", "1", "9"]),
    st.sampled_from(["06 12345678", "111222333", "a@example.org", "called", "served", "no_show"]),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["location", "subject", "ticket", "name", "phone", "email", "bsn"]),
        TEXT,
        max_size=7,
    ),
    st.integers(min_value=0, max_value=7 * 24),
)
def test_any_check_in_is_a_contact_or_a_clear_refusal(body: dict[str, str], hours: int) -> None:
    with contextlib.suppress(ValidationError, VisitError):
        check_in = CheckIn.model_validate(body)
        visit_contact(check_in, CONFIG, received_at=MONDAY_10H + timedelta(hours=hours))


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["event", "desk", "agent", "outcome", "notes", "event_id"]),
        TEXT,
        max_size=6,
    ),
    st.sampled_from(list(VisitStatus)),
)
def test_any_desk_event_moves_the_visit_or_is_a_clear_refusal(
    body: dict[str, str], status: VisitStatus
) -> None:
    visit = Visit(uuid.uuid4(), "stadhuis", "A023", "paspoort", status, MONDAY_10H)
    with contextlib.suppress(ValidationError, VisitError, Conflict):
        apply_event(visit, DeskEvent.model_validate(body), CONFIG, at=MONDAY_10H)
