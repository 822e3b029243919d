"""The store against real databases (SQLite and PostgreSQL): dedup, parties, cases, timeline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from kanaal.common.contract import (
    CaseStatus,
    ContactMessage,
    ContactUpdate,
    RegisteredContact,
    WorkItem,
)
from kanaal.common.database import schema_differences
from kanaal.dossier.database import upgrade
from kanaal.dossier.models import Base, CaseEventRow, ContactRow, OutboxRow, PartyRow
from kanaal.dossier.store import ContactNotYetKnown, DossierStore, Unprocessable

ContactFactory = Callable[..., ContactMessage]

# A follow-up by e-mail: on the web a typed address would prove nothing (cases.link_case).
BY_EMAIL = {"channel": "email", "entry_point": "info@gemeente.nl"}


async def count_rows(store: DossierStore, model: type[Base]) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def register(store: DossierStore, contact: ContactMessage) -> RegisteredContact:
    registered = await store.register(contact)
    assert registered is not None
    return registered


async def test_the_migrations_build_exactly_the_models(store: DossierStore) -> None:
    await upgrade(store.engine)  # a second upgrade is a no-op
    assert await schema_differences(store.engine, Base.metadata) == []


async def test_a_first_contact_opens_a_case_for_a_new_party(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact(party={"email": "jan@example.nl"}, location="centrum")
    registered = await register(store, contact)
    assert registered.case_is_new
    assert registered.case_status is CaseStatus.OPEN
    assert registered.case_ref.startswith(f"K-{datetime.now(UTC).year}-")
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert (case.subject, case.location, case.party_id) == (
        "parkeren",
        "centrum",
        registered.party_id,
    )
    assert [c.id for c in case.contacts] == [contact.id]
    assert [e.kind for e in case.timeline] == ["case.opened", "contact.received"]


async def test_same_contact_twice_is_stored_once(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact(source_ref="form-1")
    assert await store.register(contact) is not None
    assert await store.register(contact) is None
    assert await count_rows(store, ContactRow) == 1
    assert await count_rows(store, OutboxRow) == 1
    assert await count_rows(store, CaseEventRow) == 2


async def test_the_same_contact_delivered_concurrently_is_stored_once(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact(source_ref="form-1", party={"email": "a@example.nl"})
    results = await asyncio.gather(*(store.register(contact) for _ in range(5)))
    assert sum(r is not None for r in results) == 1
    assert await count_rows(store, ContactRow) == 1
    assert await count_rows(store, OutboxRow) == 1


async def test_the_registered_message_waits_in_the_outbox(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact(channel="email", entry_point="info@gemeente.nl")
    registered = await register(store, contact)
    async with store.sessions() as session:
        row = (await session.scalars(select(OutboxRow))).one()
    assert (row.exchange, row.routing_key, row.message_type) == (
        "kanaal.events",
        "contact.registered.email",
        "contact.registered",
    )
    assert row.message_id == str(contact.id)
    assert row.published_at is None
    assert RegisteredContact.model_validate_json(row.body) == registered


async def test_a_contact_with_the_same_email_lands_on_the_same_party(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "jan@example.nl"}))
    second = await register(
        store, make_contact(channel="email", party={"email": "Jan@Example.nl", "name": "Jan"})
    )
    assert second.party_id == first.party_id
    assert second.case_ref != first.case_ref
    assert await count_rows(store, PartyRow) == 1


async def test_a_different_bsn_never_merges_on_a_shared_email(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(
        store,
        make_contact(party={"email": "gezin@example.nl", "identifiers": {"bsn": "111222333"}}),
    )
    second = await register(
        store,
        make_contact(party={"email": "gezin@example.nl", "identifiers": {"bsn": "123456782"}}),
    )
    assert second.party_id != first.party_id


async def test_phone_alone_does_not_join_customers_with_different_emails(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(
        store, make_contact(party={"email": "a@example.nl", "phone": "0612345678"})
    )
    second = await register(
        store, make_contact(party={"email": "b@example.nl", "phone": "0612345678"})
    )
    third = await register(store, make_contact(channel="phone", party={"phone": "0612345678"}))
    assert second.party_id != first.party_id
    assert third.party_id == first.party_id  # the oldest party with that number


async def test_a_bsn_learnt_by_email_later_recognises_the_customer_by_bsn(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    await register(
        store, make_contact(party={"email": "a@example.nl", "identifiers": {"bsn": "111222333"}})
    )
    by_bsn = await register(
        store, make_contact(channel="counter", party={"identifiers": {"bsn": "111222333"}})
    )
    assert by_bsn.party_id == first.party_id


async def test_a_contact_with_the_case_ref_of_an_existing_case_lands_on_that_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    follow_up = await register(
        store,
        make_contact(
            channel="email",
            entry_point="info@gemeente.nl",
            party={"email": "A@Example.nl"},
            case_ref=first.case_ref,
        ),
    )
    assert follow_up.case_ref == first.case_ref
    assert not follow_up.case_is_new
    assert follow_up.party_id == first.party_id
    case = await store.case_view(first.case_ref)
    assert case is not None
    assert len(case.contacts) == 2


async def test_an_unknown_case_ref_opens_a_new_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact(case_ref="K-1999-000001"))
    assert registered.case_is_new
    assert registered.case_ref != "K-1999-000001"


async def test_a_reply_lands_on_the_case_of_the_message_it_answers(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(
        store,
        make_contact(channel="email", entry_point="info@gemeente.nl", source_ref="<m1@example.nl>"),
    )
    reply = await register(
        store,
        make_contact(
            channel="email",
            entry_point="info@gemeente.nl",
            source_ref="<m2@example.nl>",
            in_reply_to="<m1@example.nl>",
        ),
    )
    assert reply.case_ref == first.case_ref


async def test_concurrent_new_cases_get_distinct_consecutive_refs(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contacts = [make_contact() for _ in range(20)]
    results = await asyncio.gather(*(store.register(c) for c in contacts))
    refs = sorted(r.case_ref for r in results if r is not None)
    year = datetime.now(UTC).year
    assert refs == [f"K-{year}-{n:06d}" for n in range(1, 21)]


async def test_concurrent_contacts_with_one_email_share_one_party(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contacts = [make_contact(party={"email": "druk@example.nl"}) for _ in range(10)]
    results = await asyncio.gather(*(store.register(c) for c in contacts))
    assert len({r.party_id for r in results if r is not None}) == 1


async def test_a_routed_event_sets_the_case_queue_once(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact(party={"email": "vast@example.nl"})
    registered = await register(store, contact)
    item = WorkItem(
        contact_id=contact.id,
        case_ref=registered.case_ref,
        party_id=registered.party_id,
        channel=contact.channel,
        queue="work.subject.parkeren",
        rule="strategy:subject",
        routed_at=datetime.now(UTC),
    )
    assert await store.record_routed(item, str(contact.id))
    assert not await store.record_routed(item, str(contact.id))
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert case.queue == "work.subject.parkeren"
    assert [e.kind for e in case.timeline].count("contact.routed") == 1

    later = await register(
        store, make_contact(party=contact.party, case_ref=registered.case_ref, **BY_EMAIL)
    )
    assert later.case_queue == "work.subject.parkeren"


async def test_a_routed_event_for_an_unknown_case_changes_nothing(store: DossierStore) -> None:
    item = WorkItem(
        contact_id=uuid.uuid4(),
        case_ref="K-2026-999999",
        party_id=uuid.uuid4(),
        channel="web",
        queue="work.central",
        rule="default",
        routed_at=datetime.now(UTC),
    )
    assert not await store.record_routed(item, str(item.contact_id))


async def test_the_contact_summary_tells_where_a_contact_landed(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    contact = make_contact()
    registered = await register(store, contact)
    summary = await store.contact_summary(contact.id)
    assert summary is not None
    assert (summary.case_ref, summary.party_id, summary.channel) == (
        registered.case_ref,
        registered.party_id,
        "web",
    )
    assert summary.registered_at == registered.registered_at
    assert await store.contact_summary(uuid.uuid4()) is None


async def test_a_counter_desk_event_lands_once_on_the_timeline_of_the_visit_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    visit = make_contact(channel="counter", entry_point="centrum", source_ref="ticket-A12")
    registered = await register(store, visit)
    called = ContactUpdate(
        contact_id=visit.id,
        channel="counter",
        event="called",
        channel_data={"status": "called", "desk": "3", "wait_seconds": 240},
        at=datetime.now(UTC),
    )
    assert await store.record_update(called, "update-1")
    assert not await store.record_update(called, "update-1")  # redelivered: one line
    case = await store.case_view(registered.case_ref)
    assert case is not None
    [line] = [e for e in case.timeline if e.kind == "contact.updated"]
    assert line.actor == "channel:counter"
    assert line.data["text"] == "opgeroepen, balie 3, wachttijd 4 min"
    assert line.data["event"] == "called"
    assert line.data["contact_id"] == str(visit.id)
    assert line.data["channel_data"] == {"status": "called", "desk": "3", "wait_seconds": 240}


async def test_an_update_ahead_of_its_contact_waits_and_one_from_another_channel_is_refused(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    visit = make_contact(channel="counter", entry_point="centrum", source_ref="ticket-B07")
    update = ContactUpdate(
        contact_id=visit.id, channel="counter", event="no_show", at=datetime.now(UTC)
    )
    with pytest.raises(ContactNotYetKnown):
        await store.record_update(update, "update-2")
    registered = await register(store, visit)
    assert await store.record_update(update, "update-2")

    web = await register(store, make_contact())
    stray = ContactUpdate(
        contact_id=web.contact.id, channel="counter", event="served", at=datetime.now(UTC)
    )
    with pytest.raises(Unprocessable):
        await store.record_update(stray, "update-3")
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert [e.data["text"] for e in case.timeline if e.kind == "contact.updated"] == [
        "niet verschenen"
    ]
