"""Working cases in the store, on SQLite and PostgreSQL: claim, reply, transfer, close, events.

Includes the concurrency test of the issue: two agents claim the same case at the same
moment, fifty times, and exactly one wins each time.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from kanaal.common.contract import (
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    ContactMessage,
    DeliveryReport,
    DeliveryStatus,
    Direction,
    RegisteredContact,
    WorkItem,
)
from kanaal.dossier.models import OutboxRow
from kanaal.dossier.store import Actor, Conflict, DossierStore, Unprocessable

ContactFactory = Callable[..., ContactMessage]
Q = "work.subject.parkeren"
ANNA = Actor("anna")
BRAM = Actor("bram")
SARA = Actor("sara", supervisor=True)
OUTBOUND = ("email", "web")

# A follow-up by e-mail: on the web a typed address would prove nothing (cases.link_case).
BY_EMAIL = {"channel": "email", "entry_point": "info@gemeente.nl"}


async def register(store: DossierStore, contact: ContactMessage) -> RegisteredContact:
    registered = await store.register(contact)
    assert registered is not None
    return registered


async def routed(store: DossierStore, registered: RegisteredContact, queue: str = Q) -> None:
    item = WorkItem(
        contact_id=registered.contact.id,
        case_ref=registered.case_ref,
        party_id=registered.party_id,
        channel=registered.contact.channel,
        queue=queue,
        rule="strategy:subject",
        sla_due_at=datetime.now(UTC) + timedelta(days=2),
        routed_at=datetime.now(UTC),
    )
    assert await store.record_routed(item, str(registered.contact.id))


async def outbox(store: DossierStore) -> list[OutboxRow]:
    async with store.sessions() as session:
        return list(await session.scalars(select(OutboxRow).order_by(OutboxRow.id)))


async def test_two_agents_claiming_the_same_case_at_once_fifty_times_one_wins_each_time(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    cases = [await register(store, make_contact()) for _ in range(50)]
    for registered in cases:
        await routed(store, registered)

    async def attempt(registered: RegisteredContact, actor: Actor) -> str:
        try:
            await store.claim(registered.case_ref, actor, registered.contact.id, Q)
        except Conflict as exc:
            return f"stale:{exc.stale.reason if exc.stale else exc.reason}"
        return actor.id

    for registered in cases:
        results = await asyncio.gather(attempt(registered, ANNA), attempt(registered, BRAM))
        assert sorted(results, key=lambda r: r.startswith("stale")) in (
            ["anna", "stale:claimed"],
            ["bram", "stale:claimed"],
        ), results
        case = await store.case_view(registered.case_ref)
        assert case is not None
        assert case.agent in ("anna", "bram")
        assert [e.kind for e in case.timeline].count("case.claimed") == 1


async def test_a_claim_sets_the_agent_status_history_and_publishes_case_claimed(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    result = await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    assert result.claimed
    again = await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    assert not again.claimed  # a repeat by the winner changes nothing
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert (case.status, case.agent) == (CaseStatus.IN_PROGRESS, "anna")
    assert [(s.status, s.actor) for s in case.status_history] == [
        (CaseStatus.OPEN, "dossier"),
        (CaseStatus.IN_PROGRESS, "anna"),
    ]
    assert case.sla_due_at is not None
    events = [r for r in await outbox(store) if r.routing_key.startswith("case.")]
    assert [r.routing_key for r in events] == ["case.claimed"]
    claimed = CaseEvent.model_validate_json(events[0].body)
    assert (claimed.agent, claimed.contact_id, claimed.queue) == ("anna", registered.contact.id, Q)


async def test_a_work_item_of_a_transferred_case_is_stale_and_the_new_one_claimable(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    changed = await store.transfer(registered.case_ref, ANNA, "work.central", "needs a jurist")
    assert (changed.queue, changed.agent, changed.status) == ("work.central", None, "open")

    with pytest.raises(Conflict) as stale:
        await store.claim(registered.case_ref, BRAM, registered.contact.id, Q)
    assert stale.value.stale is not None
    assert (stale.value.stale.reason, stale.value.stale.holder) == ("transferred", "work.central")
    assert (
        await store.claim(registered.case_ref, BRAM, registered.contact.id, "work.central")
    ).claimed

    rows = await outbox(store)
    transferred = next(r for r in rows if r.routing_key == "case.transferred")
    event = CaseEvent.model_validate_json(transferred.body)
    assert (event.from_queue, event.queue, event.reason) == (Q, "work.central", "needs a jurist")
    work = next(r for r in rows if r.exchange == "kanaal.work")
    assert (work.routing_key, work.message_type) == ("work.central", "work.item")
    item = WorkItem.model_validate_json(work.body)
    assert (item.contact_id, item.queue, item.rule) == (
        registered.contact.id,
        "work.central",
        "transfer",
    )
    assert work.message_id == transferred.message_id  # not the contact id: a new work item


async def test_an_escalation_moves_an_unclaimed_case_and_makes_its_old_item_stale(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    escalation = CaseEvent(
        event=CaseEventKind.ESCALATED,
        case_ref=registered.case_ref,
        contact_id=registered.contact.id,
        queue="work.escalation",
        from_queue=Q,
        reason="SLA passed",
        at=datetime.now(UTC),
    )
    assert await store.record_case_event(escalation, "esc-1")
    assert not await store.record_case_event(escalation, "esc-1")  # redelivered
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert case.queue == "work.escalation"
    with pytest.raises(Conflict) as stale:
        await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    assert stale.value.stale is not None
    assert stale.value.stale.reason == "escalated"


async def test_an_escalation_of_a_claimed_case_is_recorded_but_not_applied(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    escalation = CaseEvent(
        event=CaseEventKind.ESCALATED,
        case_ref=registered.case_ref,
        queue="work.escalation",
        from_queue=Q,
        at=datetime.now(UTC),
    )
    assert await store.record_case_event(escalation, "esc-2")
    case = await store.case_view(registered.case_ref)
    assert case is not None
    assert (case.queue, case.agent) == (Q, "anna")
    entry = next(e for e in case.timeline if e.kind == "case.escalated")
    assert entry.data["applied"] == "already_claimed"


async def test_the_dossiers_own_case_events_coming_back_change_nothing(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    [row] = [r for r in await outbox(store) if r.routing_key == "case.claimed"]
    echo = CaseEvent.model_validate_json(row.body)
    assert not await store.record_case_event(echo, row.message_id)


async def test_a_reply_is_an_outbound_contact_to_the_customers_channel(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(
        store,
        make_contact(
            channel="email",
            entry_point="info@gemeente.nl",
            source_ref="<q1@example.nl>",
            party={"name": "Jan", "email": "jan@example.nl", "phone": "0612345678"},
        ),
    )
    accepted = await store.reply(first.case_ref, ANNA, "Uw vergunning is verlengd.", OUTBOUND)
    assert (accepted.channel, accepted.entry_point) == ("email", "info@gemeente.nl")
    row = next(r for r in await outbox(store) if r.exchange == "kanaal.outbound")
    assert (row.routing_key, row.message_type) == ("email", "contact.outbound")
    sent = ContactMessage.model_validate_json(row.body)
    assert sent.id == accepted.contact_id == uuid.UUID(row.message_id)
    assert sent.direction is Direction.OUTBOUND
    assert (sent.case_ref, sent.in_reply_to) == (first.case_ref, "<q1@example.nl>")
    assert (sent.party.email, sent.party.phone, sent.party.name) == (
        "jan@example.nl",
        "+31612345678",
        "Jan",
    )
    case = await store.case_view(first.case_ref)
    assert case is not None
    assert [c.direction for c in case.contacts] == [Direction.INBOUND, Direction.OUTBOUND]
    assert case.contacts[1].agent == "anna"
    assert "case.replied" in [e.kind for e in case.timeline]


async def test_a_reply_with_the_same_idempotency_key_is_sent_once(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    one = await store.reply(first.case_ref, ANNA, "Antwoord", OUTBOUND, idempotency_key="k1")
    two = await store.reply(first.case_ref, ANNA, "Antwoord", OUTBOUND, idempotency_key="k1")
    assert one.contact_id == two.contact_id
    assert len([r for r in await outbox(store) if r.exchange == "kanaal.outbound"]) == 1


async def test_a_reply_to_a_phone_only_customer_needs_a_channel_that_can_send(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(
        store, make_contact(channel="phone", entry_point="14020", party={"phone": "0612345678"})
    )
    with pytest.raises(Unprocessable, match="name a channel"):
        await store.reply(first.case_ref, ANNA, "Antwoord", OUTBOUND)


async def test_delivery_reports_land_on_the_outbound_contact_and_the_timeline(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    accepted = await store.reply(first.case_ref, ANNA, "Antwoord", OUTBOUND)
    report = DeliveryReport(
        contact_id=accepted.contact_id,
        channel="web",
        case_ref=first.case_ref,
        status=DeliveryStatus.SENT,
        channel_ref="msg-1",
        reported_at=datetime.now(UTC),
    )
    assert await store.record_delivery(report, str(accepted.contact_id), "contact.sent")
    assert not await store.record_delivery(report, str(accepted.contact_id), "contact.sent")
    case = await store.case_view(first.case_ref)
    assert case is not None
    assert case.contacts[-1].delivery_status == "sent"
    assert [e.kind for e in case.timeline].count("contact.sent") == 1


async def test_another_agents_claimed_case_cannot_be_closed_but_by_a_supervisor(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await routed(store, registered)
    await store.claim(registered.case_ref, ANNA, registered.contact.id, Q)
    with pytest.raises(Conflict, match="another agent"):
        await store.close(registered.case_ref, BRAM, "beantwoord")
    closed = await store.close(registered.case_ref, SARA, "beantwoord")
    assert closed.status is CaseStatus.CLOSED
    with pytest.raises(Conflict, match="closed"):
        await store.close(registered.case_ref, SARA, "beantwoord")
    event = CaseEvent.model_validate_json(
        next(r for r in await outbox(store) if r.routing_key == "case.closed").body
    )
    assert (event.outcome, event.agent) == ("beantwoord", "sara")


async def test_a_contact_on_a_recently_closed_case_reopens_it(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    await store.close(first.case_ref, ANNA, "beantwoord")
    again = await register(
        store, make_contact(party={"email": "a@example.nl"}, case_ref=first.case_ref, **BY_EMAIL)
    )
    assert (again.case_ref, again.case_is_new, again.case_status) == (
        first.case_ref,
        False,
        CaseStatus.OPEN,
    )
    case = await store.case_view(first.case_ref)
    assert case is not None
    assert [s.status for s in case.status_history] == [
        CaseStatus.OPEN,
        CaseStatus.CLOSED,
        CaseStatus.OPEN,
    ]
    assert "case.reopened" in [e.kind for e in case.timeline]


async def test_a_contact_after_the_reopening_window_opens_a_new_linked_case(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    store.reopen_window = timedelta(0)
    first = await register(store, make_contact(party={"email": "a@example.nl"}))
    await routed(store, first)
    await store.close(first.case_ref, ANNA, "beantwoord")
    await asyncio.sleep(0.01)  # the window is zero: any later contact is too late
    later = await register(
        store, make_contact(party={"email": "a@example.nl"}, case_ref=first.case_ref, **BY_EMAIL)
    )
    assert later.case_is_new
    assert later.case_ref != first.case_ref
    assert later.case_queue == Q  # the follow-up stays with the same team
    new_case = await store.case_view(later.case_ref)
    old_case = await store.case_view(first.case_ref)
    assert new_case is not None
    assert old_case is not None
    assert new_case.follows == first.case_ref
    assert old_case.status is CaseStatus.CLOSED
    assert "case.followed_up" in [e.kind for e in old_case.timeline]
