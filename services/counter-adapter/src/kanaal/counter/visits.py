"""Pure: a kiosk check-in becomes a contact; a desk event moves the visit on and becomes an update.

A visit is one contact (`source_ref` = the local date and the ticket, so a kiosk that
sends the same check-in twice makes one contact). What happens at the desk (called,
served, no show) travels as `ContactUpdate`s with deterministic ids: the contact is
not published again, the dossier records each update on the case timeline.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from kanaal.common.contract import (
    ChannelDataValue,
    ContactMessage,
    ContactUpdate,
    Key,
    Party,
    PartyIdentifiers,
    Phone,
    ShortText,
)
from kanaal.common.identifiers import normalise_bsn
from kanaal.counter.config import CounterChannelConfig, DeskId

Ticket = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$"), AfterValidator(str.upper)
]
AgentId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
UPDATE_NS: Final = uuid.UUID("0c7d5c36-7a53-5d43-9d3e-636f756e7465")


class CheckIn(BaseModel):
    """`POST /api/v1/visits`: a visitor checks in at a kiosk."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    location: Key
    subject: Key = Field(description="the product or subject chosen at the kiosk")
    ticket: Ticket = Field(description="the ticket number the kiosk printed, e.g. A023")
    name: ShortText | None = None
    phone: Phone | None = None
    email: EmailStr | None = Field(None, max_length=254)
    bsn: Annotated[str, AfterValidator(normalise_bsn)] | None = None
    appointment_ref: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "nl"


class VisitStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVED = "served"
    NO_SHOW = "no_show"


class DeskEvent(BaseModel):
    """`POST /api/v1/visits/{id}/events`: what happened at the desk."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    event: Literal["called", "served", "no_show"]
    desk: DeskId | None = Field(None, description="required for called")
    agent: AgentId | None = Field(None, description="the agent's id")
    outcome: Key | None = Field(None, description="served: how it ended, e.g. afgehandeld")
    notes: Annotated[str, StringConstraints(max_length=2_000)] = ""
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="the desk system's id for this event; a resend with it is one event"
    )


class VisitError(ValueError):
    """The request cannot be done; `field` names the body field when it is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ValueError):
    """The event does not fit the visit's state (served after a no-show)."""


@dataclass(frozen=True)
class Visit:
    id: uuid.UUID
    location: str
    ticket: str
    subject: str
    status: VisitStatus
    checked_in_at: datetime
    called_at: datetime | None = None
    desk: str | None = None


def visit_contact(
    check_in: CheckIn, config: CounterChannelConfig, *, received_at: datetime
) -> ContactMessage:
    """The contact of a check-in, or :class:`VisitError` naming what is wrong."""
    location = config.locations.get(check_in.location)
    if location is None:
        known = ", ".join(config.locations) or "none configured"
        raise VisitError(f"unknown location; known: {known}", "location")
    if check_in.subject not in config.subjects_at(check_in.location):
        choices = ", ".join(config.subjects_at(check_in.location))
        raise VisitError(f"unknown subject here; choose one of: {choices}", "subject")
    local = received_at.astimezone(config.zone)
    if not location.is_open(local):
        raise VisitError("the location is closed at this time", "location")
    data: dict[str, ChannelDataValue] = {
        "ticket": check_in.ticket,
        "status": VisitStatus.WAITING.value,
        "appointment_ref": check_in.appointment_ref,
        "checked_in_at_local": local.isoformat(timespec="minutes"),
    }
    return ContactMessage.new(
        channel="counter",
        entry_point=check_in.location,
        source_ref=f"{local.date().isoformat()}:{check_in.ticket}",
        received_at=received_at,
        occurred_at=received_at,
        party=Party(
            name=check_in.name,
            phone=check_in.phone,
            email=check_in.email,
            identifiers=PartyIdentifiers(bsn=check_in.bsn),
        ),
        subject=check_in.subject,
        location=check_in.location,
        language=check_in.language,
        text=f"Baliebezoek, ticket {check_in.ticket}.",
        channel_data={k: v for k, v in data.items() if v is not None},
    )


_NEXT: Final = {
    "called": {VisitStatus.WAITING, VisitStatus.CALLED},
    "served": {VisitStatus.WAITING, VisitStatus.CALLED},
    "no_show": {VisitStatus.WAITING, VisitStatus.CALLED},
}
_STATUS: Final = {
    "called": VisitStatus.CALLED,
    "served": VisitStatus.SERVED,
    "no_show": VisitStatus.NO_SHOW,
}


def update_id(visit_id: uuid.UUID, event: DeskEvent) -> uuid.UUID:
    """The update's deterministic id: the same desk event sent twice is one update."""
    key = event.event_id or hashlib.sha256(event.model_dump_json().encode()).hexdigest()
    return uuid.uuid5(UPDATE_NS, f"{visit_id}:{event.event}:{key}")


def apply_event(
    visit: Visit, event: DeskEvent, config: CounterChannelConfig, *, at: datetime
) -> tuple[Visit, ContactUpdate]:
    """The visit after the desk event, and the update to publish; or why not."""
    location = config.locations[visit.location]
    if event.event == "called" and event.desk is None:
        raise VisitError("a called event needs the desk", "desk")
    if event.desk is not None and event.desk not in location.desks:
        raise VisitError(f"unknown desk here; desks: {', '.join(location.desks)}", "desk")
    if visit.status not in _NEXT[event.event]:
        raise Conflict(f"the visit is {visit.status.value}; it cannot be {event.event} now")
    status = _STATUS[event.event]
    called_at = at if event.event == "called" else visit.called_at
    desk = event.desk or visit.desk
    data: dict[str, ChannelDataValue] = {
        "status": status.value,
        "desk": desk,
        "agent": event.agent,
        "outcome": event.outcome,
        "notes": event.notes or None,
    }
    if event.event == "called":
        data["wait_seconds"] = _seconds(visit.checked_in_at, at)
    elif event.event == "served":
        data["service_seconds"] = _seconds(visit.called_at or visit.checked_in_at, at)
    update = ContactUpdate(
        contact_id=visit.id,
        channel="counter",
        event=event.event,
        channel_data={k: v for k, v in data.items() if v is not None},
        at=at,
    )
    moved = Visit(
        id=visit.id,
        location=visit.location,
        ticket=visit.ticket,
        subject=visit.subject,
        status=status,
        checked_in_at=visit.checked_in_at,
        called_at=called_at,
        desk=desk,
    )
    return moved, update


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))
