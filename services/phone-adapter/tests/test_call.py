"""A call's events folded into one contact: any order, duplicates, outcomes, callbacks, IVR."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from kanaal.common.contract import Direction
from kanaal.phone.call import fold, is_due, needs_callback, to_contact
from kanaal.phone.config import EntryPointConfig, PhoneChannelConfig, Routing
from kanaal.phone.cti import CallEvent, parse_event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = PhoneChannelConfig(
    entry_points={
        "14020": EntryPointConfig(
            subject="algemeen",
            ivr={"1": Routing(subject="parkeren"), "2": Routing(subject="afval", location="noord")},
        ),
        "020 555 0100": EntryPointConfig(subject="vergunningen", location="stadhuis"),
    },
    ivr={"belastingen": Routing(subject="belastingen")},
)
SETTLE = timedelta(seconds=3)
TIMEOUT = timedelta(hours=4)


def cti(kind: str, at: datetime, call_id: str = "call-1", **fields: str | list[str]) -> CallEvent:
    data: dict[str, list[str]] = {
        "event": [kind],
        "callId": [call_id],
        "from": ["0612345678"],
        "to": ["14020"],
        "direction": ["in"],
    }
    data |= {k: v if isinstance(v, list) else [v] for k, v in fields.items()}
    return parse_event(data, received_at=at)


def answered_call() -> list[CallEvent]:
    return [
        cti("newCall", T0, queue="1", user=["Anna", "Bram"]),
        cti("answer", T0 + timedelta(seconds=20), user="Bram", answeringNumber="201"),
        cti("hangup", T0 + timedelta(seconds=140), cause="normalClearing"),
    ]


def test_an_answered_call_is_one_inbound_contact_with_its_lifecycle() -> None:
    contact = to_contact(fold(answered_call()), CONFIG, received_at=T0 + timedelta(minutes=3))
    assert contact.channel == "phone"
    assert contact.direction is Direction.INBOUND
    assert contact.source_ref == "call-1"
    assert contact.entry_point == "14020"
    assert contact.party.phone == "+31612345678"
    assert contact.subject == "parkeren"
    assert contact.occurred_at == T0
    assert contact.channel_data == {
        "call_direction": "in",
        "outcome": "answered",
        "answered": True,
        "callback": False,
        "caller": "known",
        "ivr_choice": "1",
        "answered_by": "Bram",
        "answering_number": "201",
        "users_rung": 2,
        "hangup_cause": "normalClearing",
        "ended_by": "hangup",
        "wait_seconds": 20,
        "talk_seconds": 120,
    }
    assert "2 min 0 s" in contact.text


def test_the_events_in_any_order_and_any_number_of_times_make_the_same_contact() -> None:
    events = answered_call()
    expected = to_contact(fold(events), CONFIG, received_at=T0)
    for order in itertools.permutations([*events, events[1], events[2]]):
        assert to_contact(fold(order), CONFIG, received_at=T0) == expected


def test_arrival_order_does_not_matter_when_the_pbx_sends_timestamps() -> None:
    stamped = [
        cti("hangup", T0, cause="normalClearing", timestamp="2026-03-02T09:02:20+00:00"),
        cti("answer", T0 + timedelta(seconds=1), user="Bram", timestamp="2026-03-02T09:00:20Z"),
        cti("newCall", T0 + timedelta(seconds=2), timestamp="2026-03-02T09:00:00Z"),
    ]
    call = fold(stamped)
    data = to_contact(call, CONFIG, received_at=T0).channel_data
    assert (data["wait_seconds"], data["talk_seconds"]) == (20, 120)


@pytest.mark.parametrize("cause", ["noAnswer", "cancel", "busy", "normalClearing", "congestion"])
def test_an_inbound_call_nobody_answered_becomes_a_callback_task(cause: str) -> None:
    call = fold([cti("newCall", T0), cti("hangup", T0 + timedelta(seconds=45), cause=cause)])
    contact = to_contact(call, CONFIG, received_at=T0)
    assert contact.channel_data["callback"] is True
    assert contact.channel_data["answered"] is False
    assert contact.channel_data["wait_seconds"] == 45
    assert "terugbellen" in contact.text


@pytest.mark.parametrize(("cause", "outcome"), [("forwarded", "forwarded"), ("notFound", "failed")])
def test_a_forwarded_or_misdialled_call_is_no_callback(cause: str, outcome: str) -> None:
    contact = to_contact(
        fold([cti("newCall", T0), cti("hangup", T0, cause=cause)]), CONFIG, received_at=T0
    )
    assert contact.channel_data["callback"] is False
    assert contact.channel_data["outcome"] == outcome


def test_an_anonymous_missed_call_is_recorded_but_cannot_be_called_back() -> None:
    call = fold([cti("newCall", T0, **{"from": "anonymous"}), cti("hangup", T0, cause="cancel")])
    contact = to_contact(call, CONFIG, received_at=T0)
    assert contact.party.phone is None
    assert contact.channel_data["caller"] == "anonymous"
    assert contact.channel_data["callback"] is False
    assert contact.channel_data["outcome"] == "missed"


def test_an_unanswered_outbound_call_is_no_new_callback() -> None:
    call = fold(
        [
            cti("newCall", T0, direction="out", **{"from": "201"}, to="0612345678"),
            cti(
                "hangup", T0, direction="out", **{"from": "201"}, to="0612345678", cause="noAnswer"
            ),
        ]
    )
    contact = to_contact(call, CONFIG, received_at=T0)
    assert contact.direction is Direction.OUTBOUND
    assert contact.party.phone == "+31612345678"
    assert contact.entry_point == "201"
    assert not needs_callback(call, CONFIG)


def test_a_callback_can_be_limited_to_some_causes() -> None:
    strict = CONFIG.model_copy(update={"callback_causes": ["noAnswer"]})
    call = fold([cti("newCall", T0), cti("hangup", T0, cause="cancel")])
    assert not needs_callback(call, strict)


@pytest.mark.parametrize(
    ("dialled", "choice", "subject", "location"),
    [
        ("14020", None, "algemeen", None),
        ("14 020", "1", "parkeren", None),
        ("14020", "2", "afval", "noord"),
        ("14020", "9", "algemeen", None),
        ("14020", "belastingen", "belastingen", None),
        ("(020) 555 0100", None, "vergunningen", "stadhuis"),
        ("020 555 0100", "2", "vergunningen", "stadhuis"),
        ("020 555 0199", None, None, None),
    ],
)
def test_the_dialled_number_and_ivr_choice_give_subject_and_location(
    dialled: str, choice: str | None, subject: str | None, location: str | None
) -> None:
    fields = {"to": dialled} | ({"queue": choice} if choice else {})
    call = fold([cti("newCall", T0, **fields), cti("hangup", T0, to=dialled)])
    contact = to_contact(call, CONFIG, received_at=T0)
    assert (contact.subject, contact.location) == (subject, location)


def test_a_call_is_due_a_settle_time_after_its_hangup_or_after_the_time_out() -> None:
    open_call = fold([cti("newCall", T0)])
    assert not is_due(open_call, T0 + timedelta(hours=3), settle=SETTLE, timeout=TIMEOUT)
    assert is_due(open_call, T0 + TIMEOUT, settle=SETTLE, timeout=TIMEOUT)
    ended = fold([cti("newCall", T0), cti("hangup", T0 + timedelta(seconds=10))])
    assert not is_due(ended, T0 + timedelta(seconds=12), settle=SETTLE, timeout=TIMEOUT)
    assert is_due(ended, T0 + timedelta(seconds=13), settle=SETTLE, timeout=TIMEOUT)


def test_a_call_whose_hangup_never_came_is_published_as_a_callback() -> None:
    call = fold([cti("newCall", T0)])
    contact = to_contact(call, CONFIG, received_at=T0 + TIMEOUT)
    assert contact.channel_data["ended_by"] == "timeout"
    assert contact.channel_data["callback"] is True


def test_a_hangup_alone_is_enough_for_a_contact() -> None:
    contact = to_contact(fold([cti("hangup", T0, cause="noAnswer")]), CONFIG, received_at=T0)
    assert contact.entry_point == "14020"
    assert contact.channel_data["callback"] is True


def test_entry_points_in_the_config_are_checked() -> None:
    with pytest.raises(ValueError, match="entry point 'hello'"):
        PhoneChannelConfig(entry_points={"hello": EntryPointConfig()})
    with pytest.raises(ValueError, match="listed twice"):
        PhoneChannelConfig(entry_points={"14020": EntryPointConfig(), "14 020": EntryPointConfig()})
