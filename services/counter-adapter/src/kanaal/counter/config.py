"""Pure: the `counter:` entry of channels.yaml: locations with desks, opening hours and tokens.

Kiosks and desks authenticate per location; the YAML names the environment variable
that holds each token, never the token itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Annotated, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from kanaal.common.contract import Key, ShortText

EnvName = Annotated[str, StringConstraints(pattern=r"^KANAAL_[A-Z0-9_]+$")]
DeskId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


def parse_range(text: str) -> tuple[time, time | None]:
    """`08:30-17:00` as (start, end); an end of `24:00` is None (until midnight)."""
    match = _RANGE.match(text.strip())
    if match is None:
        raise ValueError(f"opening hours {text!r}: write HH:MM-HH:MM, e.g. 08:30-17:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start = time(h1, m1)
    if h2 == 24:
        if m2:
            raise ValueError(f"opening hours {text!r}: 24:00 is the latest end")
        return start, None
    end = time(h2, m2)
    if end <= start:
        raise ValueError(f"opening hours {text!r}: the end must be after the start")
    return start, end


class LocationConfig(BaseModel):
    """One office with counters (balies)."""

    model_config = ConfigDict(extra="forbid")

    name: ShortText | None = None
    kiosk_token_env: EnvName = Field(description="env var with the token of this office's kiosks")
    desk_token_env: EnvName = Field(description="env var with the token of this office's desks")
    desks: list[DeskId] = Field(min_length=1)
    opening_hours: dict[str, list[str]] | None = Field(
        None, description="weekday (mon..sun) -> ranges HH:MM-HH:MM; unset: always open"
    )
    closed_on: list[date] = Field(default_factory=list, description="holidays and other days")
    subjects: list[Key] | None = Field(None, description="products here; unset: all of them")

    @field_validator("opening_hours", mode="before")
    @classmethod
    def _ranges_as_lists(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("opening_hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for day, ranges in (value or {}).items():
            if day not in WEEKDAYS:
                raise ValueError(f"{day!r} is no weekday; use {', '.join(WEEKDAYS)}")
            for text in ranges:
                parse_range(text)
        return value

    def is_open(self, local: datetime) -> bool:
        """Is this office open at `local` (a time in the organisation's time zone)?"""
        if local.date() in self.closed_on:
            return False
        if self.opening_hours is None:
            return True
        now = local.time()
        for text in self.opening_hours.get(WEEKDAYS[local.weekday()], []):
            start, end = parse_range(text)
            if start <= now and (end is None or now < end):
                return True
        return False


class CounterChannelConfig(BaseModel):
    """The `counter:` entry of channels.yaml."""

    model_config = ConfigDict(extra="forbid")

    outbound: bool = False
    timezone: str = Field("Europe/Amsterdam", description="where opening hours are kept")
    subjects: list[Key] = Field(
        default_factory=lambda: ["algemeen"], min_length=1, description="products at a kiosk"
    )
    locations: dict[Key, LocationConfig] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _location_subjects_known(self) -> CounterChannelConfig:
        for key, location in self.locations.items():
            unknown = set(location.subjects or []) - set(self.subjects)
            if unknown:
                raise ValueError(f"locations.{key}.subjects: not in subjects: {sorted(unknown)}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def subjects_at(self, location: str) -> list[str]:
        return list(self.locations[location].subjects or self.subjects)


def secret_from_env(name: str, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The secret in the environment variable `name`; None when unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return SecretStr(value) if value else None
