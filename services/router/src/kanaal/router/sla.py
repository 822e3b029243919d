"""Pure SLA arithmetic: `30s`, `4h`, `2d`, counted on the wall clock or in opening hours.

Without a calendar a duration is plain time. With one, `s`, `m` and `h` count only time
inside opening hours on working days, and `d` counts working days (the same time of
day, that many working days later, starting from the next opening moment).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

DURATION_RE: Final = re.compile(r"^(\d{1,6})(s|m|h|d)$")
UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MAX_DAYS_SEARCHED: Final = 3660


@dataclass(frozen=True)
class Duration:
    """An SLA length as written in routing.yaml."""

    amount: int
    unit: Literal["s", "m", "h", "d"]

    @classmethod
    def parse(cls, text: object) -> Duration:
        if isinstance(text, Duration):
            return text
        match = DURATION_RE.match(str(text).strip())
        if match is None or int(match.group(1)) == 0:
            raise ValueError(
                f"{text!r} is not a duration: write a positive number and s, m, h or d "
                "(30s, 15m, 4h, 2d)"
            )
        unit: Literal["s", "m", "h", "d"] = match.group(2)  # type: ignore[assignment]
        return cls(int(match.group(1)), unit)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def seconds(self) -> int:
        return self.amount * UNIT_SECONDS[self.unit]


def _parse_duration(value: object) -> Duration:
    return Duration.parse(value)


DurationField = Annotated[Duration, PlainSerializer(str)]


def _weekdays() -> list[Weekday]:
    return ["mon", "tue", "wed", "thu", "fri"]


class Calendar(BaseModel):
    """Working days and opening hours the SLAs count in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "Europe/Amsterdam"
    working_days: list[Weekday] = Field(default_factory=_weekdays, min_length=1)
    opening_hours: str = Field("08:30-17:00", description="HH:MM-HH:MM, local time")
    holidays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("opening_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        match = re.match(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$", value.strip())
        if match is None:
            raise ValueError("write opening hours as HH:MM-HH:MM, e.g. 08:30-17:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h1, m1) >= (h2, m2):
            raise ValueError("opening hours must be a time range within one day")
        return value.strip()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> tuple[time, time]:
        start, end = self.opening_hours.split("-")
        close = time.max if end == "24:00" else time.fromisoformat(end)
        return time.fromisoformat(start), close

    def is_working_day(self, day: date) -> bool:
        return WEEKDAYS[day.weekday()] in self.working_days and day not in self.holidays


def due_at(start: datetime, sla: Duration, calendar: Calendar | None = None) -> datetime:
    """When a contact that arrived at `start` must have been claimed (UTC)."""
    if calendar is None:
        return (start + timedelta(seconds=sla.seconds)).astimezone(UTC)
    local = start.astimezone(calendar.zone)
    if sla.unit == "d":
        return _add_working_days(local, sla.amount, calendar).astimezone(UTC)
    return _add_open_time(local, sla.seconds, calendar).astimezone(UTC)


def _next_open(local: datetime, calendar: Calendar) -> datetime:
    """`local` itself if it is within opening hours, else the next opening moment."""
    opens, closes = calendar.hours
    day = local.date()
    for _ in range(MAX_DAYS_SEARCHED):
        if calendar.is_working_day(day):
            open_at = datetime.combine(day, opens, local.tzinfo)
            close_at = datetime.combine(day, closes, local.tzinfo)
            if local < open_at:
                return open_at
            if local < close_at:
                return local
        day += timedelta(days=1)
        local = datetime.combine(day, time.min, local.tzinfo)
    raise ValueError("the calendar has no opening hours in the next ten years")


def _add_open_time(local: datetime, seconds: int, calendar: Calendar) -> datetime:
    closes = calendar.hours[1]
    remaining = float(seconds)
    moment = _next_open(local, calendar)
    for _ in range(MAX_DAYS_SEARCHED):
        close_at = datetime.combine(moment.date(), closes, moment.tzinfo)
        available = (close_at - moment).total_seconds()
        if remaining <= available:
            return moment + timedelta(seconds=remaining)
        remaining -= available
        moment = _next_open(close_at + timedelta(microseconds=1), calendar)
    raise ValueError("the calendar has no opening hours in the next ten years")


def _add_working_days(local: datetime, days: int, calendar: Calendar) -> datetime:
    moment = _next_open(local, calendar)
    day = moment.date()
    counted = 0
    for _ in range(MAX_DAYS_SEARCHED):
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            counted += 1
            if counted == days:
                return datetime.combine(day, moment.timetz())
    raise ValueError("the calendar has no working days in the next ten years")
