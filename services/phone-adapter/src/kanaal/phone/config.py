"""Pure: the `phone:` entry of channels.yaml, validated, and the secrets it names.

Dialled numbers (entry points) and IVR choices map to a subject and a location. Tokens
and HMAC keys never sit in the YAML: it names the environment variable holding each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from kanaal.common.contract import Key
from kanaal.common.identifiers import normalise_dialled

EnvName = Annotated[str, StringConstraints(pattern=r"^KANAAL_[A-Z0-9_]+$")]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,31}$")]


class HangupCause(StrEnum):
    """The `cause` of a Generic CTI hangup event."""

    NORMAL_CLEARING = "normalClearing"
    BUSY = "busy"
    CANCEL = "cancel"
    NO_ANSWER = "noAnswer"
    CONGESTION = "congestion"
    NOT_FOUND = "notFound"
    FORWARDED = "forwarded"
    ANSWERED_ELSEWHERE = "answeredElsewhere"


#: Unanswered inbound calls with these causes become callback tasks. `normalClearing`
#: without an answer is a caller who hung up while waiting in the queue.
DEFAULT_CALLBACK_CAUSES: Final = (
    HangupCause.NO_ANSWER,
    HangupCause.CANCEL,
    HangupCause.BUSY,
    HangupCause.NORMAL_CLEARING,
    HangupCause.CONGESTION,
)


class Routing(BaseModel):
    """Where an entry point or an IVR choice sends a call: subject and location."""

    model_config = ConfigDict(extra="forbid")

    subject: Key | None = None
    location: Key | None = None


class EntryPointConfig(Routing):
    """One dialled number: its own subject/location, refined by the caller's IVR choice."""

    ivr: dict[Annotated[str, StringConstraints(min_length=1, max_length=50)], Routing] = Field(
        default_factory=dict, description="IVR choice (queue name or digits) -> subject/location"
    )


class CtiConfig(BaseModel):
    """How the telephone exchange (PBX) authenticates its Generic CTI webhooks."""

    model_config = ConfigDict(extra="forbid")

    token_env: EnvName = Field(
        "KANAAL_CTI_TOKEN", description="env var with the token in /api/v1/cti/{token}"
    )
    hmac_key_env: EnvName | None = Field(
        None, description="env var with the HMAC-SHA256 key; signatures are checked when set"
    )
    signature_header: HeaderName = "X-Kanaal-Signature"
    ivr_field: FieldName = Field(
        "queue", description="the event field that carries the IVR choice (queue, digits, ...)"
    )


class CallbackConfig(BaseModel):
    """`POST /api/v1/callbacks`: callback requests from the website or the IVR."""

    model_config = ConfigDict(extra="forbid")

    token_env: EnvName = "KANAAL_CALLBACK_TOKEN"  # noqa: S105 (the variable's name)
    entry_point: Key = "terugbelverzoek"
    subjects: list[Key] = Field(
        default_factory=list, description="subjects a callback may ask for; empty: all mapped"
    )


class PhoneChannelConfig(BaseModel):
    """The `phone:` entry of channels.yaml."""

    model_config = ConfigDict(extra="forbid")

    outbound: bool = False
    region: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "NL"
    cti: CtiConfig = Field(default_factory=CtiConfig)
    entry_points: dict[str, EntryPointConfig] = Field(
        default_factory=dict, description="dialled number -> subject, location, IVR choices"
    )
    ivr: dict[Annotated[str, StringConstraints(min_length=1, max_length=50)], Routing] = Field(
        default_factory=dict, description="IVR choices that apply on every entry point"
    )
    callback_causes: list[HangupCause] = Field(default_factory=lambda: [*DEFAULT_CALLBACK_CAUSES])
    callbacks: CallbackConfig = Field(default_factory=CallbackConfig)

    @field_validator("entry_points")
    @classmethod
    def _dialled_numbers(cls, value: dict[str, EntryPointConfig]) -> dict[str, EntryPointConfig]:
        """Keys as the CTI events will show them: E.164, or digits for a 14 0xx number."""
        normalised: dict[str, EntryPointConfig] = {}
        for raw, entry in value.items():
            try:
                key = normalise_dialled(str(raw))
            except ValueError as exc:
                raise ValueError(f"entry point {raw!r}: {exc}") from exc
            if key in normalised:
                raise ValueError(f"entry point {raw!r} is listed twice (as {key})")
            normalised[key] = entry
        return normalised

    def routing(self, entry_point: str | None, ivr_choice: str | None) -> Routing:
        """Subject and location of a call: the IVR choice refines the dialled number's."""
        entry = self.entry_points.get(entry_point or "", EntryPointConfig())
        choice = None
        if ivr_choice is not None:
            choice = entry.ivr.get(ivr_choice) or self.ivr.get(ivr_choice)
        if choice is None:
            return Routing(subject=entry.subject, location=entry.location)
        return Routing(
            subject=choice.subject or entry.subject, location=choice.location or entry.location
        )

    def callback_subjects(self) -> list[str]:
        """What a callback request may ask for: the list given, else every mapped subject."""
        if self.callbacks.subjects:
            return list(self.callbacks.subjects)
        found = {e.subject for e in self.entry_points.values()}
        found |= {c.subject for e in self.entry_points.values() for c in e.ivr.values()}
        found |= {c.subject for c in self.ivr.values()}
        return sorted(s for s in found if s)


def secret_from_env(name: str | None, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The secret in the environment variable `name`; None when unset or empty."""
    if name is None:
        return None
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return SecretStr(value) if value else None
