"""Pure rules for cases (zaken): references, which case a contact may join, reopening,
claiming, and where an answer goes.

No database here: the store loads a :class:`CaseState` under the case's lock, asks
these functions what to do, and applies the answer in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from kanaal.common.contract import CASE_REF_RE, CaseStatus

CASE_NUMBER_DIGITS: Final = 6
MAX_CASE_NUMBER: Final = 10**CASE_NUMBER_DIGITS - 1


def format_case_ref(year: int, number: int) -> str:
    """`K-<year>-<6 digits>`, e.g. `K-2026-000042`."""
    if not 1000 <= year <= 9999:
        raise ValueError(f"a case year has 4 digits, not {year}")
    if not 1 <= number <= MAX_CASE_NUMBER:
        raise ValueError(f"case number {number} is outside 1..{MAX_CASE_NUMBER} for {year}")
    return f"K-{year:04d}-{number:0{CASE_NUMBER_DIGITS}d}"


def is_case_ref(value: str) -> bool:
    return CASE_REF_RE.fullmatch(value) is not None


class QueueReason(StrEnum):
    """How a case came to be in its current work queue."""

    ROUTED = "routed"
    TRANSFERRED = "transferred"
    ESCALATED = "escalated"


@dataclass(frozen=True)
class CaseState:
    """What the rules look at of a case."""

    ref: str
    status: CaseStatus
    queue: str | None
    agent: str | None
    queue_reason: QueueReason | None = None
    closed_at: datetime | None = None


# -- which case a contact joins ---------------------------------------------------------------


@dataclass(frozen=True)
class KnownCase:
    """A stored case as far as deciding a contact's link needs it."""

    id: uuid.UUID
    ref: str
    party_id: uuid.UUID


class RefusedReason(StrEnum):
    """Why a case reference a contact carries was not followed."""

    OTHER_PARTY = "other_party"  # the case is another customer's
    UNKNOWN = "unknown"  # no case has this reference
    UNPROVEN = "unproven"  # the sender only typed who they are


REFUSED_WORDS: Final = {
    RefusedReason.OTHER_PARTY: "andere klant",
    RefusedReason.UNKNOWN: "onbekende zaak",
    RefusedReason.UNPROVEN: "klant niet vastgesteld",
}

#: Channels whose party is what the sender typed (a web form's e-mail address, name,
#: phone): it proves nobody's identity, so there a named case is joined only by thread.
TYPED_PARTY_CHANNELS: Final = frozenset({"web"})


@dataclass(frozen=True)
class CaseLink:
    """The case a contact joins (None: open a new one), and a reference it named in vain."""

    case: KnownCase | None
    refused_ref: str | None = None
    refused: RefusedReason | None = None

    @property
    def note(self) -> str | None:
        """The line for the agent, in Dutch, on the case the contact joins."""
        if self.refused is None:
            return None
        return f"Noemt zaak {self.refused_ref}, niet gekoppeld: {REFUSED_WORDS[self.refused]}"


def link_case(
    case_ref: str | None,
    named: KnownCase | None,
    thread: KnownCase | None,
    party_id: uuid.UUID,
    party_proven: bool = True,
) -> CaseLink:
    """Which case a contact joins: the one it names, only when that is provably its own.

    Anyone can type a case reference (a web form, an e-mail subject, a callback
    request), so a named case is trusted only when the contact's party is the case's
    party, or when the contact answers a message of that case (`thread`: the case of
    the message its `in_reply_to` quotes, found only among messages the channel
    itself threads). A named case that is neither is not joined: the contact goes on as
    if it had named none (the thread's case, else a new one), and the note keeps the
    reference for the agent without telling the customer anything about that case.
    Where the party is only typed (`party_proven=False`: a web form), matching it proves
    nothing: someone who knows a citizen's e-mail address and case number could otherwise
    read that case's answers; there only the thread counts.
    """
    if case_ref is None:
        return CaseLink(thread)
    if named is None:
        return CaseLink(thread, case_ref, RefusedReason.UNKNOWN)
    if thread is not None and thread.id == named.id:
        return CaseLink(named)
    if named.party_id == party_id:
        return (
            CaseLink(named) if party_proven else CaseLink(thread, named.ref, RefusedReason.UNPROVEN)
        )
    return CaseLink(thread, named.ref, RefusedReason.OTHER_PARTY)


# -- later facts about a contact -------------------------------------------------------------

UPDATE_WORDS: Final = {"called": "opgeroepen", "served": "geholpen", "no_show": "niet verschenen"}


def describe_update(event: str, facts: Mapping[str, object]) -> str:
    """The timeline line of a `contact.updated` (a counter visit's desk event), in Dutch."""
    parts = [UPDATE_WORDS.get(event, event.replace("_", " "))]
    if facts.get("desk") is not None:
        parts.append(f"balie {facts['desk']}")
    for key, word in (("wait_seconds", "wachttijd"), ("service_seconds", "duur")):
        seconds = facts.get(key)
        if isinstance(seconds, int) and not isinstance(seconds, bool):
            parts.append(f"{word} {_minutes(seconds)}")
    if facts.get("outcome") is not None:
        parts.append(f"resultaat {facts['outcome']}")
    return ", ".join(parts)


def _minutes(seconds: int) -> str:
    return f"{seconds} s" if seconds < 60 else f"{round(seconds / 60)} min"


# -- a contact on a closed case -------------------------------------------------------------


class ClosedCaseAction(StrEnum):
    REOPEN = "reopen"
    FOLLOW_UP = "follow_up"  # a new case linked to the closed one


def on_contact_for_closed_case(
    closed_at: datetime, now: datetime, window: timedelta
) -> ClosedCaseAction:
    """Within `window` after closing a contact reopens the case; later it opens a new one."""
    return ClosedCaseAction.REOPEN if now - closed_at <= window else ClosedCaseAction.FOLLOW_UP


# -- claiming a work item -------------------------------------------------------------------


class StaleReason(StrEnum):
    """Why a work item no longer stands for work an agent may take."""

    CLAIMED = "claimed"  # another agent has the case
    TRANSFERRED = "transferred"  # the case moved to another queue by a transfer
    ESCALATED = "escalated"  # the case moved to another queue because its SLA passed
    MOVED = "moved"  # the case is in another queue for another reason (re-routed)
    CLOSED = "closed"


@dataclass(frozen=True)
class ClaimDecision:
    """The outcome of a claim: won (and whether anything changes) or stale with why."""

    won: bool
    changed: bool = False
    stale: StaleReason | None = None
    holder: str | None = None  # the agent or queue that has the case now


def decide_claim(case: CaseState, agent: str, queue: str) -> ClaimDecision:
    """May `agent` take the work item from `queue` for `case`?

    The first claim wins; the winner claiming again is a harmless repeat. An item from
    a queue the case has left (transferred, escalated) is stale, and so is any item of
    a closed case. A case whose routing the dossier has not recorded yet (no queue) may
    be claimed from the queue the item came from.
    """
    if case.status is CaseStatus.CLOSED:
        return ClaimDecision(won=False, stale=StaleReason.CLOSED)
    if case.agent is not None:
        if case.agent == agent:
            return ClaimDecision(won=True, changed=case.queue is None, holder=agent)
        return ClaimDecision(won=False, stale=StaleReason.CLAIMED, holder=case.agent)
    if case.queue is not None and case.queue != queue:
        reason = {
            QueueReason.TRANSFERRED: StaleReason.TRANSFERRED,
            QueueReason.ESCALATED: StaleReason.ESCALATED,
        }.get(case.queue_reason or QueueReason.ROUTED, StaleReason.MOVED)
        return ClaimDecision(won=False, stale=reason, holder=case.queue)
    return ClaimDecision(won=True, changed=True, holder=agent)


class EscalationOutcome(StrEnum):
    APPLIED = "applied"
    ALREADY_CLAIMED = "already_claimed"
    CLOSED = "closed"
    MOVED = "moved"  # the case left the escalated queue before the escalation arrived


def decide_escalation(case: CaseState, from_queue: str | None) -> EscalationOutcome:
    """The router escalates a work item whose SLA passed; a claimed case stays where it is."""
    if case.status is CaseStatus.CLOSED:
        return EscalationOutcome.CLOSED
    if case.agent is not None:
        return EscalationOutcome.ALREADY_CLAIMED
    if from_queue is not None and case.queue is not None and case.queue != from_queue:
        return EscalationOutcome.MOVED
    return EscalationOutcome.APPLIED


# -- answering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EarlierContact:
    """A customer's inbound contact, as far as choosing where to answer needs it."""

    channel: str
    entry_point: str
    source_ref: str
    on_this_case: bool


@dataclass(frozen=True)
class ReplyRoute:
    channel: str
    entry_point: str
    in_reply_to: str | None


class NoReplyRoute(ValueError):
    """The answer cannot go anywhere: the reason says what to pass instead."""


def choose_reply_route(
    earlier: Sequence[EarlierContact],
    outbound_channels: Iterable[str],
    *,
    channel: str | None = None,
    entry_point: str | None = None,
    preferred_channel: str | None = None,
) -> ReplyRoute:
    """Where an agent's answer goes: the channel asked for, else the customer's own channel.

    The customer's channel is the one of their last contact on this case, else their
    preferred channel, else the channel of their last contact on any case, as long as
    it can send (`outbound: true`). The answer leaves through the entry point of the
    customer's last contact on that channel (this case first), and answers that contact.
    `earlier` is newest first.
    """
    can_send = set(outbound_channels)
    if channel is None:
        candidates = [c.channel for c in earlier if c.on_this_case][:1]
        candidates += [preferred_channel] if preferred_channel else []
        candidates += [c.channel for c in earlier]
        usable = [c for c in candidates if c in can_send]
        if not usable:
            raise NoReplyRoute(
                "the customer's channels cannot send answers; name a channel that can: "
                + ", ".join(sorted(can_send))
            )
        channel = usable[0]
    elif channel not in can_send:
        raise NoReplyRoute(f"channel {channel!r} cannot send answers (outbound is off)")
    on_channel = sorted(
        (c for c in earlier if c.channel == channel), key=lambda c: not c.on_this_case
    )
    if on_channel:
        last = on_channel[0]
        return ReplyRoute(channel, entry_point or last.entry_point, last.source_ref)
    if entry_point is None:
        raise NoReplyRoute(
            f"the customer never contacted us by {channel}: pass the entry_point to send from"
        )
    return ReplyRoute(channel, entry_point, None)
