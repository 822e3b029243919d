"""The dossier store: every read and every change of the dossier, one transaction each.

Registering a contact is the dossier's main effect and is effectively-once: the
contact's deterministic id is its primary key, so a redelivered or re-ingested
contact changes nothing and announces nothing. Otherwise, in one transaction:
resolve the party, link, reopen or open the case, store the contact and its timeline
line, and put the `contact.registered` message in the outbox. Intake registers
contacts in small batches (one transaction for many) so it keeps up under load.

Agents' actions (claim, reply, transfer, close) take the case's lock, decide with
the pure rules of :mod:`kanaal.dossier.cases`, and write their events to the outbox
in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from kanaal.common.contract import (
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    ContactMessage,
    ContactUpdate,
    DeliveryReport,
    Direction,
    Party,
    RegisteredContact,
    WorkItem,
)
from kanaal.common.logging import get_logger
from kanaal.common.topology import EVENTS, OUTBOUND, WORK, Event
from kanaal.dossier.cases import (
    TYPED_PARTY_CHANNELS,
    CaseState,
    ClosedCaseAction,
    EarlierContact,
    EscalationOutcome,
    KnownCase,
    QueueReason,
    choose_reply_route,
    decide_claim,
    decide_escalation,
    describe_update,
    format_case_ref,
    link_case,
    on_contact_for_closed_case,
)
from kanaal.dossier.clock import Clock, utc_now
from kanaal.dossier.database import lock_for
from kanaal.dossier.models import (
    CaseEventRow,
    CaseRefCounterRow,
    CaseRow,
    CaseStatusRow,
    ContactRow,
    DigitalAddressRow,
    OutboxRow,
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
    normalise_email,
    resolve_party,
)
from kanaal.dossier.views import (
    CaseChanged,
    CaseContact,
    CaseSummary,
    CaseView,
    ClaimResult,
    ContactSummary,
    ContactView,
    CustomerView,
    MergeResult,
    NoteAdded,
    PartySummary,
    PurgeCounts,
    QueueWaiting,
    ReplyAccepted,
    StaleItem,
    StatusEntry,
    TimelineEntry,
)

log = get_logger(__name__)

DEFAULT_REOPEN_WINDOW = timedelta(days=14)

T = TypeVar("T")


class NotFound(LookupError):
    """The case or party does not exist."""


class Conflict(Exception):
    """The change cannot be made in the case's or party's current state (HTTP 409)."""

    def __init__(self, reason: str, detail: str, stale: StaleItem | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.stale = stale


class Unprocessable(ValueError):
    """The request names something that cannot be used (HTTP 422)."""


class ContactNotYetKnown(LookupError):
    """An update names a contact the dossier has not stored (yet): try again later."""


@dataclass(frozen=True)
class PartyChoice:
    party_id: uuid.UUID
    matched_on: str


@dataclass(frozen=True)
class Actor:
    """Who acts on a case through the API."""

    id: str
    supervisor: bool = False


class DossierStore:
    """The dossier's database operations; every public method is one transaction."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock = utc_now,
        reopen_window: timedelta = DEFAULT_REOPEN_WINDOW,
    ) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._clock = clock
        self.reopen_window = reopen_window

    # -- contacts ---------------------------------------------------------------------------

    async def register(self, contact: ContactMessage) -> RegisteredContact | None:
        """Store `contact`; None when it was stored before (nothing changes, nothing is sent)."""
        [registered] = await self.register_many([contact])
        return registered

    async def register_many(
        self, contacts: Sequence[ContactMessage]
    ) -> list[RegisteredContact | None]:
        """Store several contacts in one transaction, in order; None for each seen before."""
        keys: set[str] = set()
        for contact in contacts:
            keys.add(f"contact:{contact.id}")
            keys.update(_claim_lock_keys(PartyClaims.from_party(contact.party)))
        results: list[RegisteredContact | None] = []
        async with self.sessions.begin() as session:
            # All locks up front and in order: two replicas never wait on each other crosswise.
            await lock_for(await session.connection(), *keys)
            seen = set(
                await session.scalars(
                    select(ContactRow.id).where(ContactRow.id.in_([c.id for c in contacts]))
                )
            )
            for contact in contacts:
                if contact.id in seen:
                    results.append(None)
                    continue
                seen.add(contact.id)
                results.append(await self._register_in(session, contact))
        for contact, registered in zip(contacts, results, strict=True):
            if registered is None:
                log.info("contact already registered", contact_id=str(contact.id))
            else:
                log.info(
                    "contact registered",
                    contact_id=str(contact.id),
                    case_ref=registered.case_ref,
                    case_is_new=registered.case_is_new,
                    party_id=str(registered.party_id),
                )
        return results

    async def _register_in(
        self, session: AsyncSession, contact: ContactMessage
    ) -> RegisteredContact:
        claims = PartyClaims.from_party(contact.party)
        now = self._clock()
        named = await self._named_case(session, contact.case_ref)
        thread = await self._thread_case(session, contact)
        if thread is not None and claims.is_anonymous:
            # Nothing to recognise the customer by, but it answers our message: the case knows.
            party = PartyChoice(thread.party_id, "case")
        else:
            party = await self._resolve_party(session, claims)
        link = link_case(
            contact.case_ref,
            _known_case(named) if named is not None else None,
            _known_case(thread) if thread is not None else None,
            party.party_id,
            party_proven=contact.channel not in TYPED_PARTY_CHANNELS,
        )
        case_row: CaseRow | None = None
        if link.case is not None:
            case_row = named if named is not None and named.id == link.case.id else thread
        await self._note_preferences(session, party, contact)
        case_is_new = case_row is None
        if case_row is not None and case_row.status == CaseStatus.CLOSED.value:
            assert case_row.closed_at is not None
            action = on_contact_for_closed_case(case_row.closed_at, now, self.reopen_window)
            if action is ClosedCaseAction.REOPEN:
                self._reopen(session, case_row, contact, now)
            else:
                follows = case_row
                case_row = await self._open_case(session, contact, party.party_id, follows)
                case_is_new = True
        elif case_row is None:
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
        if link.refused is not None:
            # Kept for the agent on the contact's own case; nothing of that case is shown.
            session.add(
                CaseEventRow(
                    case_id=case_row.id,
                    kind="case.noted",
                    at=now,
                    actor="dossier",
                    message_id=str(contact.id),
                    data={
                        "text": link.note,
                        "contact_id": str(contact.id),
                        "named_case_ref": link.refused_ref,
                        "reason": link.refused.value,
                    },
                )
            )
            log.info(
                "case reference not followed",
                contact_id=str(contact.id),
                named_case_ref=link.refused_ref,
                reason=link.refused.value,
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
        await session.flush()
        return registered

    async def _named_case(self, session: AsyncSession, case_ref: str | None) -> CaseRow | None:
        """The case a contact names; whether it may join it is :func:`link_case`'s to say."""
        if case_ref is None:
            return None
        found: CaseRow | None = await session.scalar(select(CaseRow).where(CaseRow.ref == case_ref))
        return found

    async def _thread_case(self, session: AsyncSession, contact: ContactMessage) -> CaseRow | None:
        """The case of the message a contact answers (`in_reply_to`), as its channel threads it.

        Only messages of the contact's own channel count: our answers, by our source_ref
        or by the id the channel gave them when sending (an e-mail's Message-ID), and the
        customer's earlier messages through the same entry point. Anything else a sender
        can put in a header proves nothing.
        """
        quoted = contact.in_reply_to
        if quoted is None:
            return None
        answered = or_(
            and_(
                ContactRow.direction == Direction.OUTBOUND.value,
                or_(ContactRow.source_ref == quoted, ContactRow.channel_ref == quoted),
            ),
            and_(
                ContactRow.direction == Direction.INBOUND.value,
                ContactRow.entry_point == contact.entry_point,
                ContactRow.source_ref == quoted,
            ),
        )
        named_first = case((CaseRow.ref == contact.case_ref, 0), else_=1)
        found: CaseRow | None = await session.scalar(
            select(CaseRow)
            .join(ContactRow, ContactRow.case_id == CaseRow.id)
            .where(ContactRow.channel == contact.channel, answered)
            .order_by(named_first, ContactRow.registered_at.desc())
            .limit(1)
        )
        return found

    async def _open_case(
        self,
        session: AsyncSession,
        contact: ContactMessage,
        party_id: uuid.UUID,
        follows: CaseRow | None = None,
    ) -> CaseRow:
        now = self._clock()
        number = await next_case_number(session, now.year)
        row = CaseRow(
            id=uuid.uuid4(),
            ref=format_case_ref(now.year, number),
            subject=contact.subject or (follows.subject if follows else None),
            location=contact.location or (follows.location if follows else None),
            status=CaseStatus.OPEN.value,
            party_id=party_id,
            # A follow-up stays with the team that handled the closed case (sticky).
            queue=follows.queue if follows else None,
            queue_reason=QueueReason.ROUTED.value if follows and follows.queue else None,
            agent=None,
            sla_due_at=None,
            outcome=None,
            follows_case_id=follows.id if follows else None,
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
                data={
                    "contact_id": str(contact.id),
                    "subject": contact.subject,
                    "follows": follows.ref if follows else None,
                },
            )
        )
        reason = f"contact {contact.id}" + (f", follows {follows.ref}" if follows else "")
        self._status(session, row, CaseStatus.OPEN, "dossier", reason, now)
        if follows is not None:
            session.add(
                CaseEventRow(
                    case_id=follows.id,
                    kind="case.followed_up",
                    at=now,
                    actor="dossier",
                    message_id=str(contact.id),
                    data={"contact_id": str(contact.id), "by": row.ref},
                )
            )
        return row

    def _reopen(
        self, session: AsyncSession, row: CaseRow, contact: ContactMessage, now: datetime
    ) -> None:
        row.status = CaseStatus.OPEN.value
        row.closed_at = None
        row.outcome = None
        row.agent = None  # whoever closed it may be away; the case's queue takes it again
        session.add(
            CaseEventRow(
                case_id=row.id,
                kind="case.reopened",
                at=now,
                actor="dossier",
                message_id=str(contact.id),
                data={"contact_id": str(contact.id)},
            )
        )
        self._status(session, row, CaseStatus.OPEN, "dossier", f"reopened by {contact.id}", now)

    def _status(
        self,
        session: AsyncSession,
        row: CaseRow,
        status: CaseStatus,
        actor: str,
        reason: str | None,
        now: datetime,
    ) -> None:
        row.status = status.value
        session.add(
            CaseStatusRow(case_id=row.id, status=status.value, at=now, actor=actor, reason=reason)
        )

    # -- parties ----------------------------------------------------------------------------

    async def _resolve_party(self, session: AsyncSession, claims: PartyClaims) -> PartyChoice:
        candidates = await self._candidates(session, claims)
        resolution = resolve_party(claims, candidates)
        party_id = await self._apply(session, resolution)
        return PartyChoice(party_id, resolution.matched_on)

    async def _note_preferences(
        self, session: AsyncSession, party: PartyChoice, contact: ContactMessage
    ) -> None:
        """A party's preferred channel and language: the first it used, until changed."""
        if contact.direction is not Direction.INBOUND:
            return
        values: dict[str, Any]
        if party.matched_on == "new":
            values = {"preferred_channel": contact.channel, "language": contact.language}
        else:
            values = {
                "preferred_channel": func.coalesce(PartyRow.preferred_channel, contact.channel),
                "language": func.coalesce(PartyRow.language, contact.language),
            }
        await session.execute(
            update(PartyRow)
            .where(PartyRow.id == party.party_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

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
        await session.flush()
        return party_id

    async def merge_parties(
        self, party_id: uuid.UUID, other_id: uuid.UUID, actor: Actor
    ) -> MergeResult:
        """Merge `other_id` into `party_id`; refused when their strong identifiers conflict."""
        if party_id == other_id:
            raise Unprocessable("a party cannot be merged with itself")
        now = self._clock()
        async with self.sessions.begin() as session:
            await lock_for(await session.connection(), f"party:{party_id}", f"party:{other_id}")
            found = {p.id: p for p in await self._known_parties(session, [party_id, other_id])}
            if party_id not in found or other_id not in found:
                raise NotFound("no party with this id")
            keep, other = found[party_id], found[other_id]
            clashes = sorted(
                kind.value
                for kind, value in other.identifiers.items()
                if kind in keep.identifiers and keep.identifiers[kind] != value
            )
            if clashes:
                raise Conflict(
                    "conflicting_identifiers",
                    "the parties hold different values for " + ", ".join(clashes),
                )
            await session.execute(
                delete(PartyIdentifierRow).where(PartyIdentifierRow.party_id == other_id)
            )
            await session.execute(
                delete(DigitalAddressRow).where(DigitalAddressRow.party_id == other_id)
            )
            await session.flush()
            for kind, value in other.identifiers.items():
                if kind not in keep.identifiers:
                    session.add(PartyIdentifierRow(party_id=party_id, type=kind.value, value=value))
            for address_kind, values, known in (
                (AddressKind.EMAIL, other.emails, keep.emails),
                (AddressKind.PHONE, other.phones, keep.phones),
            ):
                for value in sorted(values - known):
                    session.add(
                        DigitalAddressRow(party_id=party_id, kind=address_kind.value, value=value)
                    )
            keep_row = await session.get(PartyRow, party_id)
            other_row = await session.get(PartyRow, other_id)
            assert keep_row is not None
            assert other_row is not None
            keep_row.name = keep_row.name or other_row.name
            keep_row.preferred_channel = keep_row.preferred_channel or other_row.preferred_channel
            keep_row.language = keep_row.language or other_row.language
            keep_row.updated_at = now
            moved_cases = list(
                await session.scalars(select(CaseRow).where(CaseRow.party_id == other_id))
            )
            contacts = await session.execute(
                update(ContactRow)
                .where(ContactRow.party_id == other_id)
                .values(party_id=party_id)
                .execution_options(synchronize_session=False)
            )
            merge_id = str(uuid.uuid4())
            for row in moved_cases:
                row.party_id = party_id
                session.add(
                    CaseEventRow(
                        case_id=row.id,
                        kind="party.merged",
                        at=now,
                        actor=actor.id,
                        message_id=f"{merge_id}:{row.ref}",
                        data={"party_id": str(party_id), "merged_party_id": str(other_id)},
                    )
                )
            await session.flush()
            await session.delete(other_row)
        log.info(
            "parties merged", party_id=str(party_id), merged_party_id=str(other_id), agent=actor.id
        )
        return MergeResult(
            party_id=party_id,
            merged_party_id=other_id,
            cases_moved=len(moved_cases),
            contacts_moved=int(getattr(contacts, "rowcount", 0) or 0),
        )

    # -- events from elsewhere --------------------------------------------------------------

    async def _seen(self, session: AsyncSession, message_id: str, kind: str) -> bool:
        await lock_for(await session.connection(), f"event:{message_id}:{kind}")
        found = await session.scalar(
            select(CaseEventRow.id).where(
                CaseEventRow.message_id == message_id, CaseEventRow.kind == kind
            )
        )
        if found is not None:
            log.info("event already recorded", event_type=kind)
        return found is not None

    async def record_routed(self, item: WorkItem, message_id: str) -> bool:
        """Put `contact.routed` on the case's timeline; its queue and SLA become the case's.

        False when there is nothing to do: the event was recorded before, or the case
        is unknown here. A case that was transferred or escalated meanwhile keeps its queue.
        """
        kind = Event.CONTACT_ROUTED.value
        async with self.sessions.begin() as session:
            if await self._seen(session, message_id, kind):
                return False
            case_row = await self._case_for_update(session, item.case_ref)
            if case_row is None:
                log.warning("routed contact names an unknown case", case_ref=item.case_ref)
                return False
            moved_away = case_row.queue_reason in (
                QueueReason.TRANSFERRED.value,
                QueueReason.ESCALATED.value,
            )
            if not moved_away and case_row.agent is None:
                case_row.queue = item.queue
                case_row.queue_reason = QueueReason.ROUTED.value
            if item.sla_due_at is not None:
                case_row.sla_due_at = item.sla_due_at
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

    async def record_delivery(self, report: DeliveryReport, message_id: str, kind: str) -> bool:
        """`contact.sent` / `contact.failed` of an answer: on the outbound contact and timeline."""
        async with self.sessions.begin() as session:
            if await self._seen(session, message_id, kind):
                return False
            contact = await session.get(ContactRow, report.contact_id)
            case_row: CaseRow | None = None
            if contact is not None:
                contact.delivery_status = report.status.value
                if report.channel_ref is not None:
                    contact.channel_ref = report.channel_ref
                case_row = await session.get(CaseRow, contact.case_id)
            elif report.case_ref is not None:
                case_row = await session.scalar(
                    select(CaseRow).where(CaseRow.ref == report.case_ref)
                )
            if case_row is None:
                log.warning("delivery report for an unknown contact", event_type=kind)
                return False
            session.add(
                CaseEventRow(
                    case_id=case_row.id,
                    kind=kind,
                    at=report.reported_at,
                    actor=f"channel:{report.channel}",
                    message_id=message_id,
                    data={
                        "contact_id": str(report.contact_id),
                        "status": report.status.value,
                        "channel_ref": report.channel_ref,
                        "reason": report.reason,
                    },
                )
            )
        log.info("delivery recorded", event_type=kind, contact_id=str(report.contact_id))
        return True

    async def record_update(self, update: ContactUpdate, message_id: str) -> bool:
        """`contact.updated` (a counter visit called, served, not shown) on the contact's case.

        False when it was recorded before. The update may overtake its contact (they
        travel on different queues): :class:`ContactNotYetKnown` hands it back for a retry.
        An update from another channel than the contact's is :class:`Unprocessable`.
        """
        kind = Event.CONTACT_UPDATED.value
        async with self.sessions.begin() as session:
            if await self._seen(session, message_id, kind):
                return False
            contact = await session.get(ContactRow, update.contact_id)
            if contact is None:
                raise ContactNotYetKnown(f"no contact {update.contact_id} stored yet")
            if contact.channel != update.channel:
                raise Unprocessable(
                    f"an update from {update.channel} about a {contact.channel} contact"
                )
            session.add(
                CaseEventRow(
                    case_id=contact.case_id,
                    kind=kind,
                    at=update.at,
                    actor=f"channel:{update.channel}",
                    message_id=message_id,
                    data={
                        "text": describe_update(update.event, update.channel_data),
                        "contact_id": str(update.contact_id),
                        "channel": update.channel,
                        "event": update.event,
                        "channel_data": update.channel_data,
                    },
                )
            )
        log.info("contact update recorded", contact_id=str(update.contact_id), update=update.event)
        return True

    async def record_case_event(self, event: CaseEvent, message_id: str) -> bool:
        """A `case.*` event from the bus onto the timeline; an escalation moves the case.

        The dossier's own claims, transfers and closes come back here too: they were
        recorded when they were made, under the same message id, so they change nothing.
        """
        kind = event.event.value
        async with self.sessions.begin() as session:
            if await self._seen(session, message_id, kind):
                return False
            case_row = await self._case_for_update(session, event.case_ref)
            if case_row is None:
                log.warning("case event names an unknown case", case_ref=event.case_ref)
                return False
            data: dict[str, Any] = {
                "contact_id": str(event.contact_id) if event.contact_id else None,
                "queue": event.queue,
                "from_queue": event.from_queue,
                "agent": event.agent,
                "reason": event.reason,
                "outcome": event.outcome,
            }
            if event.event is CaseEventKind.ESCALATED:
                outcome = decide_escalation(_state(case_row), event.from_queue)
                data["applied"] = outcome.value
                if outcome is EscalationOutcome.APPLIED and event.queue:
                    data["from_queue"] = event.from_queue or case_row.queue
                    case_row.queue = event.queue
                    case_row.queue_reason = QueueReason.ESCALATED.value
            session.add(
                CaseEventRow(
                    case_id=case_row.id,
                    kind=kind,
                    at=event.at,
                    actor=event.agent or "router",
                    message_id=message_id,
                    data=data,
                )
            )
        log.info("case event recorded", event_type=kind, case_ref=event.case_ref)
        return True

    # -- agents' actions --------------------------------------------------------------------

    async def _case_for_update(self, session: AsyncSession, ref: str) -> CaseRow | None:
        await lock_for(await session.connection(), f"case:{ref}")
        query = select(CaseRow).where(CaseRow.ref == ref)
        if (await session.connection()).dialect.name == "postgresql":
            query = query.with_for_update()
        row: CaseRow | None = await session.scalar(query)
        return row

    async def _workable_case(self, session: AsyncSession, ref: str, actor: Actor) -> CaseRow:
        row = await self._case_for_update(session, ref)
        if row is None:
            raise NotFound("no case with this reference")
        if row.status == CaseStatus.CLOSED.value:
            raise Conflict("closed", "the case is closed")
        if row.agent is not None and row.agent != actor.id and not actor.supervisor:
            raise Conflict("claimed", "another agent has claimed the case")
        return row

    async def claim(self, ref: str, actor: Actor, contact_id: uuid.UUID, queue: str) -> ClaimResult:
        """Take the work item (`contact_id` from `queue`): exactly one agent wins."""
        now = self._clock()
        async with self.sessions.begin() as session:
            row = await self._case_for_update(session, ref)
            if row is None:
                raise NotFound("no case with this reference")
            decision = decide_claim(_state(row), actor.id, queue)
            if not decision.won:
                assert decision.stale is not None
                stale = StaleItem(reason=decision.stale.value, case_ref=ref, holder=decision.holder)
                raise Conflict(decision.stale.value, f"stale work item: {stale.reason}", stale)
            if decision.changed:
                first_claim = row.agent is None
                row.agent = actor.id
                if row.queue is None:
                    row.queue = queue
                    row.queue_reason = QueueReason.ROUTED.value
                if first_claim:
                    self._status(
                        session, row, CaseStatus.IN_PROGRESS, actor.id, f"claimed from {queue}", now
                    )
                    event = CaseEvent(
                        event=CaseEventKind.CLAIMED,
                        case_ref=ref,
                        contact_id=contact_id,
                        queue=row.queue,
                        agent=actor.id,
                        at=now,
                    )
                    self._case_event(session, row, event, actor.id)
        if decision.changed:
            log.info("case claimed", case_ref=ref, agent=actor.id, work_queue=queue)
        return ClaimResult(case_ref=ref, agent=actor.id, queue=row.queue, claimed=decision.changed)

    def _case_event(
        self,
        session: AsyncSession,
        row: CaseRow,
        event: CaseEvent,
        actor: str,
        data: dict[str, Any] | None = None,
    ) -> str:
        """A case event on the timeline and in the outbox, under one new message id."""
        message_id = str(uuid.uuid4())
        session.add(
            CaseEventRow(
                case_id=row.id,
                kind=event.event.value,
                at=event.at,
                actor=actor,
                message_id=message_id,
                data=data
                or event.model_dump(
                    mode="json", exclude={"schema_version", "event", "case_ref", "at"}
                ),
            )
        )
        session.add(
            outbox_message(
                event,
                exchange=EVENTS,
                routing_key=event.event.value,
                message_type=event.event.value,
                message_id=message_id,
                now=event.at,
            )
        )
        return message_id

    async def reply(
        self,
        ref: str,
        actor: Actor,
        text: str,
        outbound_channels: Iterable[str],
        *,
        channel: str | None = None,
        entry_point: str | None = None,
        idempotency_key: str | None = None,
    ) -> ReplyAccepted:
        """An agent's answer: an outbound contact on the case, sent through `kanaal.outbound`."""
        now = self._clock()
        async with self.sessions.begin() as session:
            row = await self._workable_case(session, ref, actor)
            party = await session.get(PartyRow, row.party_id)
            assert party is not None
            inbound = list(
                await session.scalars(
                    select(ContactRow)
                    .where(
                        ContactRow.party_id == row.party_id,
                        ContactRow.direction == Direction.INBOUND.value,
                    )
                    .order_by(ContactRow.occurred_at.desc(), ContactRow.registered_at.desc())
                    .limit(200)
                )
            )
            earlier = [
                EarlierContact(c.channel, c.entry_point, c.source_ref, c.case_id == row.id)
                for c in inbound
            ]
            try:
                route = choose_reply_route(
                    earlier,
                    outbound_channels,
                    channel=channel,
                    entry_point=entry_point,
                    preferred_channel=party.preferred_channel,
                )
            except ValueError as exc:
                raise Unprocessable(str(exc)) from exc
            answered = next(
                (c for c in inbound if c.channel == route.channel and c.case_id == row.id),
                next((c for c in inbound if c.channel == route.channel), None),
            )
            source_ref = (
                f"reply:{ref}:{idempotency_key}" if idempotency_key else f"reply:{uuid.uuid4()}"
            )
            contact = ContactMessage.new(
                channel=route.channel,
                direction=Direction.OUTBOUND,
                source_ref=source_ref,
                entry_point=route.entry_point,
                received_at=now,
                occurred_at=now,
                party=await self._reply_party(session, party, answered),
                subject=row.subject,
                text=text,
                language=party.language or "nl",
                location=row.location,
                case_ref=ref,
                in_reply_to=route.in_reply_to,
            )
            if await session.get(ContactRow, contact.id) is not None:
                return ReplyAccepted(
                    contact_id=contact.id,
                    case_ref=ref,
                    channel=route.channel,
                    entry_point=route.entry_point,
                )
            stored = _contact_row(contact, row.id, row.party_id, now)
            stored.agent = actor.id
            session.add(stored)
            session.add(
                CaseEventRow(
                    case_id=row.id,
                    kind="case.replied",
                    at=now,
                    actor=actor.id,
                    message_id=str(contact.id),
                    data={"contact_id": str(contact.id), "channel": route.channel},
                )
            )
            session.add(
                outbox_message(
                    contact,
                    exchange=OUTBOUND,
                    routing_key=route.channel,
                    message_type=Event.CONTACT_OUTBOUND.value,
                    message_id=str(contact.id),
                    now=now,
                )
            )
        log.info("reply queued", case_ref=ref, contact_id=str(contact.id), agent=actor.id)
        return ReplyAccepted(
            contact_id=contact.id,
            case_ref=ref,
            channel=route.channel,
            entry_point=route.entry_point,
        )

    async def _reply_party(
        self, session: AsyncSession, party: PartyRow, answered: ContactRow | None
    ) -> Party:
        """Where the answer is addressed: the addresses of the contact it answers, else known."""
        said: dict[str, Any] = dict(answered.message.get("party") or {}) if answered else {}
        # Newest first into a dict: the oldest address of each kind is what remains.
        addresses = await session.execute(
            select(DigitalAddressRow.kind, DigitalAddressRow.value)
            .where(DigitalAddressRow.party_id == party.id)
            .order_by(DigitalAddressRow.id.desc())
        )
        stored = {str(kind): str(value) for kind, value in addresses.all()}
        email = said.get("email") or stored.get(AddressKind.EMAIL.value)
        phone = said.get("phone") or stored.get(AddressKind.PHONE.value)
        return Party(name=party.name, email=email, phone=phone)

    async def transfer(self, ref: str, actor: Actor, queue: str, reason: str) -> CaseChanged:
        """Move the case to another work queue: `case.transferred` and a new work item there."""
        now = self._clock()
        async with self.sessions.begin() as session:
            row = await self._workable_case(session, ref, actor)
            if row.queue == queue and row.agent is None:
                raise Conflict("same_queue", f"the case is already in {queue}")
            last = await session.scalar(
                select(ContactRow)
                .where(
                    ContactRow.case_id == row.id, ContactRow.direction == Direction.INBOUND.value
                )
                .order_by(ContactRow.occurred_at.desc())
                .limit(1)
            )
            if last is None:
                raise Unprocessable("the case has no inbound contact to make a work item of")
            from_queue = row.queue
            row.queue = queue
            row.queue_reason = QueueReason.TRANSFERRED.value
            row.agent = None
            if row.status != CaseStatus.OPEN.value:
                self._status(
                    session, row, CaseStatus.OPEN, actor.id, f"transferred to {queue}", now
                )
            event = CaseEvent(
                event=CaseEventKind.TRANSFERRED,
                case_ref=ref,
                contact_id=last.id,
                queue=queue,
                from_queue=from_queue,
                agent=actor.id,
                reason=reason,
                at=now,
            )
            message_id = self._case_event(session, row, event, actor.id)
            item = WorkItem(
                contact_id=last.id,
                case_ref=ref,
                party_id=row.party_id,
                channel=last.channel,
                subject=row.subject,
                location=row.location,
                queue=queue,
                rule="transfer",
                priority=int(last.message.get("priority") or 0),
                sla_due_at=row.sla_due_at,
                routed_at=now,
            )
            session.add(
                outbox_message(
                    item,
                    exchange=WORK,
                    routing_key=queue,
                    message_type=Event.WORK_ITEM.value,
                    message_id=message_id,
                    now=now,
                )
            )
        log.info("case transferred", case_ref=ref, work_queue=queue, agent=actor.id)
        return CaseChanged(case_ref=ref, status=CaseStatus(row.status), queue=queue, agent=None)

    async def close(self, ref: str, actor: Actor, outcome: str) -> CaseChanged:
        """Close the case with an outcome: `case.closed`."""
        now = self._clock()
        async with self.sessions.begin() as session:
            row = await self._workable_case(session, ref, actor)
            row.closed_at = now
            row.outcome = outcome
            self._status(session, row, CaseStatus.CLOSED, actor.id, f"outcome: {outcome}", now)
            event = CaseEvent(
                event=CaseEventKind.CLOSED,
                case_ref=ref,
                queue=row.queue,
                agent=actor.id,
                outcome=outcome,
                at=now,
            )
            self._case_event(session, row, event, actor.id)
        log.info("case closed", case_ref=ref, outcome=outcome, agent=actor.id)
        return CaseChanged(case_ref=ref, status=CaseStatus.CLOSED, queue=row.queue, agent=row.agent)

    async def assign(self, ref: str, actor: Actor, agent: str) -> CaseChanged:
        """A supervisor gives the case to an agent (published as `case.claimed` for them)."""
        now = self._clock()
        async with self.sessions.begin() as session:
            row = await self._workable_case(session, ref, Actor(actor.id, supervisor=True))
            previous = row.agent
            row.agent = agent
            if row.status != CaseStatus.IN_PROGRESS.value:
                self._status(
                    session, row, CaseStatus.IN_PROGRESS, actor.id, f"assigned to {agent}", now
                )
            event = CaseEvent(
                event=CaseEventKind.CLAIMED,
                case_ref=ref,
                queue=row.queue,
                agent=agent,
                reason=f"assigned by {actor.id}" + (f", was {previous}" if previous else ""),
                at=now,
            )
            self._case_event(session, row, event, actor.id)
        log.info("case assigned", case_ref=ref, agent=agent, by=actor.id)
        return CaseChanged(
            case_ref=ref, status=CaseStatus.IN_PROGRESS, queue=row.queue, agent=agent
        )

    async def note(self, ref: str, actor: Actor, text: str, *, callback: bool = False) -> NoteAdded:
        """An internal note on the timeline (`case.noted`), or a phone callback done with
        what was said (`case.called_back`); neither reaches the customer."""
        now = self._clock()
        kind = "case.called_back" if callback else "case.noted"
        async with self.sessions.begin() as session:
            row = await self._workable_case(session, ref, actor)
            session.add(
                CaseEventRow(
                    case_id=row.id,
                    kind=kind,
                    at=now,
                    actor=actor.id,
                    message_id=str(uuid.uuid4()),
                    data={"text": text},
                )
            )
        log.info("note added", case_ref=ref, kind=kind, agent=actor.id)
        return NoteAdded(case_ref=ref, kind=kind, at=now)

    # -- reading ----------------------------------------------------------------------------

    async def held_cases(self, agent: str) -> list[CaseSummary]:
        """The cases `agent` holds and has not closed: what counts against their capacity."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(CaseRow)
                .where(CaseRow.agent == agent, CaseRow.status != CaseStatus.CLOSED.value)
                .order_by(CaseRow.opened_at)
            )
            return [
                CaseSummary(
                    ref=c.ref,
                    status=CaseStatus(c.status),
                    subject=c.subject,
                    location=c.location,
                    queue=c.queue,
                    agent=c.agent,
                    opened_at=c.opened_at,
                    closed_at=c.closed_at,
                )
                for c in rows
            ]

    async def queues_waiting(self) -> list[QueueWaiting]:
        """Per work queue: unclaimed open cases, since when the oldest waits, SLA breaches.

        A case came into its queue at its last routing, transfer or escalation.
        """
        now = self._clock()
        entered = (
            select(CaseEventRow.case_id, func.max(CaseEventRow.at).label("at"))
            .where(
                CaseEventRow.kind.in_(
                    (
                        Event.CONTACT_ROUTED.value,
                        Event.CASE_TRANSFERRED.value,
                        Event.CASE_ESCALATED.value,
                    )
                )
            )
            .group_by(CaseEventRow.case_id)
            .subquery()
        )
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    CaseRow.queue,
                    func.count(),
                    func.min(func.coalesce(entered.c.at, CaseRow.opened_at)),
                    func.sum(case((CaseRow.sla_due_at < now, 1), else_=0)),
                )
                .outerjoin(entered, entered.c.case_id == CaseRow.id)
                .where(
                    CaseRow.queue.is_not(None),
                    CaseRow.agent.is_(None),
                    CaseRow.status != CaseStatus.CLOSED.value,
                )
                .group_by(CaseRow.queue)
                .order_by(CaseRow.queue)
            )
            return [
                QueueWaiting(
                    queue=str(queue),
                    waiting=int(waiting),
                    oldest_since=_aware(oldest),
                    sla_breached=int(breached or 0),
                )
                for queue, waiting, oldest, breached in rows.all()
            ]

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
            statuses = await session.scalars(
                select(CaseStatusRow)
                .where(CaseStatusRow.case_id == case_row.id)
                .order_by(CaseStatusRow.id)
            )
            events = await session.scalars(
                select(CaseEventRow)
                .where(CaseEventRow.case_id == case_row.id)
                .order_by(CaseEventRow.id)
            )
            follows = (
                await session.scalar(
                    select(CaseRow.ref).where(CaseRow.id == case_row.follows_case_id)
                )
                if case_row.follows_case_id
                else None
            )
            return CaseView(
                ref=case_row.ref,
                status=CaseStatus(case_row.status),
                subject=case_row.subject,
                location=case_row.location,
                party_id=case_row.party_id,
                queue=case_row.queue,
                agent=case_row.agent,
                sla_due_at=case_row.sla_due_at,
                outcome=case_row.outcome,
                follows=follows,
                opened_at=case_row.opened_at,
                closed_at=case_row.closed_at,
                contacts=[
                    CaseContact(
                        id=c.id,
                        channel=c.channel,
                        direction=Direction(c.direction),
                        occurred_at=c.occurred_at,
                        entry_point=c.entry_point,
                        location=c.message.get("location"),
                        text=c.text,
                        agent=c.agent,
                        delivery_status=c.delivery_status,
                    )
                    for c in contacts
                ],
                status_history=[
                    StatusEntry(
                        status=CaseStatus(s.status), at=s.at, actor=s.actor, reason=s.reason
                    )
                    for s in statuses
                ],
                timeline=[
                    TimelineEntry(kind=e.kind, at=e.at, actor=e.actor, data=e.data) for e in events
                ],
            )

    async def case_contacts(self, ref: str) -> tuple[CaseView, list[ContactMessage]] | None:
        """The case and its contacts as messages (the Klantinteracties export reads these)."""
        view = await self.case_view(ref)
        if view is None:
            return None
        async with self.sessions() as session:
            rows = await session.scalars(
                select(ContactRow)
                .join(CaseRow, CaseRow.id == ContactRow.case_id)
                .where(CaseRow.ref == ref)
                .order_by(ContactRow.occurred_at, ContactRow.id)
            )
            return view, [ContactMessage.model_validate(r.message) for r in rows]

    async def find_parties(
        self, *, email: str | None = None, phone: str | None = None, bsn: str | None = None
    ) -> list[PartySummary]:
        """Parties with this e-mail address, phone number (E.164) or BSN."""
        conditions = []
        if email:
            conditions.append(
                select(DigitalAddressRow.party_id).where(
                    DigitalAddressRow.kind == AddressKind.EMAIL.value,
                    DigitalAddressRow.value == normalise_email(email),
                )
            )
        if phone:
            conditions.append(
                select(DigitalAddressRow.party_id).where(
                    DigitalAddressRow.kind == AddressKind.PHONE.value,
                    DigitalAddressRow.value == phone,
                )
            )
        if bsn:
            conditions.append(
                select(PartyIdentifierRow.party_id).where(
                    PartyIdentifierRow.type == IdentifierType.BSN.value,
                    PartyIdentifierRow.value == bsn,
                )
            )
        if not conditions:
            return []
        async with self.sessions() as session:
            ids: set[uuid.UUID] | None = None
            for query in conditions:
                found = set(await session.scalars(query))
                ids = found if ids is None else ids & found
            known = await self._known_parties(session, ids or set())
        known.sort(key=lambda p: (p.created_at, str(p.id)))
        return [
            PartySummary(
                id=p.id,
                name=p.name,
                emails=sorted(p.emails),
                phones=sorted(p.phones),
                identifier_types=sorted(k.value for k in p.identifiers),
            )
            for p in known
        ]

    async def customer_view(self, party_id: uuid.UUID, *, with_bsn: bool) -> CustomerView | None:
        """The uniform customer view: identifiers, addresses, every case and every contact."""
        async with self.sessions() as session:
            row = await session.get(PartyRow, party_id)
            if row is None:
                return None
            [known] = await self._known_parties(session, [party_id])
            cases = list(
                await session.scalars(
                    select(CaseRow)
                    .where(CaseRow.party_id == party_id)
                    .order_by(CaseRow.opened_at.desc(), CaseRow.ref.desc())
                )
            )
            refs = {c.id: c.ref for c in cases}
            contacts = await session.scalars(
                select(ContactRow)
                .where(ContactRow.party_id == party_id)
                .order_by(ContactRow.occurred_at.desc(), ContactRow.registered_at.desc())
            )
            contact_views = [_contact_view(c, refs.get(c.case_id, "")) for c in contacts]
        identifiers = {
            kind.value: value
            for kind, value in known.identifiers.items()
            if with_bsn or kind is not IdentifierType.BSN
        }
        return CustomerView(
            id=row.id,
            name=row.name,
            identifiers=identifiers,
            identifier_types=sorted(k.value for k in known.identifiers),
            emails=sorted(known.emails),
            phones=sorted(known.phones),
            preferred_channel=row.preferred_channel,
            language=row.language,
            created_at=row.created_at,
            cases=[
                CaseSummary(
                    ref=c.ref,
                    status=CaseStatus(c.status),
                    subject=c.subject,
                    location=c.location,
                    queue=c.queue,
                    agent=c.agent,
                    opened_at=c.opened_at,
                    closed_at=c.closed_at,
                )
                for c in cases
            ],
            contacts=contact_views,
        )

    async def count_contacts(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(ContactRow)) or 0)

    # -- retention --------------------------------------------------------------------------

    async def purge(self, closed_before: datetime, *, dry_run: bool) -> PurgeCounts:
        """Remove cases closed before `closed_before`, their contacts, and parties left empty.

        The published outbox rows of those contacts go too (they hold the contact's text).
        """
        async with self.sessions.begin() as session:
            await lock_for(await session.connection(), "kanaal.dossier.purge")
            case_ids = list(
                await session.scalars(
                    select(CaseRow.id).where(
                        CaseRow.status == CaseStatus.CLOSED.value,
                        CaseRow.closed_at < closed_before,
                    )
                )
            )
            party_ids = set(
                await session.scalars(select(CaseRow.party_id).where(CaseRow.id.in_(case_ids)))
            )
            contact_ids = [
                str(i)
                for i in await session.scalars(
                    select(ContactRow.id).where(ContactRow.case_id.in_(case_ids))
                )
            ]
            still_used = set(
                await session.scalars(
                    select(CaseRow.party_id).where(
                        CaseRow.party_id.in_(party_ids), CaseRow.id.not_in(case_ids)
                    )
                )
            )
            orphans = party_ids - still_used
            counts = PurgeCounts(
                cases=len(case_ids),
                contacts=len(contact_ids),
                parties=len(orphans),
                dry_run=dry_run,
            )
            if dry_run or not case_ids:
                return counts
            for chunk in _chunks(contact_ids, 500):
                await session.execute(
                    delete(OutboxRow).where(
                        OutboxRow.message_id.in_(chunk), OutboxRow.published_at.is_not(None)
                    )
                )
            for ids in _chunks(case_ids, 500):
                await session.execute(
                    update(CaseRow)
                    .where(CaseRow.follows_case_id.in_(ids))
                    .values(follows_case_id=None)
                    .execution_options(synchronize_session=False)
                )
                await session.execute(delete(ContactRow).where(ContactRow.case_id.in_(ids)))
                await session.execute(delete(CaseEventRow).where(CaseEventRow.case_id.in_(ids)))
                await session.execute(delete(CaseStatusRow).where(CaseStatusRow.case_id.in_(ids)))
                await session.execute(delete(CaseRow).where(CaseRow.id.in_(ids)))
            for parties in _chunks(sorted(orphans), 500):
                # Contacts of purged cases are gone; identifiers and addresses cascade.
                await session.execute(
                    delete(PartyIdentifierRow).where(PartyIdentifierRow.party_id.in_(parties))
                )
                await session.execute(
                    delete(DigitalAddressRow).where(DigitalAddressRow.party_id.in_(parties))
                )
                await session.execute(delete(PartyRow).where(PartyRow.id.in_(parties)))
        log.info(
            "closed cases purged",
            cases=counts.cases,
            contacts=counts.contacts,
            parties=counts.parties,
        )
        return counts


def _chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _known_case(row: CaseRow) -> KnownCase:
    return KnownCase(id=row.id, ref=row.ref, party_id=row.party_id)


def _state(row: CaseRow) -> CaseState:
    return CaseState(
        ref=row.ref,
        status=CaseStatus(row.status),
        queue=row.queue,
        agent=row.agent,
        queue_reason=QueueReason(row.queue_reason) if row.queue_reason else None,
        closed_at=row.closed_at,
    )


def _aware(value: Any) -> datetime | None:
    """An aggregate's datetime: SQLite gives it as text without a zone, PostgreSQL aware."""
    if value is None:
        return None
    found = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _contact_view(row: ContactRow, case_ref: str) -> ContactView:
    message = row.message
    return ContactView(
        id=row.id,
        case_ref=case_ref,
        channel=row.channel,
        direction=Direction(row.direction),
        entry_point=row.entry_point,
        source_ref=row.source_ref,
        occurred_at=row.occurred_at,
        subject=row.subject,
        location=message.get("location"),
        language=str(message.get("language") or "nl"),
        text=row.text,
        attachments=message.get("attachments") or [],
        agent=row.agent,
        delivery_status=row.delivery_status,
    )


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
        delivery_status=None,
        agent=None,
        channel_ref=None,
    )
