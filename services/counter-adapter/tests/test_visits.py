"""Counter visits, pure: locations and opening hours, check-in to contact, desk events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from kanaal.common.contract import contact_id
from kanaal.counter.config import CounterChannelConfig
from kanaal.counter.visits import (
    CheckIn,
    Conflict,
    DeskEvent,
    Visit,
    VisitError,
    VisitStatus,
    apply_event,
    update_id,
    visit_contact,
)

MONDAY_10H = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam


def location(**changes: Any) -> dict[str, Any]:
    return {
        "kiosk_token_env": "KANAAL_KIOSK_TOKEN",
        "desk_token_env": "KANAAL_DESK_TOKEN",
        "desks": ["1", "2"],
        "opening_hours": {"mon": "08:30-17:00", "thu": ["08:30-12:30", "13:30-20:00"]},
        **changes,
    }


CONFIG = CounterChannelConfig.model_validate(
    {
        "subjects": ["paspoort", "rijbewijs", "afval"],
        "locations": {
            "stadhuis": location(closed_on=["2026-12-28"]),
            "noord": location(subjects=["paspoort"], opening_hours=None),
        },
    }
)


def check_in(**changes: Any) -> CheckIn:
    return CheckIn.model_validate(
        {"location": "stadhuis", "subject": "paspoort", "ticket": "a023", **changes}
    )


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        (datetime(2026, 3, 2, 8, 29), False),
        (datetime(2026, 3, 2, 8, 30), True),
        (datetime(2026, 3, 2, 16, 59), True),
        (datetime(2026, 3, 2, 17, 0), False),
        (datetime(2026, 3, 3, 10, 0), False),  # tuesday: not listed, closed
        (datetime(2026, 3, 5, 13, 0), False),  # thursday lunch
        (datetime(2026, 3, 5, 19, 30), True),  # thursday evening
        (datetime(2026, 12, 28, 10, 0), False),  # a monday in closed_on
    ],
)
def test_a_location_is_open_as_its_opening_hours_say(local: datetime, is_open: bool) -> None:
    assert CONFIG.locations["stadhuis"].is_open(local) is is_open


def test_a_location_without_opening_hours_is_always_open() -> None:
    assert CONFIG.locations["noord"].is_open(datetime(2026, 3, 8, 3, 0))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"opening_hours": {"maandag": "08:30-17:00"}}, "no weekday"),
        ({"opening_hours": {"mon": "8:30-17"}}, "HH:MM-HH:MM"),
        ({"opening_hours": {"mon": "17:00-08:30"}}, "end must be after"),
        ({"desks": []}, "at least 1"),
        ({"kiosk_token_env": "my-token"}, "pattern"),
        ({"subjects": ["ufo"]}, "not in subjects"),
    ],
)
def test_a_wrong_location_config_is_refused_naming_the_problem(
    changes: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        CounterChannelConfig.model_validate(
            {"subjects": ["paspoort"], "locations": {"x": location(**changes)}}
        )


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        CounterChannelConfig(timezone="Mars/Olympus")


def test_a_check_in_is_a_contact_at_its_location_with_the_ticket() -> None:
    contact = visit_contact(
        check_in(name="A. Burger", phone="06 12345678", bsn="111222333", appointment_ref="AP-1"),
        CONFIG,
        received_at=MONDAY_10H,
    )
    assert contact.channel == "counter"
    assert contact.location == "stadhuis"
    assert contact.entry_point == "stadhuis"
    assert contact.source_ref == "2026-03-02:A023"
    assert contact.id == contact_id("counter", "stadhuis", "2026-03-02:A023")
    assert contact.party.phone == "+31612345678"
    assert contact.party.identifiers.bsn == "111222333"
    assert contact.channel_data == {
        "ticket": "A023",
        "status": "waiting",
        "appointment_ref": "AP-1",
        "checked_in_at_local": "2026-03-02T10:00+01:00",
    }


def test_the_same_ticket_on_another_day_is_another_visit() -> None:
    first = visit_contact(check_in(), CONFIG, received_at=MONDAY_10H)
    again = visit_contact(check_in(), CONFIG, received_at=MONDAY_10H + timedelta(minutes=5))
    next_week = visit_contact(check_in(), CONFIG, received_at=MONDAY_10H + timedelta(days=7))
    assert first.id == again.id != next_week.id


@pytest.mark.parametrize(
    ("changes", "at", "field", "message"),
    [
        ({"location": "zuid"}, MONDAY_10H, "location", "unknown location"),
        ({"subject": "afval", "location": "noord"}, MONDAY_10H, "subject", "unknown subject"),
        ({}, MONDAY_10H + timedelta(days=1), "location", "closed"),
    ],
)
def test_a_check_in_that_cannot_be_a_visit_says_which_field(
    changes: dict[str, Any], at: datetime, field: str, message: str
) -> None:
    with pytest.raises(VisitError, match=message) as raised:
        visit_contact(check_in(**changes), CONFIG, received_at=at)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "changes", [{"bsn": "123456789"}, {"phone": "14 020"}, {"ticket": "A 23"}, {"extra": 1}]
)
def test_an_invalid_check_in_field_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        check_in(**changes)


def waiting_visit() -> Visit:
    return Visit(
        id=uuid.uuid4(),
        location="stadhuis",
        ticket="A023",
        subject="paspoort",
        status=VisitStatus.WAITING,
        checked_in_at=MONDAY_10H,
    )


def desk(**fields: Any) -> DeskEvent:
    return DeskEvent.model_validate(fields)


def test_a_visit_is_called_then_served_with_wait_and_service_time() -> None:
    visit = waiting_visit()
    called, update = apply_event(
        visit,
        desk(event="called", desk="2", agent="mw-17"),
        CONFIG,
        at=MONDAY_10H + timedelta(minutes=12),
    )
    assert called.status is VisitStatus.CALLED
    assert update.contact_id == visit.id
    assert update.event == "called"
    assert update.channel_data == {
        "status": "called",
        "desk": "2",
        "agent": "mw-17",
        "wait_seconds": 720,
    }
    served, update = apply_event(
        called,
        desk(event="served", outcome="afgehandeld"),
        CONFIG,
        at=MONDAY_10H + timedelta(minutes=20),
    )
    assert served.status is VisitStatus.SERVED
    assert update.channel_data == {
        "status": "served",
        "desk": "2",
        "outcome": "afgehandeld",
        "service_seconds": 480,
    }


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (VisitStatus.SERVED, "called"),
        (VisitStatus.SERVED, "served"),
        (VisitStatus.NO_SHOW, "served"),
        (VisitStatus.SERVED, "no_show"),
    ],
)
def test_an_event_after_the_visit_ended_is_a_conflict(status: VisitStatus, event: str) -> None:
    visit = Visit(**{**waiting_visit().__dict__, "status": status})
    with pytest.raises(Conflict):
        apply_event(visit, desk(event=event, desk="1"), CONFIG, at=MONDAY_10H)


def test_a_called_event_needs_a_desk_of_the_location() -> None:
    with pytest.raises(VisitError, match="needs the desk"):
        apply_event(waiting_visit(), desk(event="called"), CONFIG, at=MONDAY_10H)
    with pytest.raises(VisitError, match="unknown desk"):
        apply_event(waiting_visit(), desk(event="called", desk="9"), CONFIG, at=MONDAY_10H)


def test_the_same_desk_event_twice_has_one_update_id() -> None:
    visit_id = uuid.uuid4()
    event = desk(event="called", desk="1")
    assert update_id(visit_id, event) == update_id(visit_id, desk(event="called", desk="1"))
    assert update_id(visit_id, event) != update_id(visit_id, desk(event="called", desk="2"))
    with_id = desk(event="called", desk="1", event_id="e-1")
    assert update_id(visit_id, with_id) == update_id(
        visit_id, desk(event="called", desk="2", event_id="e-1")
    )
