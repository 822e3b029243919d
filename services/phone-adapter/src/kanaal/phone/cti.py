"""Pure: a Generic CTI webhook (Zammad-compatible) in, one normalised call event out.

A telephone exchange posts `newCall`, `answer` and `hangup` for every call, JSON or
form-encoded, with `from`, `to`, `direction`, `callId`, `user` (or `user[]`), and
optionally the IVR choice, `answeringNumber` and, on hangup, `cause`. Numbers become
E.164 (region NL by default); a `14 0xx` municipal number stays as dialled.
Anything else a PBX adds is ignored, as Zammad ignores it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from urllib.parse import parse_qs

from kanaal.common.identifiers import normalise_dialled, normalise_phone
from kanaal.phone.config import HangupCause

MAX_FIELD_CHARS: Final = 200
_ANONYMOUS: Final = frozenset(
    {"", "anonymous", "anonym", "unknown", "restricted", "private", "unavailable", "withheld"}
)
_PRINTABLE: Final = re.compile(r"^[\x20-\x7e]+$")


class MalformedEvent(ValueError):
    """The webhook cannot be a call event; the message says which field and why."""


class EventKind(StrEnum):
    NEW_CALL = "newCall"
    ANSWER = "answer"
    HANGUP = "hangup"


class CallDirection(StrEnum):
    IN = "in"
    OUT = "out"


class CallerStatus(StrEnum):
    KNOWN = "known"
    ANONYMOUS = "anonymous"
    #: A number that is no personal number (an internal extension, garbage): kept unknown.
    UNRECOGNISED = "unrecognised"


@dataclass(frozen=True)
class CallEvent:
    """One CTI event, normalised. `customer` is the citizen's side, `ours` the dialled side."""

    call_id: str
    kind: EventKind
    received_at: datetime
    direction: CallDirection | None = None
    customer: str | None = None
    customer_status: CallerStatus | None = None
    ours: str | None = None
    users: tuple[str, ...] = ()
    ivr_choice: str | None = None
    answering_number: str | None = None
    cause: HangupCause | None = None
    #: The PBX's own time of the event (optional `timestamp` field); else the arrival time.
    timestamp: datetime | None = None
    fingerprint: str = field(default="", compare=False)

    @property
    def at(self) -> datetime:
        return self.timestamp or self.received_at

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("received_at", "timestamp"):
            data[key] = data[key].isoformat() if data[key] else None
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CallEvent:
        data: dict[str, Any] = json.loads(text)
        data["kind"] = EventKind(data["kind"])
        data["received_at"] = datetime.fromisoformat(data["received_at"])
        data["timestamp"] = datetime.fromisoformat(data["timestamp"]) if data["timestamp"] else None
        for key, enum in (
            ("direction", CallDirection),
            ("customer_status", CallerStatus),
            ("cause", HangupCause),
        ):
            data[key] = enum(data[key]) if data[key] else None
        data["users"] = tuple(data["users"])
        return cls(**data)


def openapi_body() -> dict[str, Any]:
    """The webhook's fields for the OpenAPI document (the handler reads the raw body itself)."""
    text = {"type": "string", "maxLength": MAX_FIELD_CHARS}
    schema = {
        "type": "object",
        "required": ["event", "callId"],
        "properties": {
            "event": {"type": "string", "enum": [k.value for k in EventKind]},
            "callId": text,
            "from": {**text, "description": "the caller (inbound) or our side (outbound)"},
            "to": {**text, "description": "the dialled number (inbound) or the citizen"},
            "direction": {"type": "string", "enum": [d.value for d in CallDirection]},
            "user": {"type": "array", "items": text, "description": "also as user[]"},
            "queue": {**text, "description": "the IVR choice (or the field cti.ivr_field names)"},
            "answeringNumber": text,
            "cause": {"type": "string", "enum": [c.value for c in HangupCause]},
            "timestamp": {**text, "description": "ISO 8601 with zone, or Unix seconds"},
        },
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "application/x-www-form-urlencoded": {"schema": schema},
        },
    }


def parse_body(raw: bytes, content_type: str | None) -> dict[str, list[str]]:
    """The webhook's fields as lists of strings, from JSON or form encoding."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind == "application/json" or (not kind and raw.lstrip().startswith(b"{")):
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedEvent("body: not valid JSON") from exc
        if not isinstance(data, dict):
            raise MalformedEvent("body: a JSON object is required")
        fields: dict[str, list[str]] = {}
        for key, value in data.items():
            items = value if isinstance(value, list) else [value]
            fields[str(key)] = [_scalar(key, item) for item in items if item is not None]
        return fields
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEvent("body: not UTF-8") from exc
    try:
        return parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=100)
    except ValueError as exc:
        raise MalformedEvent("body: not form-encoded (application/x-www-form-urlencoded)") from exc


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedEvent(f"{key}: must be a string")
    return str(value)


def parse_event(
    fields: Mapping[str, list[str]],
    *,
    received_at: datetime,
    ivr_field: str = "queue",
    region: str = "NL",
) -> CallEvent:
    """Turn the webhook's fields into a :class:`CallEvent`, or say what is wrong."""
    kind_raw = _one(fields, "event", required=True)
    try:
        kind = EventKind(kind_raw or "")
    except ValueError as exc:
        raise MalformedEvent("event: must be one of newCall, answer, hangup") from exc
    call_id = _one(fields, "callId", required=True)
    assert call_id is not None
    direction_raw = _one(fields, "direction", required=kind is EventKind.NEW_CALL)
    direction = None
    if direction_raw is not None:
        try:
            direction = CallDirection(direction_raw)
        except ValueError as exc:
            raise MalformedEvent("direction: must be in or out") from exc
    cause = None
    cause_raw = _one(fields, "cause")
    if cause_raw:
        try:
            cause = HangupCause(cause_raw)
        except ValueError as exc:
            causes = ", ".join(c.value for c in HangupCause)
            raise MalformedEvent(f"cause: must be one of {causes}") from exc
    # `from` is the caller on an inbound call and us on an outbound one.
    from_raw, to_raw = _one(fields, "from"), _one(fields, "to")
    customer_raw, ours_raw = (
        (to_raw, from_raw) if direction is CallDirection.OUT else (from_raw, to_raw)
    )
    ours = None
    if ours_raw:
        ours = _our_number(ours_raw, region, "to" if direction is not CallDirection.OUT else "from")
    elif kind is EventKind.NEW_CALL and direction is CallDirection.IN:
        raise MalformedEvent("to: the dialled number is required on an inbound newCall")
    customer, status = (None, None)
    if customer_raw is not None or kind is EventKind.NEW_CALL:
        customer, status = customer_number(customer_raw or "", region)
    users = tuple(u.strip()[:MAX_FIELD_CHARS] for u in _many(fields, "user") if u.strip())
    event = CallEvent(
        call_id=call_id,
        kind=kind,
        received_at=received_at.astimezone(UTC),
        direction=direction,
        customer=customer,
        customer_status=status,
        ours=ours,
        users=users,
        ivr_choice=(_one(fields, ivr_field) or None),
        answering_number=(_one(fields, "answeringNumber") or None),
        cause=cause,
        timestamp=_timestamp(_one(fields, "timestamp")),
    )
    return _with_fingerprint(event)


def customer_number(raw: str, region: str = "NL") -> tuple[str | None, CallerStatus]:
    """The citizen's number in E.164, or why there is none (anonymous, not a personal number)."""
    if raw.strip().lower() in _ANONYMOUS or not any(c.isdigit() for c in raw):
        return None, CallerStatus.ANONYMOUS
    try:
        return normalise_phone(raw, region), CallerStatus.KNOWN
    except ValueError:
        return None, CallerStatus.UNRECOGNISED


def _our_number(raw: str, region: str, name: str) -> str:
    """Our side: a dialled number (E.164, `14 0xx` as dialled) or an internal extension."""
    try:
        return normalise_dialled(raw, region)
    except ValueError:
        digits = re.sub(r"[\s.\-()/]", "", raw)
        if digits.isdigit() and len(digits) <= 8:
            return digits  # an internal extension
        raise MalformedEvent(f"{name}: not a phone number") from None


def _one(fields: Mapping[str, list[str]], name: str, *, required: bool = False) -> str | None:
    values = fields.get(name) or fields.get(f"{name}[]") or []
    value = values[0].strip() if values else ""
    if not value:
        if required:
            raise MalformedEvent(f"{name}: is required")
        return None if not values else ""
    if len(value) > MAX_FIELD_CHARS or not _PRINTABLE.match(value):
        raise MalformedEvent(f"{name}: at most {MAX_FIELD_CHARS} printable characters")
    return value


def _many(fields: Mapping[str, list[str]], name: str) -> list[str]:
    return [*fields.get(name, []), *fields.get(f"{name}[]", [])][:50]


def _timestamp(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        if re.fullmatch(r"\d{9,11}(\.\d+)?", raw):
            return datetime.fromtimestamp(float(raw), UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedEvent("timestamp: ISO 8601 with a time zone, or Unix seconds") from exc
    if value.tzinfo is None:
        raise MalformedEvent("timestamp: needs a time zone")
    return value.astimezone(UTC)


def _with_fingerprint(event: CallEvent) -> CallEvent:
    """The same event sent twice has the same fingerprint (its arrival time does not count)."""
    data = json.loads(event.to_json())
    data.pop("received_at")
    data.pop("fingerprint")
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return CallEvent(**{**event.__dict__, "fingerprint": digest})


def signature_matches(raw: bytes, header: str | None, key: bytes) -> bool:
    """Constant-time check of `sha256=<hex>` (or bare hex) = HMAC-SHA256(key, raw body)."""
    if not header:
        return False
    given = header.strip()
    if given.lower().startswith("sha256="):
        given = given[len("sha256=") :]
    expected = hmac.new(key, raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given.lower().encode(), expected.encode())


def sign(raw: bytes, key: bytes) -> str:
    """The signature header value a PBX sends: `sha256=<hex>`."""
    return "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
