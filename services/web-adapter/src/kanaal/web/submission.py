"""Pure: a web submission in, a contact out.

The JSON API's request model, the web channel's config, and the mapping to a
`ContactMessage` with a deterministic id, so that the same submission sent twice
(a double click, a retry after a timeout) is one contact.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from kanaal.common.contract import CaseRef, ContactMessage, Key, Party, Phone, ShortText

MAX_WEB_TEXT = 20_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class WebChannelConfig(BaseModel):
    """The `web:` entry of channels.yaml."""

    model_config = ConfigDict(extra="allow")

    form_id: Key = "contactformulier"
    subjects: list[Key] = Field(default_factory=lambda: ["algemeen"], min_length=1)


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


class UnknownSubject(ValueError):
    pass


def source_ref(message: WebMessage, idempotency_key: str | None) -> str:
    """The submission's id: the sender's key when given, else a hash of what was submitted."""
    key = idempotency_key or message.submission_id
    if key:
        return f"submission:{key}"
    digest = hashlib.sha256(message.model_dump_json(exclude={"submission_id"}).encode())
    return f"sha256:{digest.hexdigest()}"


def to_contact(
    message: WebMessage,
    config: WebChannelConfig,
    *,
    received_at: datetime,
    idempotency_key: str | None = None,
) -> ContactMessage:
    if message.subject not in config.subjects:
        raise UnknownSubject(f"unknown subject; choose one of: {', '.join(config.subjects)}")
    return ContactMessage.new(
        channel="web",
        entry_point=config.form_id,
        source_ref=source_ref(message, idempotency_key),
        received_at=received_at,
        occurred_at=received_at,
        party=Party(name=message.name, email=message.email, phone=message.phone),
        subject=message.subject,
        text=message.text,
        case_ref=message.case_ref,
        location=message.location,
    )
