"""SLA deadlines (wall clock, opening hours, working days), timers and escalation chains."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kanaal.common.contract import CaseEvent, CaseEventKind, WorkItem
from kanaal.router.escalation import (
    EscalationTimer,
    TimerMessage,
    WaitingWork,
    escalate,
    hold_seconds,
    timer_batches,
)
from kanaal.router.journal import Journal
from kanaal.router.rules import EscalationStep
from kanaal.router.sla import Calendar, Duration, due_at

AMS = ZoneInfo("Europe/Amsterdam")
CALENDAR = Calendar(
    timezone="Europe/Amsterdam",
    working_days=["mon", "tue", "wed", "thu", "fri"],
    opening_hours="08:30-17:00",
    holidays=[datetime(2026, 12, 25).date()],
)


def local(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=AMS)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("4h", 14_400), ("2d", 172_800), (" 1d ", 86_400)],
)
def test_a_duration_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    assert Duration.parse(text).seconds == seconds


@pytest.mark.parametrize("text", ["0s", "2w", "4 h", "h", "-1d", "1.5h", ""])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        Duration.parse(text)


# 2026-03-02 is a Monday; 2026-03-06 a Friday; 2026-12-25 a Friday (holiday).
@pytest.mark.parametrize(
    ("start", "sla", "due"),
    [
        (local(2, 10), "30s", local(2, 10) + timedelta(seconds=30)),
        (local(2, 10), "4h", local(2, 14)),
        (local(2, 15), "4h", local(3, 10, 30)),  # 2h today, 2h tomorrow from 08:30
        (local(2, 20), "30s", local(3, 8, 30) + timedelta(seconds=30)),  # after closing
        (local(2, 7), "15m", local(2, 8, 45)),  # before opening
        (local(6, 16), "2h", local(9, 9, 30)),  # Friday 16:00 -> Monday
        (local(7, 11), "1h", local(9, 9, 30)),  # Saturday
        (local(2, 10), "2d", local(4, 10)),
        (local(5, 15), "2d", local(9, 15)),  # Thursday -> Monday
        (local(7, 11), "1d", local(10, 8, 30)),  # Saturday -> Monday 08:30 + 1 working day
        (local(24, 12, month=12), "1d", local(28, 12, month=12)),  # over Christmas
        (local(24, 16, month=12), "2h", local(28, 9, 30, month=12)),
    ],
)
def test_with_a_calendar_hours_count_opening_hours_and_days_count_working_days(
    start: datetime, sla: str, due: datetime
) -> None:
    assert due_at(start, Duration.parse(sla), CALENDAR) == due.astimezone(UTC)


@pytest.mark.parametrize("sla", ["30s", "4h", "2d"])
def test_without_a_calendar_an_sla_is_wall_clock_time(sla: str) -> None:
    start = local(7, 23)  # Saturday night
    assert due_at(start, Duration.parse(sla)) == start + timedelta(
        seconds=Duration.parse(sla).seconds
    )


@pytest.mark.parametrize(
    ("remaining", "hold"),
    [(0.0, 1), (0.4, 1), (1, 1), (4.9, 1), (5, 5), (29, 5), (30, 30), (299, 30), (7200, 3600)],
)
def test_a_timer_waits_in_the_longest_holding_queue_that_does_not_overshoot(
    remaining: float, hold: int
) -> None:
    assert hold_seconds(remaining) == hold


# --- escalation chains --------------------------------------------------------------------------

ROUTED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def item(queue: str = "work.subject.parkeren", step: int = 0, **extra: object) -> WorkItem:
    return WorkItem.model_validate(
        {
            "contact_id": extra.pop("contact_id", uuid.UUID(int=1)),
            "case_ref": "K-2026-000042",
            "party_id": uuid.UUID(int=2),
            "channel": "web",
            "queue": queue,
            "rule": "ondernemers",
            "routed_at": ROUTED,
            "escalation_step": step,
            **extra,
        }
    )


CHAIN = [
    EscalationStep(queue="work.skill.teamleiders", sla=Duration.parse("4h")),
    EscalationStep(queue="work.skill.management", sla=Duration.parse("1d")),
    EscalationStep(queue="work.escalation"),
]


def test_an_escalation_chain_moves_step_by_step_and_ends_without_a_timer() -> None:
    timer = EscalationTimer(item=item(), due_at=ROUTED, steps=CHAIN)
    now = ROUTED + timedelta(hours=1)
    queues = []
    while True:
        outcome = escalate(timer, now, None)
        queues.append((outcome.item.queue, outcome.item.escalation_step, outcome.item.sla_due_at))
        assert outcome.event.event is CaseEventKind.ESCALATED
        assert outcome.event.from_queue == timer.item.queue
        assert outcome.event.queue == outcome.item.queue
        assert outcome.event.contact_id == timer.item.contact_id
        if outcome.next_timer is None:
            break
        timer = outcome.next_timer
    assert queues == [
        ("work.skill.teamleiders", 1, now + timedelta(hours=4)),
        ("work.skill.management", 2, now + timedelta(days=1)),
        ("work.escalation", 3, None),
    ]


def test_an_escalated_item_keeps_the_contact_the_case_and_the_priority() -> None:
    original = item(priority=7)
    outcome = escalate(EscalationTimer(item=original, due_at=ROUTED, steps=CHAIN[2:]), ROUTED, None)
    assert outcome.item.contact_id == original.contact_id
    assert outcome.item.case_ref == original.case_ref
    assert outcome.item.priority == 7
    assert outcome.next_timer is None


def event(kind: CaseEventKind, at: datetime, contact: int | None = 1, **extra: object) -> CaseEvent:
    return CaseEvent.model_validate(
        {
            "event": kind,
            "case_ref": "K-2026-000042",
            "contact_id": uuid.UUID(int=contact) if contact is not None else None,
            "at": at,
            **extra,
        }
    )


LATER = ROUTED + timedelta(minutes=5)
EARLIER = ROUTED - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("events", "settled"),
    [
        ([], False),
        ([event(CaseEventKind.CLAIMED, LATER)], True),
        ([event(CaseEventKind.CLAIMED, LATER, contact=9)], False),
        ([event(CaseEventKind.CLAIMED, LATER, contact=None)], True),
        ([event(CaseEventKind.CLAIMED, EARLIER, contact=None)], False),
        ([event(CaseEventKind.TRANSFERRED, LATER)], True),
        ([event(CaseEventKind.CLOSED, LATER, contact=None)], True),
        ([event(CaseEventKind.CLOSED, EARLIER, contact=None)], False),
        ([event(CaseEventKind.ESCALATED, LATER, from_queue="work.subject.parkeren",
                queue="work.escalation")], True),
        ([event(CaseEventKind.ESCALATED, LATER, from_queue="work.skill.anders",
                queue="work.escalation")], False),
    ],
)  # fmt: skip
def test_a_timer_is_settled_by_a_claim_transfer_close_or_an_escalation_already_done(
    events: list[CaseEvent], settled: bool
) -> None:
    waiting = WaitingWork()
    waiting.routed(item())
    for case_event in events:
        waiting.case_event(case_event)
    assert waiting.is_settled(item()) is settled


def test_the_oldest_waiting_item_per_queue_follows_claims_and_escalations() -> None:
    waiting = WaitingWork()
    waiting.routed(item(contact_id=uuid.UUID(int=1)))
    waiting.routed(item(contact_id=uuid.UUID(int=2), routed_at=LATER))
    waiting.routed(item("work.central", contact_id=uuid.UUID(int=3)))
    now = ROUTED + timedelta(hours=1)
    assert waiting.oldest(now) == {
        "work.subject.parkeren": timedelta(hours=1),
        "work.central": timedelta(hours=1),
    }
    waiting.case_event(event(CaseEventKind.CLAIMED, LATER, contact=1))
    waiting.case_event(
        event(CaseEventKind.ESCALATED, LATER, contact=3, from_queue="work.central",
              queue="work.escalation")
    )  # fmt: skip
    assert waiting.oldest(now) == {
        "work.subject.parkeren": timedelta(minutes=55),
        "work.escalation": timedelta(minutes=55),
    }


def test_the_journal_gives_a_restarted_router_the_same_view_of_waiting_work(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    journal = Journal(path)
    claimed = event(CaseEventKind.CLAIMED, LATER, contact=1)
    journal.append("contact.routed", item(contact_id=uuid.UUID(int=1)).model_dump_json().encode())
    journal.append("contact.routed", item(contact_id=uuid.UUID(int=2)).model_dump_json().encode())
    journal.append("case.claimed", claimed.model_dump_json().encode())
    journal.append("case.claimed", b"not json")
    journal.close()

    restarted = WaitingWork()
    assert Journal(path).replay(restarted) == 3
    assert restarted.is_settled(item(contact_id=uuid.UUID(int=1)))
    assert not restarted.is_settled(item(contact_id=uuid.UUID(int=2)))
    assert set(restarted.items) == {uuid.UUID(int=2)}


def test_timers_of_a_batch_share_one_message_per_holding_queue_and_both_forms_parse() -> None:
    soon = [EscalationTimer(item=item(), due_at=ROUTED + timedelta(seconds=40), steps=CHAIN)]
    later = [
        EscalationTimer(item=item(), due_at=ROUTED + timedelta(hours=h), steps=CHAIN)
        for h in (2, 3)
    ]
    batches = timer_batches([*later, *soon], ROUTED)
    assert {s: [t.item.contact_id for t in b.timers] for s, b in batches.items()} == {
        hold_seconds(40): [soon[0].item.contact_id],
        hold_seconds(7200): [t.item.contact_id for t in later],
    }
    # A timer sent on its own (routers before batching) is still understood.
    single = TimerMessage.model_validate_json(soon[0].model_dump_json())
    batch = TimerMessage.model_validate_json(batches[hold_seconds(7200)].model_dump_json())
    assert single.timers == soon
    assert batch.timers == later


def test_forgetting_drops_old_claims_and_escalations_but_keeps_waiting_work() -> None:
    waiting = WaitingWork()
    waiting.routed(item(contact_id=uuid.UUID(int=3)))  # never claimed: waits on
    waiting.case_event(event(CaseEventKind.CLAIMED, EARLIER, contact=1))
    waiting.case_event(event(CaseEventKind.CLAIMED, LATER, contact=2))
    waiting.case_event(
        event(CaseEventKind.ESCALATED, EARLIER, contact=4, from_queue="work.subject.parkeren",
              queue="work.escalation")
    )  # fmt: skip
    assert waiting.forget(ROUTED) == 2
    # What was claimed after the cut-off still settles its timer; what was before, not.
    assert waiting.is_settled(item(contact_id=uuid.UUID(int=2)))
    assert not waiting.is_settled(item(contact_id=uuid.UUID(int=1)))
    assert not waiting.is_settled(item(contact_id=uuid.UUID(int=4)))
    assert set(waiting.items) == {uuid.UUID(int=3)}
    assert waiting.oldest(LATER) == {"work.subject.parkeren": timedelta(minutes=5)}


def test_the_journal_forgets_events_older_than_its_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    journal = Journal(path, retention_days=30)
    now = time.time()
    for contact, days_ago in ((1, 31), (2, 29)):
        claimed = event(CaseEventKind.CLAIMED, LATER, contact=contact)
        with monkeypatch.context() as patched:
            patched.setattr(time, "time", lambda days=days_ago: now - days * 86_400)
            journal.append("case.claimed", claimed.model_dump_json().encode())
    assert journal.forget() == 1
    assert journal.forget() == 0
    journal.close()

    restarted = WaitingWork()
    assert Journal(path, retention_days=30).replay(restarted) == 1
    assert set(restarted.settled) == {uuid.UUID(int=2)}
