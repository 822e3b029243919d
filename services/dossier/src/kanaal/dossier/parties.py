"""Pure party resolution: which known party (partij) a contact's customer facts belong to.

No database here: the store loads the candidate parties and applies the
:class:`Resolution`. The rules, in order: a strong identifier (BSN, KvK-nummer,
RSIN, vestigingsnummer) decides; then the e-mail address; then the phone number.
A party whose strong identifier of the same type differs is never merged into,
and a phone number alone never joins two parties whose e-mail addresses differ.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from kanaal.common.contract import Party


class IdentifierType(StrEnum):
    """PartijIdentificator types, strongest first."""

    BSN = "bsn"
    KVK_NUMMER = "kvk_nummer"
    RSIN = "rsin"
    VESTIGINGSNUMMER = "vestigingsnummer"


class AddressKind(StrEnum):
    """DigitaalAdres kinds the channels report."""

    EMAIL = "email"
    PHONE = "phone"


IDENTIFIER_ORDER: Final = tuple(IdentifierType)


def normalise_email(value: str) -> str:
    """E-mail addresses are matched and stored case-insensitively."""
    return value.strip().casefold()


@dataclass(frozen=True)
class PartyClaims:
    """What one contact says about its customer, normalised for matching."""

    identifiers: Mapping[IdentifierType, str] = field(default_factory=dict)
    email: str | None = None
    phone: str | None = None
    name: str | None = None

    @classmethod
    def from_party(cls, party: Party) -> PartyClaims:
        ids = party.identifiers.model_dump(exclude_none=True)
        return cls(
            identifiers={kind: ids[kind.value] for kind in IDENTIFIER_ORDER if kind.value in ids},
            email=normalise_email(party.email) if party.email else None,
            phone=party.phone,
            name=party.name,
        )

    @property
    def is_anonymous(self) -> bool:
        """Nothing to recognise the customer by (a name alone is not enough)."""
        return not (self.identifiers or self.email or self.phone)


@dataclass(frozen=True)
class KnownParty:
    """A stored party with everything matching looks at."""

    id: uuid.UUID
    created_at: datetime
    identifiers: Mapping[IdentifierType, str] = field(default_factory=dict)
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    name: str | None = None

    def conflicts_with(self, claims: PartyClaims) -> bool:
        """The party holds a strong identifier of a type the claims carry, with another value."""
        return any(
            kind in self.identifiers and self.identifiers[kind] != value
            for kind, value in claims.identifiers.items()
        )


@dataclass(frozen=True)
class Resolution:
    """The outcome: a party to use (None: create one) and the facts to add to it."""

    party_id: uuid.UUID | None
    matched_on: str
    add_identifiers: Mapping[IdentifierType, str] = field(default_factory=dict)
    add_emails: frozenset[str] = frozenset()
    add_phones: frozenset[str] = frozenset()
    set_name: str | None = None

    @property
    def is_new(self) -> bool:
        return self.party_id is None


def resolve_party(claims: PartyClaims, candidates: Iterable[KnownParty]) -> Resolution:
    """Pick the party `claims` belong to among `candidates` (every party sharing a fact)."""
    known = sorted(candidates, key=lambda p: (p.created_at, str(p.id)))
    match, matched_on = _find_match(claims, known)
    if match is None:
        return Resolution(
            party_id=None,
            matched_on="new",
            add_identifiers=dict(claims.identifiers),
            add_emails=frozenset([claims.email] if claims.email else []),
            add_phones=frozenset([claims.phone] if claims.phone else []),
            set_name=claims.name,
        )
    # An identifier another party already holds stays with that party (unique per type).
    owned_elsewhere = {
        (kind, value)
        for party in known
        if party.id != match.id
        for kind, value in party.identifiers.items()
    }
    return Resolution(
        party_id=match.id,
        matched_on=matched_on,
        add_identifiers={
            kind: value
            for kind, value in claims.identifiers.items()
            if kind not in match.identifiers and (kind, value) not in owned_elsewhere
        },
        add_emails=frozenset(
            [claims.email] if claims.email and claims.email not in match.emails else []
        ),
        add_phones=frozenset(
            [claims.phone] if claims.phone and claims.phone not in match.phones else []
        ),
        set_name=claims.name if claims.name and not match.name else None,
    )


def _find_match(claims: PartyClaims, known: list[KnownParty]) -> tuple[KnownParty | None, str]:
    for kind in IDENTIFIER_ORDER:
        value = claims.identifiers.get(kind)
        if value is None:
            continue
        for party in known:
            if party.identifiers.get(kind) == value:
                return party, kind.value
    compatible = [p for p in known if not p.conflicts_with(claims)]
    if claims.email:
        by_email = [p for p in compatible if claims.email in p.emails]
        # Among parties sharing the address, one that also shares the phone is the better fit.
        by_email.sort(key=lambda p: claims.phone is None or claims.phone not in p.phones)
        if by_email:
            return by_email[0], AddressKind.EMAIL.value
    if claims.phone:
        for party in compatible:
            if claims.phone not in party.phones:
                continue
            if claims.email and party.emails and claims.email not in party.emails:
                continue  # same phone, different e-mail: a shared line, not the same person
            return party, AddressKind.PHONE.value
    return None, "new"
