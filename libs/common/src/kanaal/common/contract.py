"""The message contract (schema v1): what every channel publishes and every service reads.

Field names follow DESIGN.md; the Dutch Klantinteracties concept each field stands
for is in its description, so the exported JSON Schema documents itself.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from kanaal.common.identifiers import (
    normalise_bsn,
    normalise_kvk_nummer,
    normalise_phone,
    normalise_rsin,
    normalise_vestigingsnummer,
)

SCHEMA_VERSION: Final = 1

#: The namespace of every contact id: uuid5(KANAAL_NS, "channel:entry_point:source_ref").
KANAAL_NS: Final = uuid.UUID("6f0b3c1e-4a47-5e2b-9a55-6b616e61616c")

MAX_TEXT_CHARS: Final = 100_000
MAX_ATTACHMENTS: Final = 50
MAX_CHANNEL_DATA_KEYS: Final = 50
MAX_CHANNEL_DATA_VALUE_CHARS: Final = 2_000

CASE_REF_PATTERN: Final = r"^K-\d{4}-\d{6}$"
CASE_REF_RE: Final = re.compile(CASE_REF_PATTERN)


def contact_id(channel: str, entry_point: str, source_ref: str) -> uuid.UUID:
    """The deterministic id of a contact: the same source item always yields the same id."""
    return uuid.uuid5(KANAAL_NS, f"{channel}:{entry_point}:{source_ref}")


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
ChannelSlug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,31}$"),
    Field(description="kanaal: email, phone, web, counter, or an integrator's slug"),
]
Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Ref = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=998)]
CaseRef = Annotated[str, StringConstraints(pattern=CASE_REF_PATTERN)]
Phone = Annotated[str, AfterValidator(normalise_phone)]
ChannelDataValue = str | int | float | bool | None


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Channel(StrEnum):
    """The built-in channels; integrators add their own slug."""

    EMAIL = "email"
    PHONE = "phone"
    WEB = "web"
    COUNTER = "counter"


class Contract(BaseModel):
    """Base of every message model: strict about unknown fields, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_TEXT_CHARS)


class PartyIdentifiers(Contract):
    """PartijIdentificator: what identifies a person or organisation for certain."""

    bsn: Annotated[str, AfterValidator(normalise_bsn)] | None = Field(
        None, description="burgerservicenummer, 9 digits, elfproef"
    )
    kvk_nummer: Annotated[str, AfterValidator(normalise_kvk_nummer)] | None = Field(
        None, description="KvK-nummer, 8 digits"
    )
    rsin: Annotated[str, AfterValidator(normalise_rsin)] | None = Field(
        None, description="RSIN, 9 digits, elfproef"
    )
    vestigingsnummer: Annotated[str, AfterValidator(normalise_vestigingsnummer)] | None = Field(
        None, description="KvK vestigingsnummer, 12 digits"
    )


class Party(Contract):
    """Betrokkene / Partij with its DigitaalAdres: what the channel knows of the customer."""

    name: ShortText | None = None
    email: EmailStr | None = Field(None, max_length=254)
    phone: Phone | None = Field(None, description="E.164, parsed with region NL by default")
    identifiers: PartyIdentifiers = Field(default_factory=PartyIdentifiers)

    @field_validator("email")
    @classmethod
    def _lowercase_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        local, _, domain = value.rpartition("@")
        return f"{local}@{domain.lower()}"

    @property
    def is_empty(self) -> bool:
        return not (
            self.name or self.email or self.phone or self.identifiers.model_dump(exclude_none=True)
        )


class Attachment(Contract):
    """A file kept in the attachment store (claim check): bytes never travel on the bus."""

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[str, StringConstraints(pattern=r"^[\w.+-]+/[\w.+-]+$", max_length=127)]
    size: int = Field(ge=0)
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    uri: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]


class ContactMessage(Contract):
    """Klantcontact: one contact through one channel, schema v1."""

    id: uuid.UUID = Field(description="uuid5(KANAAL_NS, 'channel:entry_point:source_ref')")
    schema_version: Literal[1] = SCHEMA_VERSION
    channel: ChannelSlug
    direction: Direction = Direction.INBOUND
    source_ref: Ref = Field(description="the item's id in its channel (Message-ID, callId, ...)")
    entry_point: Ref = Field(description="ingang: mailbox, dialled number, form id, desk")
    occurred_at: UtcDatetime = Field(description="plaatsgevondenOp, UTC")
    received_at: UtcDatetime = Field(description="when the adapter received it, UTC")
    party: Party = Field(default_factory=Party)
    subject: Key | None = Field(None, description="onderwerp, e.g. parkeren, afval, paspoort")
    text: str = Field("", max_length=MAX_TEXT_CHARS, description="inhoud, plain sanitised text")
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "nl"
    location: Key | None = Field(None, description="the physical location it applies to")
    case_ref: CaseRef | None = Field(None, description="zaak reference, e.g. K-2026-000042")
    in_reply_to: Ref | None = Field(None, description="source_ref of the message this answers")
    priority: int = Field(0, ge=0, le=9, description="0 normal .. 9 most urgent")
    confidential: bool = Field(False, description="vertrouwelijk")
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    channel_data: dict[Key, ChannelDataValue] = Field(
        default_factory=dict,
        max_length=MAX_CHANNEL_DATA_KEYS,
        description="small channel-specific facts (IVR choice, call duration, mail headers)",
    )

    @field_validator("channel_data")
    @classmethod
    def _small_values(cls, value: dict[str, ChannelDataValue]) -> dict[str, ChannelDataValue]:
        for key, item in value.items():
            if isinstance(item, str) and len(item) > MAX_CHANNEL_DATA_VALUE_CHARS:
                raise ValueError(
                    f"channel_data[{key!r}] is longer than {MAX_CHANNEL_DATA_VALUE_CHARS} chars"
                )
        return value

    @model_validator(mode="after")
    def _id_is_deterministic(self) -> ContactMessage:
        expected = contact_id(self.channel, self.entry_point, self.source_ref)
        if self.id != expected:
            raise ValueError(
                "id must be uuid5(KANAAL_NS, 'channel:entry_point:source_ref'); "
                f"expected {expected}"
            )
        return self

    @classmethod
    def new(cls, **fields: Any) -> ContactMessage:
        """Build a contact, deriving its id from channel, entry point and source ref."""
        fields.setdefault("received_at", datetime.now(UTC))
        fields.setdefault("occurred_at", fields["received_at"])
        # Ref strips surrounding whitespace, so the id must be derived from the stripped values.
        fields["id"] = contact_id(
            str(fields["channel"]),
            str(fields["entry_point"]).strip(),
            str(fields["source_ref"]).strip(),
        )
        return cls.model_validate(fields)


class CaseStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    CLOSED = "closed"


class RegisteredContact(Contract):
    """What the dossier publishes once a contact is stored: `contact.registered.<channel>`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    contact: ContactMessage
    party_id: uuid.UUID
    case_ref: CaseRef
    case_status: CaseStatus
    case_is_new: bool
    case_queue: str | None = Field(None, description="the case's owning work queue (sticky)")
    case_agent: str | None = Field(None, description="the case's owning agent (sticky)")
    registered_at: UtcDatetime


class WorkItem(Contract):
    """A piece of work in a work queue (werkbak), and the `contact.routed.<channel>` event.

    It carries no message text: an agent reads the contact from the dossier after claiming.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    contact_id: uuid.UUID
    case_ref: CaseRef
    party_id: uuid.UUID
    channel: ChannelSlug
    subject: Key | None = None
    location: Key | None = None
    queue: str = Field(description="the work queue, e.g. work.subject.parkeren")
    rule: str = Field(description="the routing rule that chose the queue")
    priority: int = Field(0, ge=0, le=9)
    sla_due_at: UtcDatetime | None = None
    routed_at: UtcDatetime
    escalation_step: int = Field(
        0, ge=0, description="0 when first routed; n after the n-th escalation"
    )
    agent: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="the case's owning agent, who should get it first (sticky)"
    )


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"


class DeliveryReport(Contract):
    """What an adapter publishes after handling an outbound contact:
    `contact.sent.<channel>` or `contact.failed.<channel>`.

    The outbound contact itself is a `ContactMessage` with `direction = outbound`,
    published by the dossier to `kanaal.outbound` with the channel as routing key.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    contact_id: uuid.UUID = Field(description="the outbound contact's id")
    channel: ChannelSlug
    case_ref: CaseRef | None = None
    status: DeliveryStatus
    channel_ref: Ref | None = Field(
        None, description="the channel's id of what was sent (Message-ID, SMS id, ...)"
    )
    reason: Annotated[str, StringConstraints(max_length=2_000)] | None = Field(
        None, description="why it failed, for people; no personal data"
    )
    reported_at: UtcDatetime


class ContactUpdate(Contract):
    """`contact.updated.<channel>`: what happened to a received contact afterwards.

    A contact is published once (its id is deterministic, the dossier stores it once);
    later facts from the channel (a counter visitor called to desk 3, served, not
    shown) travel as updates: `channel_data` holds the facts to add to the contact's
    `channel_data`, and the dossier records the update on the case timeline.
    `message_id` is deterministic per update, so a redelivery is a no-op.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    contact_id: uuid.UUID = Field(description="the contact this update is about")
    channel: ChannelSlug
    event: Key = Field(description="what happened, e.g. called, served, no_show")
    channel_data: dict[Key, ChannelDataValue] = Field(
        default_factory=dict,
        max_length=MAX_CHANNEL_DATA_KEYS,
        description="facts to add to the contact's channel_data",
    )
    at: UtcDatetime = Field(description="when it happened, UTC")


class CaseEventKind(StrEnum):
    """What happened to a case; also the event's AMQP `type` and routing key."""

    CLAIMED = "case.claimed"
    TRANSFERRED = "case.transferred"
    ESCALATED = "case.escalated"
    CLOSED = "case.closed"


class CaseEvent(Contract):
    """`case.claimed|transferred|escalated|closed` on `kanaal.events`.

    The dossier publishes claims, transfers and closes (it decides them atomically);
    the router publishes escalations when an SLA passes unclaimed.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    event: CaseEventKind
    case_ref: CaseRef
    contact_id: uuid.UUID | None = Field(None, description="the work item's contact, if one")
    queue: str | None = Field(None, description="the work queue the case belongs to after this")
    from_queue: str | None = Field(None, description="the work queue before a move")
    agent: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        None, description="the agent's id (claimed, closed)"
    )
    reason: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    outcome: Key | None = Field(None, description="how a closed case ended")
    at: UtcDatetime


class RejectedInput(Contract):
    """What an adapter could not turn into a contact, on `dead.intake.<channel>`.

    The input itself stays where the adapter keeps it (an error folder, a 4xx answer);
    this record says where and why, so nothing is dropped silently.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    channel: ChannelSlug
    entry_point: Ref
    source_ref: Ref | None = Field(None, description="the item's id in its channel, if known")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
    kept_at: Annotated[str, StringConstraints(max_length=2_000)] | None = Field(
        None, description="where the input is kept (e.g. the mailbox's error folder and UID)"
    )
    channel_data: dict[Key, ChannelDataValue] = Field(
        default_factory=dict, max_length=MAX_CHANNEL_DATA_KEYS
    )
    rejected_at: UtcDatetime


#: Every model that travels on the bus, by the name of its JSON Schema file.
SCHEMAS: Final[dict[str, type[BaseModel]]] = {
    "contact.v1": ContactMessage,
    "contact-registered.v1": RegisteredContact,
    "work-item.v1": WorkItem,
    "delivery-report.v1": DeliveryReport,
    "rejected-input.v1": RejectedInput,
    "case-event.v1": CaseEvent,
    "contact-update.v1": ContactUpdate,
}
