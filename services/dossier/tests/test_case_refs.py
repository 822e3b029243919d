"""Whose case a contact may join: a typed case reference is trusted only for its own customer.

Anyone can type a case reference into the web form, an e-mail subject or a callback
request. The dossier follows it only when the contact's party is the case's party, or
when the contact answers a message of that case as its channel threads it; otherwise
the contact goes on as if it named no case, and the agent sees the reference in a note.
Against SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from kanaal.common.contract import (
    ContactMessage,
    DeliveryReport,
    DeliveryStatus,
    RegisteredContact,
)
from kanaal.common.topology import OUTBOUND as OUTBOUND_X
from kanaal.dossier.models import OutboxRow
from kanaal.dossier.store import Actor, DossierStore

ContactFactory = Callable[..., ContactMessage]
ANNA = Actor("anna")
OUTBOUND = ("email", "web")
MAILBOX = "info@gemeente.nl"
CITIZEN = {"name": "A. Burger", "email": "a.burger@example.nl"}


async def register(store: DossierStore, contact: ContactMessage) -> RegisteredContact:
    registered = await store.register(contact)
    assert registered is not None
    return registered


async def answered(store: DossierStore, ref: str, channel_ref: str | None = None) -> ContactMessage:
    """An agent's answer on `ref`, as the dossier put it in the outbox, reported sent."""
    accepted = await store.reply(ref, ANNA, "Uw vergunning is verlengd.", OUTBOUND)
    async with store.sessions() as session:
        body = await session.scalar(
            select(OutboxRow.body).where(OutboxRow.message_id == str(accepted.contact_id))
        )
    assert body is not None
    answer = ContactMessage.model_validate_json(body)
    report = DeliveryReport(
        contact_id=answer.id,
        channel=answer.channel,
        case_ref=ref,
        status=DeliveryStatus.SENT,
        channel_ref=channel_ref,
        reported_at=datetime.now(UTC),
    )
    assert await store.record_delivery(report, str(uuid.uuid4()), "contact.sent")
    return answer


async def notes(store: DossierStore, ref: str) -> list[dict[str, object]]:
    case = await store.case_view(ref)
    assert case is not None
    return [e.data for e in case.timeline if e.kind == "case.noted"]


async def test_a_typist_with_another_email_gets_a_new_case_and_nothing_of_the_named_one(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    citizen = await register(store, make_contact(party=CITIZEN))
    typist = await register(
        store,
        make_contact(party={"email": "nieuwsgierig@example.nl"}, case_ref=citizen.case_ref),
    )
    assert typist.case_is_new
    assert typist.case_ref != citizen.case_ref
    assert typist.party_id != citizen.party_id

    # Where the web adapter's status page looks: the typist's own case, never the citizen's.
    summary = await store.contact_summary(typist.contact.id)
    assert summary is not None
    assert summary.case_ref == typist.case_ref

    citizen_case = await store.case_view(citizen.case_ref)
    assert citizen_case is not None
    assert [c.id for c in citizen_case.contacts] == [citizen.contact.id]
    assert await notes(store, citizen.case_ref) == []
    [note] = await notes(store, typist.case_ref)
    assert note["text"] == f"Noemt zaak {citizen.case_ref}, niet gekoppeld: andere klant"
    assert (note["named_case_ref"], note["reason"]) == (citizen.case_ref, "other_party")

    # The agent's answer on the citizen's case goes to the citizen, not to the typist.
    await answered(store, citizen.case_ref)
    async with store.sessions() as session:
        bodies = list(
            await session.scalars(
                select(OutboxRow.body).where(OutboxRow.exchange == OUTBOUND_X.name)
            )
        )
    [answer] = [ContactMessage.model_validate_json(b) for b in bodies]
    assert answer.in_reply_to == citizen.contact.source_ref
    assert answer.party.email == CITIZEN["email"]


async def test_an_anonymous_typist_is_not_given_the_named_case_or_its_customer(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    citizen = await register(store, make_contact(party=CITIZEN))
    typist = await register(store, make_contact(case_ref=citizen.case_ref))
    assert typist.case_is_new
    assert typist.party_id != citizen.party_id
    [note] = await notes(store, typist.case_ref)
    assert note["reason"] == "other_party"


async def test_the_same_customer_naming_their_case_lands_on_it_by_email_phone_or_bsn(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    citizen = await register(
        store,
        make_contact(
            party={
                "email": "a.burger@example.nl",
                "phone": "+31612345678",
                "identifiers": {"bsn": "111222333"},
            }
        ),
    )
    by_email = make_contact(
        channel="email", entry_point=MAILBOX, party={"email": "A.Burger@example.nl"}
    )
    by_phone = make_contact(channel="phone", entry_point="14020", party={"phone": "+31612345678"})
    by_bsn = make_contact(
        channel="counter", entry_point="centrum", party={"identifiers": {"bsn": "111222333"}}
    )
    for contact in (by_email, by_phone, by_bsn):
        named = contact.model_copy(update={"case_ref": citizen.case_ref})
        registered = await register(store, named)
        assert (registered.case_ref, registered.party_id) == (citizen.case_ref, citizen.party_id)
    assert await notes(store, citizen.case_ref) == []


async def test_a_status_page_reply_lands_on_its_case_before_and_after_an_answer(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = make_contact(party=CITIZEN, source_ref="submission:eform-1")
    citizen = await register(store, first)

    # The web adapter's reply carries no party, the thread's case and the last message.
    before = await register(
        store,
        make_contact(
            source_ref="status-reply:t1:a", case_ref=citizen.case_ref, in_reply_to=first.source_ref
        ),
    )
    assert (before.case_ref, before.party_id) == (citizen.case_ref, citizen.party_id)

    answer = await answered(store, citizen.case_ref, channel_ref="status:t1")
    after = await register(
        store,
        make_contact(
            source_ref="status-reply:t1:b", case_ref=citizen.case_ref, in_reply_to=answer.source_ref
        ),
    )
    assert (after.case_ref, after.party_id) == (citizen.case_ref, citizen.party_id)
    assert await notes(store, citizen.case_ref) == []


async def test_an_email_reply_from_another_address_to_our_answer_threads_onto_the_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = make_contact(
        channel="email", entry_point=MAILBOX, source_ref="<m1@example.nl>", party=CITIZEN
    )
    citizen = await register(store, first)
    our_id = f"kanaal.{citizen.case_ref}.{uuid.uuid4()}@gemeente.nl"
    answer = await answered(store, citizen.case_ref, channel_ref=our_id)
    assert answer.channel == "email"

    # From the office address, subject kept: the quoted Message-ID proves the thread.
    colleague = await register(
        store,
        make_contact(
            channel="email",
            entry_point=MAILBOX,
            source_ref="<m2@werk.example.nl>",
            party={"email": "a.burger@werk.example.nl"},
            case_ref=citizen.case_ref,
            in_reply_to=our_id,
        ),
    )
    assert colleague.case_ref == citizen.case_ref
    assert colleague.party_id != citizen.party_id  # a reply proves the case, not the person

    # The same citizen's ordinary reply, subject lost, quoting their own first mail.
    own = await register(
        store,
        make_contact(
            channel="email",
            entry_point=MAILBOX,
            source_ref="<m3@example.nl>",
            party=CITIZEN,
            in_reply_to="<m1@example.nl>",
        ),
    )
    assert own.case_ref == citizen.case_ref

    # The next answer still goes to the case's own customer, never to the other party.
    accepted = await store.reply(citizen.case_ref, ANNA, "Nog een antwoord.", OUTBOUND)
    async with store.sessions() as session:
        body = await session.scalar(
            select(OutboxRow.body).where(OutboxRow.message_id == str(accepted.contact_id))
        )
    assert body is not None
    second = ContactMessage.model_validate_json(body)
    assert second.in_reply_to == "<m3@example.nl>"
    assert second.party.email == CITIZEN["email"]


async def test_an_in_reply_to_the_channel_does_not_thread_proves_nothing(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = make_contact(party=CITIZEN, source_ref="submission:eform-2026-118734")
    citizen = await register(store, first)
    forged = [
        # an e-mail quoting a web submission's id
        make_contact(
            channel="email",
            entry_point=MAILBOX,
            party={"email": "x@example.nl"},
            case_ref=citizen.case_ref,
            in_reply_to=first.source_ref,
        ),
        # a web message on another form quoting it
        make_contact(
            entry_point="form-ander",
            case_ref=citizen.case_ref,
            in_reply_to=first.source_ref,
        ),
        # an e-mail quoting a Message-ID we never sent, in our format
        make_contact(
            channel="email",
            entry_point=MAILBOX,
            party={"email": "x@example.nl"},
            case_ref=citizen.case_ref,
            in_reply_to=f"kanaal.{citizen.case_ref}.{uuid.uuid4()}@gemeente.nl",
        ),
    ]
    for contact in forged:
        registered = await register(store, contact)
        assert registered.case_ref != citizen.case_ref
        assert registered.party_id != citizen.party_id
        [note] = await notes(store, registered.case_ref)
        assert note["reason"] == "other_party"
    case = await store.case_view(citizen.case_ref)
    assert case is not None
    assert len(case.contacts) == 1


async def test_an_unknown_case_ref_is_kept_for_the_agent(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact(party=CITIZEN, case_ref="K-1999-000001"))
    assert registered.case_is_new
    [note] = await notes(store, registered.case_ref)
    assert note["text"] == "Noemt zaak K-1999-000001, niet gekoppeld: onbekende zaak"
    assert note["reason"] == "unknown"


async def test_a_refused_reference_is_recorded_once_when_the_contact_comes_again(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    citizen = await register(store, make_contact(party=CITIZEN))
    typist = make_contact(party={"email": "b@example.nl"}, case_ref=citizen.case_ref)
    first = await register(store, typist)
    assert await store.register(typist) is None
    assert len(await notes(store, first.case_ref)) == 1


async def test_a_web_typist_who_knows_the_email_and_the_case_number_still_gets_a_new_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    # A web form's e-mail address is typed, not proven: knowing a citizen's address and
    # case number must not open their case (its answers would show on the typist's page).
    citizen = await register(
        store, make_contact(channel="email", entry_point=MAILBOX, party=CITIZEN)
    )
    typist = await register(store, make_contact(party=CITIZEN, case_ref=citizen.case_ref))
    assert typist.case_is_new
    assert typist.case_ref != citizen.case_ref
    citizen_case = await store.case_view(citizen.case_ref)
    assert citizen_case is not None
    assert [c.id for c in citizen_case.contacts] == [citizen.contact.id]
    [note] = await notes(store, typist.case_ref)
    assert note["text"] == f"Noemt zaak {citizen.case_ref}, niet gekoppeld: klant niet vastgesteld"
    assert note["reason"] == "unproven"
