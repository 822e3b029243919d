"""The pure case rules: references, reopening, claiming, escalation, where an answer goes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from kanaal.common.contract import CaseStatus
from kanaal.dossier.cases import (
    CaseState,
    ClaimDecision,
    ClosedCaseAction,
    EarlierContact,
    EscalationOutcome,
    KnownCase,
    NoReplyRoute,
    QueueReason,
    RefusedReason,
    ReplyRoute,
    StaleReason,
    choose_reply_route,
    decide_claim,
    decide_escalation,
    describe_update,
    format_case_ref,
    is_case_ref,
    link_case,
    on_contact_for_closed_case,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
Q = "work.subject.parkeren"


def test_case_ref_pads_the_number_to_six_digits() -> None:
    assert format_case_ref(2026, 42) == "K-2026-000042"
    assert format_case_ref(2026, 999_999) == "K-2026-999999"


def test_formatted_case_refs_match_the_contract_pattern() -> None:
    assert is_case_ref(format_case_ref(2026, 1))
    assert not is_case_ref("K-2026-42")


@pytest.mark.parametrize(("year", "number"), [(2026, 0), (2026, 1_000_000), (999, 1)])
def test_case_ref_refuses_numbers_outside_its_shape(year: int, number: int) -> None:
    with pytest.raises(ValueError, match="case"):
        format_case_ref(year, number)


def test_a_contact_within_the_window_reopens_and_later_follows_up() -> None:
    window = timedelta(days=14)
    assert on_contact_for_closed_case(T0, T0 + window, window) is ClosedCaseAction.REOPEN
    later = T0 + window + timedelta(seconds=1)
    assert on_contact_for_closed_case(T0, later, window) is ClosedCaseAction.FOLLOW_UP
    assert on_contact_for_closed_case(T0, T0, timedelta(0)) is ClosedCaseAction.REOPEN


def state(
    *,
    status: CaseStatus = CaseStatus.OPEN,
    queue: str | None = Q,
    agent: str | None = None,
    reason: QueueReason | None = QueueReason.ROUTED,
) -> CaseState:
    return CaseState("K-2026-000001", status, queue, agent, reason)


CLAIMS = [
    (
        "an unclaimed case in the item's queue",
        state(),
        "anna",
        Q,
        ClaimDecision(True, True, None, "anna"),
    ),
    (
        "a case whose routing is not recorded yet",
        state(queue=None, reason=None),
        "anna",
        Q,
        ClaimDecision(True, True, None, "anna"),
    ),
    (
        "the winner claiming again",
        state(agent="anna"),
        "anna",
        Q,
        ClaimDecision(True, False, None, "anna"),
    ),
    (
        "another agent's case",
        state(agent="bram"),
        "anna",
        Q,
        ClaimDecision(False, False, StaleReason.CLAIMED, "bram"),
    ),
    (
        "a transferred case",
        state(queue="work.central", reason=QueueReason.TRANSFERRED),
        "anna",
        Q,
        ClaimDecision(False, False, StaleReason.TRANSFERRED, "work.central"),
    ),
    (
        "an escalated case",
        state(queue="work.escalation", reason=QueueReason.ESCALATED),
        "anna",
        Q,
        ClaimDecision(False, False, StaleReason.ESCALATED, "work.escalation"),
    ),
    (
        "a re-routed case",
        state(queue="work.central"),
        "anna",
        Q,
        ClaimDecision(False, False, StaleReason.MOVED, "work.central"),
    ),
    (
        "a closed case",
        state(status=CaseStatus.CLOSED),
        "anna",
        Q,
        ClaimDecision(False, False, StaleReason.CLOSED, None),
    ),
    (
        "an escalated case from the escalation queue",
        state(queue="work.escalation", reason=QueueReason.ESCALATED),
        "anna",
        "work.escalation",
        ClaimDecision(True, True, None, "anna"),
    ),
]


@pytest.mark.parametrize(
    ("case", "agent", "queue", "expected"), [c[1:] for c in CLAIMS], ids=[c[0] for c in CLAIMS]
)
def test_claim_decisions(case: CaseState, agent: str, queue: str, expected: ClaimDecision) -> None:
    assert decide_claim(case, agent, queue) == expected


def test_an_escalation_moves_only_an_unclaimed_open_case_still_in_the_escalated_queue() -> None:
    assert decide_escalation(state(), Q) is EscalationOutcome.APPLIED
    assert decide_escalation(state(), None) is EscalationOutcome.APPLIED
    assert decide_escalation(state(agent="anna"), Q) is EscalationOutcome.ALREADY_CLAIMED
    assert decide_escalation(state(status=CaseStatus.CLOSED), Q) is EscalationOutcome.CLOSED
    moved = state(queue="work.central", reason=QueueReason.TRANSFERRED)
    assert decide_escalation(moved, Q) is EscalationOutcome.MOVED


WEB = EarlierContact("web", "contactformulier", "sub-1", on_this_case=True)
MAIL_OTHER_CASE = EarlierContact("email", "info@gemeente.nl", "<m1@x>", on_this_case=False)
MAIL_THIS_CASE = EarlierContact("email", "vergunning@gemeente.nl", "<m2@x>", on_this_case=True)
PHONE = EarlierContact("phone", "14020", "call-1", on_this_case=True)
OUT = ("email", "web")


def test_the_answer_goes_to_the_channel_of_the_last_contact_on_the_case() -> None:
    route = choose_reply_route([WEB, MAIL_OTHER_CASE], OUT)
    assert route == ReplyRoute("web", "contactformulier", "sub-1")


def test_the_answer_leaves_from_the_entry_point_of_the_contact_on_this_case_first() -> None:
    route = choose_reply_route([MAIL_OTHER_CASE, MAIL_THIS_CASE], OUT, channel="email")
    assert route == ReplyRoute("email", "vergunning@gemeente.nl", "<m2@x>")


def test_a_channel_that_cannot_send_falls_back_to_the_preferred_one() -> None:
    route = choose_reply_route([PHONE, MAIL_OTHER_CASE], OUT, preferred_channel="email")
    assert route == ReplyRoute("email", "info@gemeente.nl", "<m1@x>")


def test_a_channel_that_cannot_send_is_refused_when_asked_for() -> None:
    with pytest.raises(NoReplyRoute, match="outbound"):
        choose_reply_route([PHONE], OUT, channel="phone")


def test_a_channel_the_customer_never_used_needs_an_entry_point() -> None:
    with pytest.raises(NoReplyRoute, match="entry_point"):
        choose_reply_route([WEB], OUT, channel="email")
    route = choose_reply_route([WEB], OUT, channel="email", entry_point="info@gemeente.nl")
    assert route == ReplyRoute("email", "info@gemeente.nl", None)


def test_no_channel_that_can_send_is_refused() -> None:
    with pytest.raises(NoReplyRoute, match="name a channel"):
        choose_reply_route([PHONE], OUT)


# -- which case a contact joins ---------------------------------------------------------------

OWNER, OTHER = uuid.uuid4(), uuid.uuid4()
NAMED = KnownCase(uuid.uuid4(), "K-2026-000001", OWNER)
THREAD = KnownCase(uuid.uuid4(), "K-2026-000002", OTHER)


def test_a_named_case_of_the_same_party_is_joined() -> None:
    link = link_case(NAMED.ref, NAMED, None, OWNER)
    assert (link.case, link.refused, link.note) == (NAMED, None, None)


def test_a_named_case_of_another_party_is_refused_and_kept_as_a_note() -> None:
    link = link_case(NAMED.ref, NAMED, None, OTHER)
    assert link.case is None
    assert link.refused is RefusedReason.OTHER_PARTY
    assert link.note == "Noemt zaak K-2026-000001, niet gekoppeld: andere klant"


def test_a_named_case_the_contact_answers_a_message_of_is_joined_whoever_writes() -> None:
    own_thread = KnownCase(NAMED.id, NAMED.ref, OWNER)
    link = link_case(NAMED.ref, NAMED, own_thread, OTHER)
    assert (link.case, link.refused) == (NAMED, None)


def test_a_refused_reference_leaves_the_contact_on_the_thread_it_answers() -> None:
    link = link_case(NAMED.ref, NAMED, THREAD, OTHER)
    assert (link.case, link.refused) == (THREAD, RefusedReason.OTHER_PARTY)


def test_no_reference_follows_the_thread_or_opens_a_case() -> None:
    assert link_case(None, None, THREAD, OWNER).case == THREAD
    assert link_case(None, None, None, OWNER).case is None
    assert link_case(None, None, None, OWNER).note is None


def test_an_unknown_reference_is_noted_as_unknown() -> None:
    link = link_case("K-1999-000001", None, None, OWNER)
    assert (link.case, link.refused) == (None, RefusedReason.UNKNOWN)
    assert link.note == "Noemt zaak K-1999-000001, niet gekoppeld: onbekende zaak"


# -- later facts about a contact --------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "facts", "line"),
    [
        ("called", {"desk": "3", "wait_seconds": 240}, "opgeroepen, balie 3, wachttijd 4 min"),
        (
            "served",
            {"desk": "3", "service_seconds": 45, "outcome": "afgehandeld"},
            "geholpen, balie 3, duur 45 s, resultaat afgehandeld",
        ),
        ("no_show", {"status": "no_show"}, "niet verschenen"),
        ("paused_queue", {}, "paused queue"),
    ],
)
def test_a_desk_event_reads_as_one_dutch_line(
    event: str, facts: dict[str, object], line: str
) -> None:
    assert describe_update(event, facts) == line
