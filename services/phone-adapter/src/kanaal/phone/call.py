"""Pure: the events of one call, in any order and any number of times, folded into one contact.

A call is published once, when its outcome is known: after its hangup (plus a short
settle time for events that arrive late), or after a time-out when the hangup never
comes. Its lifecycle (answered by, ring and talk time, hangup cause) is in
`channel_data`; an inbound call nobody answered is a callback task (`callback: true`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from kanaal.common.contract import ChannelDataValue, ContactMessage, Direction, Party
from kanaal.phone.config import HangupCause, PhoneChannelConfig
from kanaal.phone.cti import CallDirection, CallerStatus, CallEvent, EventKind

#: The entry point of a call whose dialled number never arrived.
UNKNOWN_ENTRY_POINT = "onbekend"

T = TypeVar("T")

_ORDER = {EventKind.NEW_CALL: 0, EventKind.ANSWER: 1, EventKind.HANGUP: 2}


class Outcome(StrEnum):
    ANSWERED = "answered"
    MISSED = "missed"
    FORWARDED = "forwarded"
    FAILED = "failed"


@dataclass(frozen=True)
class Call:
    """What the events of one call say together."""

    call_id: str
    direction: CallDirection
    customer: str | None
    customer_status: CallerStatus
    ours: str | None
    ivr_choice: str | None
    users: tuple[str, ...]
    started_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    answering_number: str | None
    ended_at: datetime | None
    cause: HangupCause | None
    first_received_at: datetime
    hangup_received_at: datetime | None
    has_new_call: bool

    @property
    def answered(self) -> bool:
        return self.answered_at is not None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None


def fold(events: Iterable[CallEvent]) -> Call:
    """The call as its events describe it; order and duplicates do not matter."""
    ordered = sorted(events, key=lambda e: (e.at, _ORDER[e.kind], e.received_at))
    if not ordered:
        raise ValueError("a call needs at least one event")
    # The newCall is the authority on who called whom; other events fill the gaps.
    by_authority = sorted(ordered, key=lambda e: _ORDER[e.kind])
    answers = [e for e in ordered if e.kind is EventKind.ANSWER]
    hangups = sorted(
        (e for e in ordered if e.kind is EventKind.HANGUP), key=lambda e: e.received_at
    )
    new_calls = [e for e in ordered if e.kind is EventKind.NEW_CALL]
    customer_event = next((e for e in by_authority if e.customer_status is not None), None)
    ivr = next((e.ivr_choice for e in reversed(ordered) if e.ivr_choice), None)
    first_answer = answers[0] if answers else None
    hangup = hangups[0] if hangups else None
    return Call(
        call_id=ordered[0].call_id,
        direction=_first(e.direction for e in by_authority) or CallDirection.IN,
        customer=customer_event.customer if customer_event else None,
        customer_status=(
            customer_event.customer_status
            if customer_event and customer_event.customer_status
            else CallerStatus.ANONYMOUS
        ),
        ours=_first(e.ours for e in by_authority),
        ivr_choice=ivr,
        users=tuple(dict.fromkeys(u for e in new_calls for u in e.users)),
        started_at=new_calls[0].at if new_calls else ordered[0].at,
        answered_at=first_answer.at if first_answer else None,
        answered_by=(first_answer.users[0] if first_answer and first_answer.users else None),
        answering_number=_first(e.answering_number for e in [*answers, *hangups]),
        ended_at=hangup.at if hangup else None,
        cause=hangup.cause if hangup else None,
        first_received_at=min(e.received_at for e in ordered),
        hangup_received_at=hangup.received_at if hangup else None,
        has_new_call=bool(new_calls),
    )


def _first(values: Iterable[T | None]) -> T | None:
    return next((v for v in values if v is not None), None)


def is_due(call: Call, now: datetime, *, settle: timedelta, timeout: timedelta) -> bool:
    """Is the call's outcome known: hung up a settle time ago, or silent past the time-out."""
    if call.hangup_received_at is not None:
        return now >= call.hangup_received_at + settle
    return now >= call.first_received_at + timeout


def outcome(call: Call) -> Outcome:
    if call.answered:
        return Outcome.ANSWERED
    if call.cause in (HangupCause.FORWARDED, HangupCause.ANSWERED_ELSEWHERE):
        return Outcome.FORWARDED
    if call.cause in (HangupCause.CONGESTION, HangupCause.NOT_FOUND):
        return Outcome.FAILED
    return Outcome.MISSED


def needs_callback(call: Call, config: PhoneChannelConfig) -> bool:
    """An inbound call nobody answered, from a number we can call back, ending as configured.

    A call whose hangup never came (time-out) counts as missed: calling back once too
    often is better than losing a citizen.
    """
    if call.direction is not CallDirection.IN or call.answered or call.customer is None:
        return False
    return call.cause is None or call.cause in config.callback_causes


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds()))


def to_contact(call: Call, config: PhoneChannelConfig, *, received_at: datetime) -> ContactMessage:
    """The one contact of a call (`source_ref` = callId), with its lifecycle in channel_data."""
    route = config.routing(call.ours, call.ivr_choice)
    callback = needs_callback(call, config)
    result = outcome(call)
    data: dict[str, ChannelDataValue] = {
        "call_direction": call.direction.value,
        "outcome": result.value,
        "answered": call.answered,
        "callback": callback,
        "caller": call.customer_status.value,
        "ivr_choice": call.ivr_choice,
        "answered_by": call.answered_by,
        "answering_number": call.answering_number,
        "users_rung": len(call.users),
        "hangup_cause": call.cause.value if call.cause else None,
        "ended_by": "hangup" if call.ended else "timeout",
        "wait_seconds": _seconds(call.started_at, call.answered_at or call.ended_at),
        "talk_seconds": _seconds(call.answered_at, call.ended_at) if call.answered else 0,
    }
    return ContactMessage.new(
        channel="phone",
        direction=Direction.INBOUND if call.direction is CallDirection.IN else Direction.OUTBOUND,
        entry_point=call.ours or UNKNOWN_ENTRY_POINT,
        source_ref=call.call_id,
        occurred_at=call.started_at,
        received_at=received_at,
        party=Party(phone=call.customer),
        subject=route.subject,
        location=route.location,
        text=summary(call, result, callback),
        channel_data={k: v for k, v in data.items() if v is not None},
    )


def summary(call: Call, result: Outcome, callback: bool) -> str:
    """A line for the agent, in Dutch, without personal data."""
    kind = "Inkomend" if call.direction is CallDirection.IN else "Uitgaand"
    if result is Outcome.ANSWERED:
        talk = _seconds(call.answered_at, call.ended_at)
        length = f" ({talk // 60} min {talk % 60} s)" if talk is not None else ""
        return f"{kind} gesprek, beantwoord{length}."
    if callback:
        return f"{kind} gesprek niet beantwoord: terugbellen."
    if result is Outcome.FORWARDED:
        return f"{kind} gesprek doorgeschakeld."
    if call.customer is None and call.direction is CallDirection.IN:
        return f"{kind} gesprek niet beantwoord; nummer onbekend, terugbellen niet mogelijk."
    return f"{kind} gesprek niet beantwoord."
