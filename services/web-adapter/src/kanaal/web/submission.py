"""Pure: a web submission in, a contact out.

The JSON API's request model, the web channel's config, and the mapping to a
`ContactMessage` with a deterministic id, so that the same submission sent twice
(a double click, a retry after a timeout) is one contact.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from kanaal.common.contract import (
    Attachment,
    CaseRef,
    ContactMessage,
    Key,
    Party,
    Phone,
    ShortText,
)
from kanaal.web.attachments import SIGNATURES

MAX_WEB_TEXT = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class WebChannelConfig(BaseModel):
    """The `web:` entry of channels.yaml."""

    model_config = ConfigDict(extra="allow")

    form_id: Key = "contactformulier"
    organisation: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        "Gemeente Voorbeeld", description="the name the form and the status page show"
    )
    subjects: list[Key] = Field(default_factory=lambda: ["algemeen"], min_length=1)
    attachment_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png"],
        description="types an upload may have (checked on its first bytes)",
    )
    notify: EmailNotice | None = Field(
        None, description="tell the citizen by e-mail that an answer waits (never its text)"
    )

    @field_validator("attachment_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SIGNATURES))
        if unknown:
            raise ValueError(
                f"unknown type(s) {', '.join(unknown)}; known: {', '.join(SIGNATURES)}"
            )
        return value


class EmailNotice(BaseModel):
    """`channels.web.notify`: the mail that says an answer is on the status page."""

    model_config = ConfigDict(extra="forbid")

    mailbox: Annotated[str, StringConstraints(min_length=3, max_length=254)] = Field(
        description="the e-mail adapter's mailbox the notice is sent from"
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=2_000)] = (
        "Er staat een antwoord voor u klaar over uw bericht aan de gemeente. "
        "U leest het op: {status_url}"
    )

    @field_validator("text")
    @classmethod
    def _has_link(cls, value: str) -> str:
        if "{status_url}" not in value:
            raise ValueError("the text must hold {status_url}, where the link goes")
        return value


WebChannelConfig.model_rebuild()


class WebMessage(BaseModel):
    """`POST /api/v1/messages`: what a website or e-form system sends."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: ShortText | None = None
    email: EmailStr | None = Field(None, max_length=254)
    phone: Phone | None = None
    subject: Key
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_WEB_TEXT)]
    case_ref: CaseRef | None = None
    location: Key | None = None
    submission_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="the sender's id for this submission; a resend with it is one contact"
    )

    @model_validator(mode="after")
    def _printable_text(self) -> WebMessage:
        object.__setattr__(self, "text", _CONTROL.sub("", self.text))
        return self


class ReplyMessage(BaseModel):
    """A citizen's reply from the status page."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_WEB_TEXT)]
    submission_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _printable_text(self) -> ReplyMessage:
        object.__setattr__(self, "text", _CONTROL.sub("", self.text))
        return self


class UnknownSubject(ValueError):
    pass


def content_digest(message: BaseModel, attachments: Sequence[Attachment] = ()) -> str:
    """A hash of what was submitted (not its submission id), files included."""
    digest = hashlib.sha256(message.model_dump_json(exclude={"submission_id"}).encode())
    for attachment in attachments:
        digest.update(attachment.sha256.encode())
    return digest.hexdigest()


def source_ref(
    message: WebMessage, idempotency_key: str | None, attachments: Sequence[Attachment] = ()
) -> str:
    """The submission's id: the sender's key when given, else a hash of what was submitted."""
    key = idempotency_key or message.submission_id
    if key:
        return f"submission:{key}"
    return f"sha256:{content_digest(message, attachments)}"


def to_contact(
    message: WebMessage,
    config: WebChannelConfig,
    *,
    received_at: datetime,
    idempotency_key: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> ContactMessage:
    if message.subject not in config.subjects:
        raise UnknownSubject(f"unknown subject; choose one of: {', '.join(config.subjects)}")
    return ContactMessage.new(
        channel="web",
        entry_point=config.form_id,
        source_ref=source_ref(message, idempotency_key, attachments),
        attachments=list(attachments),
        received_at=received_at,
        occurred_at=received_at,
        party=Party(name=message.name, email=message.email, phone=message.phone),
        subject=message.subject,
        text=message.text,
        case_ref=message.case_ref,
        location=message.location,
    )


def reply_contact(
    reply: ReplyMessage,
    config: WebChannelConfig,
    *,
    thread_id: str,
    subject: str | None,
    case_ref: str | None,
    in_reply_to: str | None,
    received_at: datetime,
    attachments: Sequence[Attachment] = (),
) -> ContactMessage:
    """A reply from a status page: a new contact on the thread's case.

    It carries no party: the dossier finds the customer through the case (or the
    contact it answers), so the citizen need not type their details again.
    """
    digest = content_digest(reply, attachments)
    key = f"{reply.submission_id}:{digest}" if reply.submission_id else digest
    return ContactMessage.new(
        channel="web",
        entry_point=config.form_id,
        source_ref=f"status-reply:{thread_id}:{key}",
        received_at=received_at,
        occurred_at=received_at,
        subject=subject if subject in config.subjects else None,
        text=reply.text,
        case_ref=case_ref,
        in_reply_to=in_reply_to,
        attachments=list(attachments),
    )


#: What the form says for each problem, in Dutch, by field and pydantic error type.
_FIELD_HINTS: dict[str, str] = {
    "name": "Vul een naam in van ten hoogste 200 tekens.",
    "email": "Vul een geldig e-mailadres in, zoals naam@voorbeeld.nl.",
    "phone": "Vul een geldig telefoonnummer in, zoals 06 12345678.",
    "subject": "Kies een onderwerp uit de lijst.",
    "case_ref": "Een zaaknummer ziet er zo uit: K-2026-000042.",
    "location": "Kies een geldige locatie.",
    "submission_id": "Laad het formulier opnieuw en probeer het nog eens.",
}


def form_errors(exc: ValidationError) -> dict[str, str]:
    """Per form field, one Dutch sentence on what to fix (the first problem wins)."""
    found: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        field = str(error["loc"][0]) if error["loc"] else "text"
        if field in found:
            continue
        if field == "text":
            if error["type"] in ("missing", "string_too_short"):
                found[field] = "Vul uw bericht in."
            else:
                found[field] = f"Uw bericht is te lang: ten hoogste {MAX_WEB_TEXT} tekens."
        else:
            found[field] = _FIELD_HINTS.get(field, "Dit veld is niet goed ingevuld.")
    return found
