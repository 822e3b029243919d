"""What the dossier shows of itself: the read models its HTTP API returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from kanaal.common.contract import Attachment, CaseStatus, Direction


class ContactSummary(BaseModel):
    """Where a contact landed: enough for an adapter's status page or a test to follow it."""

    contact_id: uuid.UUID
    case_ref: str
    case_status: CaseStatus
    party_id: uuid.UUID
    channel: str
    registered_at: datetime


class ContactView(BaseModel):
    """A contact (klantcontact) as an agent reads it."""

    id: uuid.UUID
    case_ref: str
    channel: str
    direction: Direction
    entry_point: str
    source_ref: str
    occurred_at: datetime
    subject: str | None
    location: str | None = Field(None, description="where it took place (counter, mailbox)")
    language: str
    text: str
    attachments: list[Attachment]
    agent: str | None = Field(None, description="who wrote it (outbound)")
    delivery_status: str | None = Field(None, description="sent / failed (outbound)")


class CaseContact(BaseModel):
    id: uuid.UUID
    channel: str
    direction: Direction
    occurred_at: datetime
    entry_point: str
    location: str | None = None
    text: str
    agent: str | None = None
    delivery_status: str | None = None


class TimelineEntry(BaseModel):
    kind: str
    at: datetime
    actor: str | None
    data: dict[str, Any]


class StatusEntry(BaseModel):
    status: CaseStatus
    at: datetime
    actor: str
    reason: str | None


class CaseView(BaseModel):
    """A case (zaak) with its contacts, status history and timeline, oldest first."""

    ref: str
    status: CaseStatus
    subject: str | None
    location: str | None
    party_id: uuid.UUID
    queue: str | None
    agent: str | None
    sla_due_at: datetime | None
    outcome: str | None
    follows: str | None = Field(None, description="the closed case this one follows up")
    opened_at: datetime
    closed_at: datetime | None
    contacts: list[CaseContact]
    status_history: list[StatusEntry]
    timeline: list[TimelineEntry]


class CaseSummary(BaseModel):
    ref: str
    status: CaseStatus
    subject: str | None
    location: str | None = None
    queue: str | None
    agent: str | None
    opened_at: datetime
    closed_at: datetime | None


class PartySummary(BaseModel):
    """A party (partij) in a search result."""

    id: uuid.UUID
    name: str | None
    emails: list[str]
    phones: list[str]
    identifier_types: list[str] = Field(description="which identifiers are known")


class CustomerView(BaseModel):
    """The uniform customer view (uniform klantbeeld): one party across every channel."""

    id: uuid.UUID
    name: str | None
    identifiers: dict[str, str] = Field(
        description="PartijIdentificatoren; the BSN only for roles that may see it"
    )
    identifier_types: list[str]
    emails: list[str]
    phones: list[str]
    preferred_channel: str | None
    language: str | None
    created_at: datetime
    cases: list[CaseSummary] = Field(description="newest first")
    contacts: list[ContactView] = Field(description="every channel together, newest first")


class ClaimResult(BaseModel):
    case_ref: str
    agent: str
    queue: str | None
    claimed: bool = Field(description="false when this agent already held the case")


class StaleItem(BaseModel):
    """The answer to a claim of a work item that no longer stands for work (409)."""

    stale: bool = True
    reason: str = Field(description="claimed, transferred, escalated, moved or closed")
    case_ref: str
    holder: str | None = Field(None, description="the agent or queue that has the case now")


class ReplyAccepted(BaseModel):
    contact_id: uuid.UUID
    case_ref: str
    channel: str
    entry_point: str


class CaseChanged(BaseModel):
    case_ref: str
    status: CaseStatus
    queue: str | None
    agent: str | None


class NoteAdded(BaseModel):
    case_ref: str
    kind: str = Field(description="case.noted or case.called_back")
    at: datetime


class QueueWaiting(BaseModel):
    """What waits in one work queue, as the dossier knows it (stale items not counted)."""

    queue: str
    waiting: int = Field(description="open cases in this queue that no agent has claimed")
    oldest_since: datetime | None = Field(
        None, description="when the longest-waiting of them came into the queue"
    )
    sla_breached: int = Field(description="of those, how many are past their SLA due time")


class MergeResult(BaseModel):
    party_id: uuid.UUID
    merged_party_id: uuid.UUID
    cases_moved: int
    contacts_moved: int


class PurgeCounts(BaseModel):
    cases: int
    contacts: int
    parties: int
    dry_run: bool
