"""Pure checks and normalisers for the identifiers a channel reports about a customer.

Dutch identifiers (BSN, RSIN, KvK, vestigingsnummer) and phone numbers arrive in
many shapes; this module turns them into one canonical form or says precisely why not.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import shortnumberinfo

DEFAULT_REGION = "NL"

_NON_DIGITS = re.compile(r"[\s.\-()/]")


def passes_elfproef(digits: str) -> bool:
    """The 11-test of BSN and RSIN: 9 digits, weights 9..2 and -1, sum divisible by 11."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0


def normalise_bsn(raw: str) -> str:
    """A BSN as 9 digits (an 8-digit BSN gets its leading zero back), checked with the elfproef."""
    digits = _NON_DIGITS.sub("", raw)
    if not digits.isdigit():
        raise ValueError("a BSN has only digits")
    if len(digits) == 8:
        digits = "0" + digits
    if len(digits) != 9:
        raise ValueError("a BSN has 8 or 9 digits")
    if not passes_elfproef(digits):
        raise ValueError("not a valid BSN (elfproef fails)")
    return digits


def normalise_rsin(raw: str) -> str:
    """An RSIN: 9 digits, the same elfproef as the BSN."""
    digits = _NON_DIGITS.sub("", raw)
    if len(digits) != 9 or not passes_elfproef(digits):
        raise ValueError("not a valid RSIN (9 digits, elfproef)")
    return digits


def normalise_kvk_nummer(raw: str) -> str:
    """A Chamber of Commerce (KvK) number: exactly 8 digits."""
    digits = _NON_DIGITS.sub("", raw)
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError("a KvK number has 8 digits")
    return digits


def normalise_vestigingsnummer(raw: str) -> str:
    """A KvK establishment number (vestigingsnummer): exactly 12 digits."""
    digits = _NON_DIGITS.sub("", raw)
    if len(digits) != 12 or not digits.isdigit():
        raise ValueError("a vestigingsnummer has 12 digits")
    return digits


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """A customer's phone number in E.164 (`+31612345678`).

    `06 12345678`, `+31 6 1234 5678` and `0031612345678` are the same number.
    Municipal `14 0xx` numbers and short service numbers (`112`) cannot reach one
    person, so they are refused for a party; a dialled entry point keeps them with
    :func:`normalise_dialled`.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if _is_municipal(number) or _is_short_number(raw, region):
        raise ValueError(
            "a municipal or short service number (such as 14 020) is not a personal phone number"
        )
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its region")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def normalise_dialled(raw: str, region: str = DEFAULT_REGION) -> str:
    """A dialled number (entry point): E.164 for a full number, digits as dialled when short.

    Dutch municipalities answer on `14 0xx` numbers; those stay as dialled (`14020`).
    """
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("not a phone number") from exc
    if _is_municipal(number):
        return str(number.national_number)
    if _is_short_number(raw, region):
        return _NON_DIGITS.sub("", raw)
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number for its region")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _is_municipal(number: phonenumbers.PhoneNumber) -> bool:
    """`14` followed by the area code without its 0: a Dutch municipality's number."""
    return (
        number.country_code == 31
        and re.fullmatch(r"140\d{2,3}", str(number.national_number)) is not None
    )


def _is_short_number(raw: str, region: str) -> bool:
    digits = _NON_DIGITS.sub("", raw)
    if not digits.isdigit() or len(digits) > 6:
        return False
    try:
        number = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(shortnumberinfo.is_valid_short_number_for_region(number, region))
