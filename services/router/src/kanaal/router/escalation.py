"""Pure escalation: SLA timers, what is still waiting, and what an expired timer becomes.

A timer is a message the router keeps in the broker (see topology: `router.hold.*`,
`router.timers`). What it needs to know when a timer fires (was the work claimed,
transferred, closed, already escalated?) it learns from the events on `router.events`,
journalled and folded into a :class:`WaitingWork` view.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, RootModel

from kanaal.common.contract import CaseEvent, CaseEventKind, WorkItem
from kanaal.common.topology import HOLD_SECONDS
from kanaal.router.rules import EscalationStep
from kanaal.router.sla import Calendar, due_at


class EscalationTimer(BaseModel):
    """The router's own message: a work item, when its SLA passes, and where it goes next."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: WorkItem
    due_at: datetime
    steps: list[EscalationStep] = Field(min_length=1)

    @property
    def timer_id(self) -> str:
        return f"{self.item.contact_id}:{self.item.escalation_step}"


class TimerBatch(BaseModel):
    """Several timers in one message: one per holding queue for a batch of routed contacts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timers: list[EscalationTimer] = Field(min_length=1)

    @property
    def batch_id(self) -> str:
        return f"{self.timers[0].timer_id}+{len(self.timers) - 1}"


class TimerMessage(RootModel[TimerBatch | EscalationTimer]):
    """What `router.timers` carries: a batch, or a single timer (as routers before 0.2 sent)."""

    @property
    def timers(self) -> list[EscalationTimer]:
        root = self.root
        return root.timers if isinstance(root, TimerBatch) else [root]


def timer_batches(timers: Iterable[EscalationTimer], now: datetime) -> dict[int, TimerBatch]:
    """Timers grouped by the holding queue each waits in (seconds), one batch per queue."""
    groups: dict[int, list[EscalationTimer]] = {}
    for timer in timers:
        wait = hold_seconds((timer.due_at - now).total_seconds())
        groups.setdefault(wait, []).append(timer)
    return {wait: TimerBatch(timers=group) for wait, group in groups.items()}


def hold_seconds(remaining: float) -> int:
    """The holding queue a timer waits in: the longest wait that does not overshoot."""
    fitting = [s for s in HOLD_SECONDS if s <= remaining]
    return fitting[-1] if fitting else HOLD_SECONDS[0]


@dataclass(frozen=True)
class Escalated:
    """What an expired, unclaimed timer becomes."""

    item: WorkItem
    event: CaseEvent
    next_timer: EscalationTimer | None


def escalate(timer: EscalationTimer, now: datetime, calendar: Calendar | None) -> Escalated:
    step, rest = timer.steps[0], timer.steps[1:]
    due = due_at(now, step.sla, calendar) if step.sla is not None else None
    item = timer.item.model_copy(
        update={
            "queue": step.queue,
            "escalation_step": timer.item.escalation_step + 1,
            "routed_at": now,
            "sla_due_at": due,
        }
    )
    event = CaseEvent(
        event=CaseEventKind.ESCALATED,
        case_ref=timer.item.case_ref,
        contact_id=timer.item.contact_id,
        queue=step.queue,
        from_queue=timer.item.queue,
        reason=f"SLA passed unclaimed (step {item.escalation_step}, rule {timer.item.rule})",
        at=now,
    )
    next_timer = (
        EscalationTimer(item=item, due_at=due, steps=rest) if due is not None and rest else None
    )
    return Escalated(item, event, next_timer)


K = TypeVar("K")


@dataclass
class Waiting:
    case_ref: str
    queue: str
    routed_at: datetime


@dataclass
class WaitingWork:
    """Routed work not yet claimed, transferred or closed, folded from events.

    Replayed from the router's journal whenever the router starts, so it survives
    restarts. What settles work is remembered with its time, so that :meth:`forget` can
    drop what no timer can still ask about.
    """

    items: dict[uuid.UUID, Waiting] = field(default_factory=dict)
    #: (contact id, queue it was escalated from) -> when: a redelivered timer must not
    #: redo an escalation
    escalated: dict[tuple[uuid.UUID, str], datetime] = field(default_factory=dict)
    #: contact id -> when it was claimed or transferred
    settled: dict[uuid.UUID, datetime] = field(default_factory=dict)
    #: case -> the last case-wide claim/transfer/close: settles work routed before it
    case_settled_at: dict[str, datetime] = field(default_factory=dict)

    def routed(self, item: WorkItem) -> None:
        if item.contact_id in self.settled or item.contact_id in self.items:
            return
        self.items[item.contact_id] = Waiting(item.case_ref, item.queue, item.routed_at)

    def case_event(self, event: CaseEvent) -> None:
        if event.event is CaseEventKind.ESCALATED:
            if event.contact_id is None or event.from_queue is None:
                return
            self.escalated[(event.contact_id, event.from_queue)] = event.at
            waiting = self.items.get(event.contact_id)
            if (
                waiting is not None
                and event.queue is not None
                and waiting.queue == (event.from_queue)
            ):
                waiting.queue, waiting.routed_at = event.queue, event.at
            return
        if event.contact_id is not None and event.event is not CaseEventKind.CLOSED:
            self.settled[event.contact_id] = event.at
            self.items.pop(event.contact_id, None)
            return
        previous = self.case_settled_at.get(event.case_ref)
        if previous is None or event.at > previous:
            self.case_settled_at[event.case_ref] = event.at
        for contact_id, waiting in list(self.items.items()):
            if waiting.case_ref == event.case_ref and waiting.routed_at <= event.at:
                del self.items[contact_id]

    def forget(self, before: datetime) -> int:
        """Drop claims, transfers, closes and escalations from before `before`.

        Only a timer due after `before` could still ask about them, which the retention
        rules out; without this, a router running for months would grow without end.
        Work still waiting is kept, however old. Returns how many entries went.
        """
        return (
            _drop_before(self.settled, before)
            + _drop_before(self.escalated, before)
            + _drop_before(self.case_settled_at, before)
        )

    def is_settled(self, item: WorkItem) -> bool:
        """Whether the work item needs no escalation: claimed, moved or closed meanwhile."""
        if item.contact_id in self.settled:
            return True
        if (item.contact_id, item.queue) in self.escalated:
            return True
        settled_at = self.case_settled_at.get(item.case_ref)
        return settled_at is not None and item.routed_at <= settled_at

    def oldest(self, now: datetime) -> dict[str, timedelta]:
        """Per work queue, how long its oldest waiting item has waited."""
        oldest: dict[str, datetime] = {}
        for waiting in self.items.values():
            if waiting.queue not in oldest or waiting.routed_at < oldest[waiting.queue]:
                oldest[waiting.queue] = waiting.routed_at
        return {queue: now - at for queue, at in oldest.items()}


def _drop_before(table: dict[K, datetime], before: datetime) -> int:
    old = [key for key, at in table.items() if at < before]
    for key in old:
        del table[key]
    return len(old)
