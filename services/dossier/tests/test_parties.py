"""Party resolution as plain values: which known party a contact's customer facts belong to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

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
