"""Case references: `K-<year>-<6 digits>`, valid for the contract."""

from __future__ import annotations

import pytest

from kanaal.dossier.cases import format_case_ref, is_case_ref


def test_case_ref_pads_the_number_to_six_digits() -> None:
    assert format_case_ref(2026, 42) == "K-2026-000042"
    assert format_case_ref(2026, 999_999) == "K-2026-999999"


def test_formatted_case_refs_match_the_contract_pattern() -> None:
    assert is_case_ref(format_case_ref(2026, 1))
    assert not is_case_ref("K-2026-42")


@pytest.mark.parametrize(("year", "number"), [(2026, 0), (2026, 1_000_000), (999, 1)])
def test_case_ref_refuses_numbers_outside_its_shape(year: int, number: int) -> None:
    with pytest.raises(ValueError, match="case"):
        format_case_ref(year, number)
