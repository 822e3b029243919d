"""What the dossier shows of itself: the read models its HTTP API returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from kanaal.common.contract import CaseStatus, Direction


class ContactSummary(BaseModel):
    """Where a contact landed: enough for an adapter's status page or a test to follow it."""

    contact_id: uuid.UUID
    case_ref: str
    case_status: CaseStatus
    party_id: uuid.UUID
    channel: str
    registered_at: datetime


class CaseContact(BaseModel):
    id: uuid.UUID
    channel: str
    direction: Direction
    occurred_at: datetime


class TimelineEntry(BaseModel):
    kind: str
    at: datetime
    actor: str | None
    data: dict[str, Any]


class CaseView(BaseModel):
    """A case (zaak) with its contacts and its timeline, oldest first."""

    ref: str
    status: CaseStatus
    subject: str | None
    location: str | None
    party_id: uuid.UUID
    queue: str | None
    agent: str | None
    opened_at: datetime
    closed_at: datetime | None
    contacts: list[CaseContact]
    timeline: list[TimelineEntry]
