"""Party resolution as plain values: which known party a contact's customer facts belong to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kanaal.common.contract import Party, PartyIdentifiers
from kanaal.dossier.parties import (
    IdentifierType,
    KnownParty,
    PartyClaims,
    resolve_party,
)

BSN_A = "111222333"
BSN_B = "123456782"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def known(
    *,
    bsn: str | None = None,
    kvk: str | None = None,
    emails: tuple[str, ...] = (),
    phones: tuple[str, ...] = (),
    age: int = 0,
    name: str | None = "Known",
) -> KnownParty:
    identifiers = {}
    if bsn:
        identifiers[IdentifierType.BSN] = bsn
    if kvk:
        identifiers[IdentifierType.KVK_NUMMER] = kvk
    return KnownParty(
        id=uuid.uuid4(),
        created_at=T0 - timedelta(days=age),
        identifiers=identifiers,
        emails=frozenset(emails),
        phones=frozenset(phones),
        name=name,
    )


def claims(
    *,
    bsn: str | None = None,
    kvk: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    name: str | None = None,
) -> PartyClaims:
    return PartyClaims.from_party(
        Party(
            name=name,
            email=email,
            phone=phone,
            identifiers=PartyIdentifiers(bsn=bsn, kvk_nummer=kvk),
        )
    )


def test_no_candidates_creates_a_new_party_with_every_fact() -> None:
    result = resolve_party(claims(bsn=BSN_A, email="a@x.nl", phone="0612345678", name="A"), [])
    assert result.is_new
    assert result.add_identifiers == {IdentifierType.BSN: BSN_A}
    assert result.add_emails == {"a@x.nl"}
    assert result.add_phones == {"+31612345678"}
    assert result.set_name == "A"


def test_claims_normalise_email_case_and_phone_format() -> None:
    c = claims(email="Jan.Jansen@Example.NL", phone="+31 6 1234 5678")
    assert c.email == "jan.jansen@example.nl"
    assert c.phone == "+31612345678"


def test_a_name_alone_is_anonymous() -> None:
    assert claims(name="Jan").is_anonymous
    assert not claims(email="a@x.nl").is_anonymous


def test_the_same_bsn_matches_even_when_the_email_differs() -> None:
    party = known(bsn=BSN_A, emails=("old@x.nl",))
    result = resolve_party(claims(bsn=BSN_A, email="new@x.nl"), [party])
    assert result.party_id == party.id
    assert result.matched_on == "bsn"
    assert result.add_emails == {"new@x.nl"}


def test_the_strong_identifier_wins_over_an_email_match() -> None:
    by_email = known(emails=("a@x.nl",), age=5)
    by_bsn = known(bsn=BSN_A)
    result = resolve_party(claims(bsn=BSN_A, email="a@x.nl"), [by_email, by_bsn])
    assert result.party_id == by_bsn.id


def test_the_same_email_matches() -> None:
    party = known(emails=("a@x.nl",))
    result = resolve_party(claims(email="A@x.nl", phone="0612345678"), [party])
    assert result.party_id == party.id
    assert result.matched_on == "email"
    assert result.add_phones == {"+31612345678"}
    assert result.add_emails == frozenset()


def test_an_email_match_with_a_different_bsn_is_never_merged() -> None:
    party = known(bsn=BSN_B, emails=("shared@x.nl",))
    result = resolve_party(claims(bsn=BSN_A, email="shared@x.nl"), [party])
    assert result.is_new


def test_an_email_match_without_a_bsn_takes_the_new_bsn() -> None:
    party = known(emails=("a@x.nl",))
    result = resolve_party(claims(bsn=BSN_A, email="a@x.nl"), [party])
    assert result.party_id == party.id
    assert result.add_identifiers == {IdentifierType.BSN: BSN_A}


def test_the_same_phone_matches_when_the_contact_has_no_email() -> None:
    party = known(emails=("a@x.nl",), phones=("+31612345678",))
    result = resolve_party(claims(phone="06-12345678"), [party])
    assert result.party_id == party.id
    assert result.matched_on == "phone"


def test_phone_alone_never_joins_parties_whose_emails_differ() -> None:
    party = known(emails=("a@x.nl",), phones=("+31612345678",))
    result = resolve_party(claims(phone="0612345678", email="b@x.nl"), [party])
    assert result.is_new


def test_phone_matches_a_party_without_email_and_adds_the_email() -> None:
    party = known(phones=("+31612345678",))
    result = resolve_party(claims(phone="0612345678", email="b@x.nl"), [party])
    assert result.party_id == party.id
    assert result.add_emails == {"b@x.nl"}


def test_a_phone_match_with_a_different_bsn_is_never_merged() -> None:
    party = known(bsn=BSN_B, phones=("+31612345678",))
    assert resolve_party(claims(bsn=BSN_A, phone="0612345678"), [party]).is_new


def test_the_oldest_of_several_email_matches_wins() -> None:
    young = known(emails=("a@x.nl",), age=1)
    old = known(emails=("a@x.nl",), age=9)
    assert resolve_party(claims(email="a@x.nl"), [young, old]).party_id == old.id


def test_an_email_match_that_also_shares_the_phone_is_preferred() -> None:
    old = known(emails=("a@x.nl",), age=9)
    both = known(emails=("a@x.nl",), phones=("+31612345678",), age=1)
    result = resolve_party(claims(email="a@x.nl", phone="0612345678"), [old, both])
    assert result.party_id == both.id


def test_an_identifier_held_by_another_party_is_not_copied() -> None:
    person = known(bsn=BSN_A)
    company = known(kvk="12345678")
    result = resolve_party(claims(bsn=BSN_A, kvk="12345678"), [person, company])
    assert result.party_id == person.id
    assert result.add_identifiers == {}


def test_a_known_name_is_kept_and_a_missing_one_filled_in() -> None:
    named = known(emails=("a@x.nl",), name="Old")
    unnamed = known(emails=("b@x.nl",), name=None)
    assert resolve_party(claims(email="a@x.nl", name="New"), [named]).set_name is None
    assert resolve_party(claims(email="b@x.nl", name="New"), [unnamed]).set_name == "New"


# -- the table: who is this customer? ---------------------------------------------------------

KVK_A = "12345678"
KVK_B = "87654321"
PHONE_1 = "+31612345678"
PHONE_2 = "+31687654321"

#: Known parties, by name. Older parties have a higher age.
KNOWN = {
    "jan": {"bsn": BSN_A, "emails": ("jan@x.nl",), "phones": (PHONE_1,), "age": 9},
    "piet": {"bsn": BSN_B, "emails": ("piet@x.nl",), "age": 8},
    "gezin": {"emails": ("gezin@x.nl",), "phones": (PHONE_2,), "age": 7},
    "bakkerij": {"kvk": KVK_A, "emails": ("info@bakkerij.nl",), "age": 6},
    "anoniem": {"phones": ("+31201234567",), "name": None, "age": 5},
    "marie": {"emails": ("marie@x.nl",), "age": 4},
}

IDENTITY_CASES = [
    # (description, candidates, claims, expected party name or "new", matched on)
    ("nothing known yet", [], {"email": "nieuw@x.nl"}, "new", "new"),
    ("same BSN", ["jan"], {"bsn": BSN_A}, "jan", "bsn"),
    ("same BSN, new e-mail address", ["jan"], {"bsn": BSN_A, "email": "jan2@x.nl"}, "jan", "bsn"),
    (
        "same BSN beats an older e-mail match",
        ["jan", "marie"],
        {"bsn": BSN_A, "email": "marie@x.nl"},
        "jan",
        "bsn",
    ),
    ("same KvK number", ["bakkerij"], {"kvk": KVK_A}, "bakkerij", "kvk_nummer"),
    ("same e-mail address", ["marie"], {"email": "marie@x.nl"}, "marie", "email"),
    ("same e-mail address, other case", ["marie"], {"email": "Marie@X.NL"}, "marie", "email"),
    (
        "same e-mail, no BSN yet: learns the BSN",
        ["marie"],
        {"email": "marie@x.nl", "bsn": BSN_A},
        "marie",
        "email",
    ),
    (
        "TRAP: same e-mail, different BSN",
        ["piet"],
        {"email": "piet@x.nl", "bsn": BSN_A},
        "new",
        "new",
    ),
    (
        "TRAP: shared family mailbox, different BSN",
        ["jan"],
        {"email": "jan@x.nl", "bsn": BSN_B},
        "new",
        "new",
    ),
    (
        "TRAP: same e-mail, different KvK number",
        ["bakkerij"],
        {"email": "info@bakkerij.nl", "kvk": KVK_B},
        "new",
        "new",
    ),
    ("same phone, no e-mail on the contact", ["gezin"], {"phone": PHONE_2}, "gezin", "phone"),
    ("same phone, written nationally", ["gezin"], {"phone": "06 87654321"}, "gezin", "phone"),
    (
        "TRAP: same phone, different e-mail",
        ["gezin"],
        {"phone": PHONE_2, "email": "kind@x.nl"},
        "new",
        "new",
    ),
    ("TRAP: same phone, different BSN", ["jan"], {"phone": PHONE_1, "bsn": BSN_B}, "new", "new"),
    (
        "same phone, party without e-mail: joins",
        ["anoniem"],
        {"phone": "020 123 4567", "email": "a@x.nl"},
        "anoniem",
        "phone",
    ),
    (
        "same phone and same e-mail",
        ["gezin"],
        {"phone": PHONE_2, "email": "gezin@x.nl"},
        "gezin",
        "email",
    ),
    (
        "e-mail wins over phone of another party",
        ["gezin", "marie"],
        {"email": "marie@x.nl", "phone": PHONE_2},
        "marie",
        "email",
    ),
    (
        "BSN beats phone of another party",
        ["gezin", "jan"],
        {"bsn": BSN_A, "phone": PHONE_2},
        "jan",
        "bsn",
    ),
    (
        "unknown BSN, known e-mail of a BSN-less party",
        ["gezin"],
        {"bsn": BSN_B, "email": "gezin@x.nl"},
        "gezin",
        "email",
    ),
    (
        "unknown e-mail and phone",
        ["jan", "gezin"],
        {"email": "nieuw@x.nl", "phone": "+31611111111"},
        "new",
        "new",
    ),
    ("a name alone recognises nobody", ["jan"], {"name": "Jan"}, "new", "new"),
    (
        "TRAP: phone shared with a BSN party, different e-mail, no BSN",
        ["jan"],
        {"phone": PHONE_1, "email": "buurman@x.nl"},
        "new",
        "new",
    ),
    ("same phone only, BSN party with e-mail: joins", ["jan"], {"phone": PHONE_1}, "jan", "phone"),
    (
        "KvK company and BSN person stay apart",
        ["bakkerij"],
        {"bsn": BSN_A, "email": "eigenaar@x.nl"},
        "new",
        "new",
    ),
]


@pytest.mark.parametrize(
    ("candidates", "facts", "expected", "matched_on"),
    [case[1:] for case in IDENTITY_CASES],
    ids=[case[0] for case in IDENTITY_CASES],
)
def test_identity_resolution(
    candidates: list[str], facts: dict[str, str], expected: str, matched_on: str
) -> None:
    parties = {name: known(**KNOWN[name]) for name in candidates}  # type: ignore[arg-type]
    result = resolve_party(claims(**facts), parties.values())
    found = next((n for n, p in parties.items() if p.id == result.party_id), "new")
    assert (found, result.matched_on) == (expected, matched_on)


def test_the_identity_table_has_at_least_twenty_cases() -> None:
    assert len(IDENTITY_CASES) >= 20
