"""Pure: a callback request (from the website or the IVR) in, a callback contact out."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kanaal.common.contract import (
    CaseRef,
    ContactMessage,
    Key,
    Party,
    Phone,
    ShortText,
    UtcDatetime,
)
from kanaal.phone.config import PhoneChannelConfig


class CallbackRequest(BaseModel):
    """`POST /api/v1/callbacks`: please call this number back about this subject."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: Phone = Field(description="the number to call back; normalised to E.164")
    subject: Key
    name: ShortText | None = None
    preferred_from: UtcDatetime | None = Field(None, description="start of the time window")
    preferred_until: UtcDatetime | None = Field(None, description="end of the time window")
    case_ref: CaseRef | None = None
    note: Annotated[str, StringConstraints(max_length=2_000)] = ""
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "nl"
    request_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="the sender's id for this request; a resend with it is one contact"
    )

    @model_validator(mode="after")
    def _window_in_order(self) -> CallbackRequest:
        if (
            self.preferred_from is not None
            and self.preferred_until is not None
            and self.preferred_until <= self.preferred_from
        ):
            raise ValueError("preferred_until must be after preferred_from")
        return self


class UnknownSubject(ValueError):
    pass


def callback_contact(
    request: CallbackRequest, config: PhoneChannelConfig, *, received_at: datetime
) -> ContactMessage:
    subjects = config.callback_subjects()
    if request.subject not in subjects:
        raise UnknownSubject(f"unknown subject; choose one of: {', '.join(subjects)}")
    if request.request_id:
        source_ref = f"callback:{request.request_id}"
    else:
        digest = hashlib.sha256(request.model_dump_json().encode()).hexdigest()
        source_ref = f"callback:sha256:{digest}"
    window = {
        "preferred_from": request.preferred_from.isoformat() if request.preferred_from else None,
        "preferred_until": request.preferred_until.isoformat() if request.preferred_until else None,
    }
    return ContactMessage.new(
        channel="phone",
        entry_point=config.callbacks.entry_point,
        source_ref=source_ref,
        received_at=received_at,
        occurred_at=received_at,
        party=Party(phone=request.phone, name=request.name),
        subject=request.subject,
        case_ref=request.case_ref,
        language=request.language,
        text=request.note or "Terugbelverzoek.",
        channel_data={
            "callback": True,
            "requested_via": "api",
            **{k: v for k, v in window.items() if v is not None},
        },
    )
