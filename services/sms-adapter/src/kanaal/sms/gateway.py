"""Pure: the SMS gateway's webhook in, a contact out; a reply in, the gateway's request out.

The webhook has the shape most SMS gateways send for an inbound message: a JSON body
with the gateway's message `id`, the `originator` (the citizen's number), the
`recipient` (our number, the entry point), the `body` and when it was `received`,
signed with HMAC-SHA256 over the raw body in the `X-Signature` header
(`sha256=<hex>`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from kanaal.common.contract import ContactMessage, Key, Party
from kanaal.common.identifiers import normalise_dialled, normalise_phone

SIGNATURE_HEADER = "X-Signature"
MAX_SMS_CHARS = 1_600  # ten concatenated parts


class SmsNumber(BaseModel):
    """One of our SMS numbers in channels.yaml: what a message to it is about."""

    model_config = ConfigDict(extra="forbid")

    subject: Key | None = None
    location: Key | None = None


class SmsChannelConfig(BaseModel):
    """The `sms:` entry of channels.yaml."""

    model_config = ConfigDict(extra="allow")

    numbers: dict[str, SmsNumber] = Field(default_factory=dict)

    def number(self, dialled: str) -> SmsNumber | None:
        return {sms_entry_point(k): v for k, v in self.numbers.items()}.get(dialled)


def sms_entry_point(raw: str) -> str:
    """Our number as an entry point: E.164, or the digits of an SMS short code (`3010`)."""
    digits = re.sub(r"\s", "", raw)
    if digits.isdigit() and len(digits) <= 6:
        return digits
    return normalise_dialled(raw)


class InboundSms(BaseModel):
    """The gateway's webhook body."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    originator: Annotated[str, StringConstraints(min_length=3, max_length=32)]
    recipient: Annotated[str, StringConstraints(min_length=3, max_length=32)]
    body: Annotated[str, StringConstraints(max_length=MAX_SMS_CHARS)]
    received: AwareDatetime


def signature_is_valid(raw_body: bytes, header: str | None, secret: bytes) -> bool:
    """Constant-time check of `X-Signature: sha256=<hex hmac of the raw body>`."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header.removeprefix("sha256="), expected)


def sign(raw_body: bytes, secret: bytes) -> str:
    """The header value a gateway sends (used by tests and by gateways we simulate)."""
    return "sha256=" + hmac.new(secret, raw_body, hashlib.sha256).hexdigest()


def to_contact(sms: InboundSms, config: SmsChannelConfig, received_at: datetime) -> ContactMessage:
    """Normalise an inbound SMS; raises ValueError (with the field) for what cannot be one."""
    entry_point = sms_entry_point(sms.recipient)
    number = config.number(entry_point)
    if number is None:
        raise ValueError("recipient: not one of our SMS numbers")
    return ContactMessage.new(
        channel="sms",
        entry_point=entry_point,
        source_ref=sms.id,
        occurred_at=sms.received,
        received_at=received_at,
        party=Party(phone=normalise_phone(sms.originator)),
        subject=number.subject,
        location=number.location,
        text=sms.body,
    )


def gateway_request(reply: ContactMessage) -> dict[str, Any]:
    """The gateway's send request for an outbound contact."""
    if reply.party.phone is None:
        raise ValueError("an SMS reply needs the customer's phone number")
    return {
        "originator": reply.entry_point,
        "recipients": [reply.party.phone],
        "body": reply.text[:MAX_SMS_CHARS],
        # The gateway refuses a second message with the same reference: a retry after a
        # crash does not text the citizen twice.
        "reference": str(reply.id),
    }
