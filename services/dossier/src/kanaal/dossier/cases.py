"""Pure rules for cases (zaken): the shape of a case reference."""

from __future__ import annotations

from typing import Final

from kanaal.common.contract import CASE_REF_RE

CASE_NUMBER_DIGITS: Final = 6
MAX_CASE_NUMBER: Final = 10**CASE_NUMBER_DIGITS - 1


def format_case_ref(year: int, number: int) -> str:
    """`K-<year>-<6 digits>`, e.g. `K-2026-000042`."""
    if not 1000 <= year <= 9999:
        raise ValueError(f"a case year has 4 digits, not {year}")
    if not 1 <= number <= MAX_CASE_NUMBER:
        raise ValueError(f"case number {number} is outside 1..{MAX_CASE_NUMBER} for {year}")
    return f"K-{year:04d}-{number:0{CASE_NUMBER_DIGITS}d}"


def is_case_ref(value: str) -> bool:
    return CASE_REF_RE.fullmatch(value) is not None
