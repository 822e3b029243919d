"""Phone numbers and Dutch identifiers: every shape a channel reports becomes one canonical form."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from kanaal.common.contract import Party, PartyIdentifiers
from kanaal.common.identifiers import (
    normalise_bsn,
    normalise_dialled,
    normalise_kvk_nummer,
    normalise_phone,
    normalise_rsin,
    normalise_vestigingsnummer,
)

DIGITS = "0123456789"


def elfproef(digits: str) -> bool:
    """The 11-test written out independently of the library: weights 9..2 and -1."""
    total = sum(int(d) * w for d, w in zip(digits, [9, 8, 7, 6, 5, 4, 3, 2, -1], strict=True))
    return total % 11 == 0


# --- phone numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "06 12345678",
        "+31 6 1234 5678",
        "0031612345678",
        "06-12345678",
        "0612345678",
        "+31612345678",
    ],
)
def test_every_way_of_writing_a_dutch_mobile_number_is_the_same_caller(raw: str) -> None:
    assert normalise_phone(raw) == "+31612345678"


@pytest.mark.parametrize(
    "raw", ["(020) 123 4567", "020-1234567", "+31 20 123 4567", "020 123 45 67"]
)
def test_a_landline_in_brackets_or_with_dashes_becomes_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+31201234567"


def test_a_foreign_number_keeps_its_own_country_code() -> None:
    assert normalise_phone("+44 20 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["14 020", "14020", "14 010", "112"])
def test_a_municipal_or_emergency_number_is_refused_as_a_customers_phone(raw: str) -> None:
    with pytest.raises(ValueError, match="not a personal phone number"):
        normalise_phone(raw)


@pytest.mark.parametrize(
    ("raw", "dialled"), [("14 020", "14020"), ("14020", "14020"), ("112", "112")]
)
def test_a_municipal_or_short_number_is_kept_as_a_dialled_entry_point(
    raw: str, dialled: str
) -> None:
    assert normalise_dialled(raw) == dialled


def test_a_full_dialled_number_becomes_e164() -> None:
    assert normalise_dialled("(020) 123 4567") == "+31201234567"


@pytest.mark.parametrize("raw", ["", "garbage", "bel me", "++31", "06 1234"])
def test_text_that_is_no_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        normalise_phone(raw)


def test_a_party_with_a_municipal_number_is_refused_with_a_message_that_says_why() -> None:
    with pytest.raises(ValidationError) as info:
        Party(phone="14 020")
    assert info.value.errors()[0]["loc"] == ("phone",)
    assert "municipal or short service number" in str(info.value)


def test_a_party_phone_is_stored_in_e164() -> None:
    assert Party(phone="06-12345678").phone == "+31612345678"


@st.composite
def dutch_mobile_in_some_format(draw: st.DrawFn) -> tuple[str, str]:
    """The same mobile number written two ways a person might type it."""
    rest = draw(st.text(DIGITS, min_size=8, max_size=8))
    forms = [
        f"06{rest}",
        f"06 {rest}",
        f"06-{rest}",
        f"+31 6 {rest[:4]} {rest[4:]}",
        f"+316{rest}",
        f"00316{rest}",
        f"(06) {rest}",
    ]
    return draw(st.sampled_from(forms)), draw(st.sampled_from(forms))


@given(dutch_mobile_in_some_format())
def test_the_way_a_mobile_number_is_written_never_changes_who_it_is(forms: tuple[str, str]) -> None:
    first, second = forms
    try:
        expected = normalise_phone(first)
    except ValueError:
        with pytest.raises(ValueError, match="phone number"):
            normalise_phone(second)
        return
    assert normalise_phone(second) == expected


@st.composite
def phone_like_text(draw: st.DrawFn) -> str:
    """A plausible number: a country or area prefix, digits, and the separators people type."""
    prefix, length = draw(
        st.sampled_from(
            [
                ("06", 8),
                ("020", 7),
                ("010", 7),
                ("+31 6", 8),
                ("0031 20", 7),
                ("+44 20", 8),
                ("088", 7),
            ]
        )
    )
    digits = draw(st.text(DIGITS, min_size=length, max_size=length))
    separators = draw(
        st.lists(st.sampled_from(["", " ", "-"]), min_size=len(digits), max_size=len(digits))
    )
    return prefix + "".join(sep + d for sep, d in zip(separators, digits, strict=True))


@given(phone_like_text())
def test_normalise_phone_is_idempotent_on_its_own_output(raw: str) -> None:
    try:
        once = normalise_phone(raw)
    except ValueError:
        assume(False)
        return
    assert once.startswith("+")
    assert once[1:].isdigit()
    assert normalise_phone(once) == once


# --- BSN ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["111222333", "123456782", "1112.22.333", " 123456782 ", "123 456 782"]
)
def test_a_valid_bsn_is_accepted_as_nine_digits(raw: str) -> None:
    assert normalise_bsn(raw) == raw.replace(" ", "").replace(".", "")


def test_an_eight_digit_bsn_gets_its_leading_zero_back() -> None:
    assert elfproef("012345672")
    assert normalise_bsn("12345672") == "012345672"


@pytest.mark.parametrize("raw", ["111222334", "123456789", "987654321"])
def test_a_bsn_with_a_wrong_check_digit_is_refused(raw: str) -> None:
    assert not elfproef(raw)
    with pytest.raises(ValueError, match="elfproef"):
        normalise_bsn(raw)


def test_the_all_zero_bsn_is_refused_although_it_passes_the_sum() -> None:
    assert elfproef("000000000")
    with pytest.raises(ValueError, match="not a valid BSN"):
        normalise_bsn("000000000")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("1234567", "8 or 9 digits"),
        ("1234567890", "8 or 9 digits"),
        ("12345678a", "only digits"),
        ("", "BSN"),
    ],
)
def test_a_bsn_of_the_wrong_shape_says_what_is_wrong(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_bsn(raw)


@given(st.text(DIGITS, min_size=9, max_size=9))
def test_any_nine_digits_are_a_bsn_exactly_when_they_pass_the_elfproef(digits: str) -> None:
    valid = elfproef(digits) and digits != "000000000"
    try:
        normalise_bsn(digits)
    except ValueError:
        assert not valid
    else:
        assert valid


@st.composite
def valid_bsns(draw: st.DrawFn) -> str:
    head = draw(st.text(DIGITS, min_size=8, max_size=8))
    check = sum(int(d) * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
    assume(check < 10 and head != "00000000")
    return head + str(check)


@given(valid_bsns(), st.integers(0, 8), st.integers(1, 9))
def test_a_single_mistyped_digit_in_a_bsn_is_always_caught(
    bsn: str, position: int, change: int
) -> None:
    assert normalise_bsn(bsn) == bsn
    typo = bsn[:position] + str((int(bsn[position]) + change) % 10) + bsn[position + 1 :]
    with pytest.raises(ValueError, match="elfproef"):
        normalise_bsn(typo)


def test_a_party_with_an_invalid_bsn_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        PartyIdentifiers(bsn="123456789")
    assert info.value.errors()[0]["loc"] == ("bsn",)


# --- RSIN, KvK, vestigingsnummer ------------------------------------------------------------


@pytest.mark.parametrize("raw", ["002564440", "123456782", "0025.64.440"])
def test_a_valid_rsin_is_accepted(raw: str) -> None:
    assert normalise_rsin(raw) == raw.replace(".", "")


@pytest.mark.parametrize("raw", ["002564441", "02564440", "000000000", "abcdefghi"])
def test_an_rsin_with_a_wrong_check_digit_or_length_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a valid RSIN"):
        normalise_rsin(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("69599084", "69599084"), ("6959 9084", "69599084"), ("6959-9084", "69599084")],
)
def test_a_kvk_number_is_eight_digits(raw: str, expected: str) -> None:
    assert normalise_kvk_nummer(raw) == expected


@pytest.mark.parametrize("raw", ["6959908", "695990841", "6959908x", ""])
def test_a_kvk_number_of_another_length_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        normalise_kvk_nummer(raw)


@pytest.mark.parametrize(
    ("raw", "expected"), [("000012345678", "000012345678"), ("0000 1234 5678", "000012345678")]
)
def test_a_vestigingsnummer_is_twelve_digits(raw: str, expected: str) -> None:
    assert normalise_vestigingsnummer(raw) == expected


@pytest.mark.parametrize("raw", ["00001234567", "0000123456789", "00001234567x"])
def test_a_vestigingsnummer_of_another_length_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="12 digits"):
        normalise_vestigingsnummer(raw)


def test_party_identifiers_are_stored_canonical() -> None:
    ids = PartyIdentifiers(
        bsn="12345672",
        kvk_nummer="6959 9084",
        rsin="0025.64.440",
        vestigingsnummer="0000 1234 5678",
    )
    assert ids.model_dump() == {
        "bsn": "012345672",
        "kvk_nummer": "69599084",
        "rsin": "002564440",
        "vestigingsnummer": "000012345678",
    }
