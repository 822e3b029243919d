"""The dossier store: register contacts, record events, read cases; one transaction each.

Registering a contact is the dossier's main effect and is effectively-once: the
contact's deterministic id is its primary key, so a redelivered or re-ingested
contact changes nothing and announces nothing. Otherwise, in one transaction:
resolve the party, link or open the case, store the contact and its timeline line,
and put the `contact.registered` message in the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact, WorkItem
from kanaal.common.logging import get_logger
from kanaal.common.topology import EVENTS, Event
from kanaal.dossier.cases import format_case_ref
from kanaal.dossier.clock import Clock, utc_now
from kanaal.dossier.database import lock_for
from kanaal.dossier.models import (
    CaseEventRow,
    CaseRefCounterRow,
    CaseRow,
    ContactRow,
    DigitalAddressRow,
    PartyIdentifierRow,
    PartyRow,
)
from kanaal.dossier.outbox import outbox_message
from kanaal.dossier.parties import (
    AddressKind,
    IdentifierType,
    KnownParty,
    PartyClaims,
    Resolution,
    resolve_party,
)
from kanaal.dossier.views import CaseContact, CaseView, ContactSummary, TimelineEntry

log = get_logger(__name__)


@dataclass(frozen=True)
class PartyChoice:
    party_id: uuid.UUID
    matched_on: str


class DossierStore:
    """The dossier's database operations; every public method is one transaction."""

    def __init__(self, engine: AsyncEngine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock

    # -- contacts ---------------------------------------------------------------------------

    async def register(self, contact: ContactMessage) -> RegisteredContact | None:
        """Store `contact`; None when it was stored before (nothing changes, nothing is sent)."""
        claims = PartyClaims.from_party(contact.party)
        async with self.sessions.begin() as session:
            connection = await session.connection()
            await lock_for(connection, f"contact:{contact.id}", *_claim_lock_keys(claims))
            if await session.get(ContactRow, contact.id) is not None:
                log.info("contact already registered", contact_id=str(contact.id))
                return None
            now = self._clock()
            case_row = await self._linked_case(session, contact)
            if case_row is not None and claims.is_anonymous:
                # Nothing to recognise the customer by: the case already knows who it is.
                party = PartyChoice(case_row.party_id, "case")
            else:
                party = await self._resolve_party(session, claims)
            case_is_new = case_row is None
            if case_row is None:
                case_row = await self._open_case(session, contact, party.party_id)
            session.add(_contact_row(contact, case_row.id, party.party_id, now))
            session.add(
                CaseEventRow(
                    case_id=case_row.id,
                    kind=Event.CONTACT_RECEIVED.value,
                    at=now,
                    actor=f"channel:{contact.channel}",
                    message_id=str(contact.id),
                    data={
                        "contact_id": str(contact.id),
                        "channel": contact.channel,
                        "direction": contact.direction.value,
                    },
                )
            )
            registered = RegisteredContact(
                contact=contact,
                party_id=party.party_id,
                case_ref=case_row.ref,
                case_status=CaseStatus(case_row.status),
                case_is_new=case_is_new,
                case_queue=case_row.queue,
                case_agent=case_row.agent,
                registered_at=now,
            )
            session.add(
                outbox_message(
                    registered,
                    exchange=EVENTS,
                    routing_key=Event.CONTACT_REGISTERED.key(contact.channel),
                    message_type=Event.CONTACT_REGISTERED.value,
                    message_id=str(contact.id),
                    now=now,
                )
            )
        log.info(
            "contact registered",
            contact_id=str(contact.id),
            case_ref=registered.case_ref,
            case_is_new=case_is_new,
            party_id=str(party.party_id),
            party_matched_on=party.matched_on,
        )
        return registered

    async def _linked_case(self, session: AsyncSession, contact: ContactMessage) -> CaseRow | None:
        """The case a contact continues: its explicit case ref, else the one it replies to."""
        if contact.case_ref is not None:
            found = await session.scalar(select(CaseRow).where(CaseRow.ref == contact.case_ref))
            if found is not None:
                return found
        if contact.in_reply_to is not None:
            same_channel_first = case((ContactRow.channel == contact.channel, 0), else_=1)
            case_id = await session.scalar(
                select(ContactRow.case_id)
                .where(ContactRow.source_ref == contact.in_reply_to)
                .order_by(same_channel_first, ContactRow.registered_at.desc())
                .limit(1)
            )
            if case_id is not None:
                return await session.get(CaseRow, case_id)
        return None

    async def _open_case(
        self, session: AsyncSession, contact: ContactMessage, party_id: uuid.UUID
    ) -> CaseRow:
        now = self._clock()
        number = await next_case_number(session, now.year)
        row = CaseRow(
            id=uuid.uuid4(),
            ref=format_case_ref(now.year, number),
            subject=contact.subject,
            location=contact.location,
            status=CaseStatus.OPEN.value,
            party_id=party_id,
            queue=None,
            agent=None,
            opened_at=now,
            closed_at=None,
        )
        session.add(row)
        await session.flush()
        session.add(
            CaseEventRow(
                case_id=row.id,
                kind="case.opened",
                at=now,
                actor="dossier",
                message_id=str(contact.id),
                data={"contact_id": str(contact.id), "subject": contact.subject},
            )
        )
        return row

    # -- parties ----------------------------------------------------------------------------

    async def _resolve_party(self, session: AsyncSession, claims: PartyClaims) -> PartyChoice:
        candidates = await self._candidates(session, claims)
        resolution = resolve_party(claims, candidates)
        party_id = await self._apply(session, resolution)
        return PartyChoice(party_id, resolution.matched_on)

    async def _candidates(self, session: AsyncSession, claims: PartyClaims) -> list[KnownParty]:
        """Every party that shares an identifier, the e-mail address or the phone number."""
        conditions = [
            and_(PartyIdentifierRow.type == kind.value, PartyIdentifierRow.value == value)
            for kind, value in claims.identifiers.items()
        ]
        ids: set[uuid.UUID] = set()
        if conditions:
            ids |= set(
                await session.scalars(select(PartyIdentifierRow.party_id).where(or_(*conditions)))
            )
        addresses = [
            and_(DigitalAddressRow.kind == kind.value, DigitalAddressRow.value == value)
            for kind, value in (
                (AddressKind.EMAIL, claims.email),
                (AddressKind.PHONE, claims.phone),
            )
            if value is not None
        ]
        if addresses:
            ids |= set(
                await session.scalars(select(DigitalAddressRow.party_id).where(or_(*addresses)))
            )
        return await self._known_parties(session, ids)

    async def _known_parties(
        self, session: AsyncSession, ids: Iterable[uuid.UUID]
    ) -> list[KnownParty]:
        wanted = sorted(ids)
        if not wanted:
            return []
        parties = (await session.scalars(select(PartyRow).where(PartyRow.id.in_(wanted)))).all()
        identifiers: dict[uuid.UUID, dict[IdentifierType, str]] = {p: {} for p in wanted}
        for ident in await session.scalars(
            select(PartyIdentifierRow).where(PartyIdentifierRow.party_id.in_(wanted))
        ):
            identifiers[ident.party_id][IdentifierType(ident.type)] = ident.value
        emails: dict[uuid.UUID, set[str]] = {p: set() for p in wanted}
        phones: dict[uuid.UUID, set[str]] = {p: set() for p in wanted}
        for address in await session.scalars(
            select(DigitalAddressRow).where(DigitalAddressRow.party_id.in_(wanted))
        ):
            target = emails if address.kind == AddressKind.EMAIL.value else phones
            target[address.party_id].add(address.value)
        return [
            KnownParty(
                id=p.id,
                created_at=p.created_at,
                identifiers=identifiers[p.id],
                emails=frozenset(emails[p.id]),
                phones=frozenset(phones[p.id]),
                name=p.name,
            )
            for p in parties
        ]

    async def _apply(self, session: AsyncSession, resolution: Resolution) -> uuid.UUID:
        now = self._clock()
        if resolution.party_id is None:
            party_id = uuid.uuid4()
            session.add(
                PartyRow(id=party_id, name=resolution.set_name, created_at=now, updated_at=now)
            )
            await session.flush()  # rows without relationships: parents first, by hand
        else:
            party_id = resolution.party_id
            changes: dict[str, Any] = {"updated_at": now}
            if resolution.set_name:
                changes["name"] = resolution.set_name
            if (
                resolution.set_name
                or resolution.add_identifiers
                or resolution.add_emails
                or resolution.add_phones
            ):
                await session.execute(
                    update(PartyRow)
                    .where(PartyRow.id == party_id)
                    .values(**changes)
                    .execution_options(synchronize_session=False)
                )
        for ident_type, value in resolution.add_identifiers.items():
            session.add(PartyIdentifierRow(party_id=party_id, type=ident_type.value, value=value))
        for kind, values in (
            (AddressKind.EMAIL, resolution.add_emails),
            (AddressKind.PHONE, resolution.add_phones),
        ):
            for value in sorted(values):
                session.add(DigitalAddressRow(party_id=party_id, kind=kind.value, value=value))
        return party_id

    # -- events -----------------------------------------------------------------------------

    async def record_routed(self, item: WorkItem, message_id: str) -> bool:
        """Put `contact.routed` on the case's timeline and make its queue the case's owner.

        False when there is nothing to do: the event was recorded before, or the case
        is unknown here.
        """
        kind = Event.CONTACT_ROUTED.value
        async with self.sessions.begin() as session:
            await lock_for(await session.connection(), f"event:{message_id}:{kind}")
            seen = await session.scalar(
                select(CaseEventRow.id).where(
                    CaseEventRow.message_id == message_id, CaseEventRow.kind == kind
                )
            )
            if seen is not None:
                log.info("event already recorded", event_type=kind)
                return False
            case_row = await session.scalar(select(CaseRow).where(CaseRow.ref == item.case_ref))
            if case_row is None:
                log.warning("routed contact names an unknown case", case_ref=item.case_ref)
                return False
            case_row.queue = item.queue
            session.add(
                CaseEventRow(
                    case_id=case_row.id,
                    kind=kind,
                    at=item.routed_at,
                    actor="router",
                    message_id=message_id,
                    data={
                        "contact_id": str(item.contact_id),
                        "queue": item.queue,
                        "rule": item.rule,
                        "priority": item.priority,
                        "sla_due_at": item.sla_due_at.isoformat() if item.sla_due_at else None,
                    },
                )
            )
        log.info("routing recorded", case_ref=item.case_ref, work_queue=item.queue)
        return True

    # -- reading ----------------------------------------------------------------------------

    async def contact_summary(self, contact_id: uuid.UUID) -> ContactSummary | None:
        async with self.sessions() as session:
            found = (
                await session.execute(
                    select(ContactRow, CaseRow)
                    .join(CaseRow, CaseRow.id == ContactRow.case_id)
                    .where(ContactRow.id == contact_id)
                )
            ).first()
        if found is None:
            return None
        contact, case_row = found
        return ContactSummary(
            contact_id=contact.id,
            case_ref=case_row.ref,
            case_status=CaseStatus(case_row.status),
            party_id=contact.party_id,
            channel=contact.channel,
            registered_at=contact.registered_at,
        )

    async def case_view(self, ref: str) -> CaseView | None:
        async with self.sessions() as session:
            case_row = await session.scalar(select(CaseRow).where(CaseRow.ref == ref))
            if case_row is None:
                return None
            contacts = await session.scalars(
                select(ContactRow)
                .where(ContactRow.case_id == case_row.id)
                .order_by(ContactRow.occurred_at, ContactRow.id)
            )
            events = await session.scalars(
                select(CaseEventRow)
                .where(CaseEventRow.case_id == case_row.id)
                .order_by(CaseEventRow.id)
            )
            return CaseView(
                ref=case_row.ref,
                status=CaseStatus(case_row.status),
                subject=case_row.subject,
                location=case_row.location,
                party_id=case_row.party_id,
                queue=case_row.queue,
                agent=case_row.agent,
                opened_at=case_row.opened_at,
                closed_at=case_row.closed_at,
                contacts=[
                    CaseContact(
                        id=c.id, channel=c.channel, direction=c.direction, occurred_at=c.occurred_at
                    )
                    for c in contacts
                ],
                timeline=[
                    TimelineEntry(kind=e.kind, at=e.at, actor=e.actor, data=e.data) for e in events
                ],
            )

    async def count_contacts(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(ContactRow)) or 0)


async def next_case_number(session: AsyncSession, year: int) -> int:
    """The next case number of `year`, atomically: the counter row is locked until commit."""
    bump = (
        update(CaseRefCounterRow)
        .where(CaseRefCounterRow.year == year)
        .values(last=CaseRefCounterRow.last + 1)
        .returning(CaseRefCounterRow.last)
        .execution_options(synchronize_session=False)
    )
    number = await session.scalar(bump)
    if number is None:
        # The year's first case: create the row (a concurrent creator wins harmlessly).
        dialect = (await session.connection()).dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.execute(
            insert(CaseRefCounterRow)
            .values(year=year, last=0)
            .on_conflict_do_nothing(index_elements=["year"])
        )
        number = await session.scalar(bump)
    if number is None:
        raise RuntimeError(f"no case number counter for {year}")
    return int(number)


def _claim_lock_keys(claims: PartyClaims) -> list[str]:
    keys = [f"party:{kind.value}:{value}" for kind, value in claims.identifiers.items()]
    if claims.email:
        keys.append(f"party:email:{claims.email}")
    if claims.phone:
        keys.append(f"party:phone:{claims.phone}")
    return keys


def _contact_row(
    contact: ContactMessage, case_id: uuid.UUID, party_id: uuid.UUID, now: datetime
) -> ContactRow:
    return ContactRow(
        id=contact.id,
        case_id=case_id,
        party_id=party_id,
        channel=contact.channel,
        direction=contact.direction.value,
        source_ref=contact.source_ref,
        entry_point=contact.entry_point,
        occurred_at=contact.occurred_at,
        received_at=contact.received_at,
        subject=contact.subject,
        text=contact.text,
        message=contact.model_dump(mode="json"),
        registered_at=now,
    )
