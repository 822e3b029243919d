"""Routing rules: which work queue a registered contact lands in, and why."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kanaal.common.config import ConfigError
from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact
from kanaal.router.rules import Decision, RoutingConfig, RoutingRules

REPO_ROOT = Path(__file__).resolve().parents[3]
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SUBJECT_QUEUES = ["work.subject.parkeren", "work.subject.afval", "work.subject.paspoort"]


def rules(strategy: str = "subject", default: str = "work.central", **extra: Any) -> RoutingRules:
    return RoutingRules(
        RoutingConfig.model_validate(
            {"strategy": strategy, "queues": SUBJECT_QUEUES, "default": default, **extra}
        )
    )


def registered(
    subject: str | None = "parkeren",
    *,
    priority: int = 0,
    case_queue: str | None = None,
    case_is_new: bool = True,
    channel: str = "web",
) -> RegisteredContact:
    contact = ContactMessage.new(
        channel=channel,
        entry_point="contactformulier",
        source_ref=f"s-{uuid.uuid4()}",
        occurred_at=WHEN,
        subject=subject,
        priority=priority,
    )
    return RegisteredContact(
        contact=contact,
        party_id=uuid.uuid4(),
        case_ref="K-2026-000042",
        case_status=CaseStatus.OPEN,
        case_is_new=case_is_new,
        case_queue=case_queue,
        registered_at=WHEN,
    )


# --- subject strategy ---------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["parkeren", "afval", "paspoort"])
def test_a_subject_with_its_own_queue_goes_there(subject: str) -> None:
    assert rules().decide(registered(subject)) == Decision(
        f"work.subject.{subject}", "strategy:subject", 0
    )


@pytest.mark.parametrize("subject", ["belastingen", "hondenbelasting", "algemeen"])
def test_a_subject_without_a_declared_queue_goes_to_the_default(subject: str) -> None:
    assert rules().decide(registered(subject)) == Decision("work.central", "default", 0)


def test_a_contact_without_a_subject_goes_to_the_default() -> None:
    assert rules().decide(registered(None)) == Decision("work.central", "default", 0)


def test_the_default_queue_is_whatever_routing_yaml_names() -> None:
    decision = rules(default="work.skill.algemeen").decide(registered("onbekend"))
    assert decision == Decision("work.skill.algemeen", "default", 0)


def test_the_default_queue_counts_as_declared_for_the_subject_strategy() -> None:
    decision = rules(default="work.subject.algemeen").decide(registered("algemeen"))
    assert decision == Decision("work.subject.algemeen", "strategy:subject", 0)


@pytest.mark.parametrize("channel", ["email", "phone", "web", "counter", "whats-app"])
def test_the_channel_does_not_change_the_subject_queue(channel: str) -> None:
    assert rules().decide(registered("afval", channel=channel)).queue == "work.subject.afval"


# --- central strategy ---------------------------------------------------------------------------


@pytest.mark.parametrize("subject", ["parkeren", "afval", "hondenbelasting", None])
def test_the_central_strategy_sends_everything_to_the_default_queue(subject: str | None) -> None:
    assert rules("central").decide(registered(subject)) == Decision("work.central", "default", 0)


def test_without_a_strategy_routing_is_central() -> None:
    config = RoutingConfig.model_validate({"queues": SUBJECT_QUEUES})
    assert RoutingRules(config).decide(registered("parkeren")).queue == "work.central"


# --- sticky cases -------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["subject", "central"])
def test_a_contact_on_an_existing_case_goes_to_the_case_queue(strategy: str) -> None:
    decision = rules(strategy).decide(
        registered("parkeren", case_queue="work.subject.afval", case_is_new=False)
    )
    assert decision == Decision("work.subject.afval", "sticky", 0)


def test_a_new_case_is_routed_by_the_strategy_even_if_it_names_a_queue() -> None:
    decision = rules().decide(
        registered("parkeren", case_queue="work.subject.afval", case_is_new=True)
    )
    assert decision == Decision("work.subject.parkeren", "strategy:subject", 0)


def test_an_existing_case_without_an_owning_queue_is_routed_by_the_strategy() -> None:
    decision = rules().decide(registered("paspoort", case_queue=None, case_is_new=False))
    assert decision == Decision("work.subject.paspoort", "strategy:subject", 0)


def test_a_case_queue_no_longer_declared_is_not_sticky() -> None:
    decision = rules().decide(
        registered("parkeren", case_queue="work.subject.opgeheven", case_is_new=False)
    )
    assert decision == Decision("work.subject.parkeren", "strategy:subject", 0)


# --- priority -----------------------------------------------------------------------------------


@pytest.mark.parametrize("priority", [0, 1, 5, 9])
@pytest.mark.parametrize(
    ("subject", "case_queue", "case_is_new"),
    [("parkeren", None, True), ("onbekend", None, True), ("afval", "work.subject.paspoort", False)],
)
def test_the_contacts_priority_is_carried_whatever_rule_decides(
    priority: int, subject: str, case_queue: str | None, case_is_new: bool
) -> None:
    contact = registered(subject, priority=priority, case_queue=case_queue, case_is_new=case_is_new)
    assert rules().decide(contact).priority == priority


@given(
    subject=st.one_of(
        st.none(),
        st.sampled_from(["parkeren", "afval", "paspoort", "belastingen"]),
        st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True),
    ),
    strategy=st.sampled_from(["subject", "central"]),
    priority=st.integers(0, 9),
)
def test_without_a_sticky_case_every_decision_names_a_declared_queue(
    subject: str | None, strategy: str, priority: int
) -> None:
    routing = rules(strategy)
    decision = routing.decide(registered(subject, priority=priority))
    assert decision.queue in routing.queues
    assert decision.priority == priority
    expected = (
        f"work.subject.{subject}"
        if strategy == "subject" and f"work.subject.{subject}" in SUBJECT_QUEUES
        else "work.central"
    )
    assert decision.queue == expected


# --- routing.yaml -------------------------------------------------------------------------------


def test_the_shipped_routing_yaml_routes_parkeren_to_its_subject_queue() -> None:
    shipped = RoutingRules.load(REPO_ROOT / "deploy" / "config" / "routing.yaml")
    assert shipped.config.strategy == "subject"
    assert "work.subject.parkeren" in shipped.queues
    assert shipped.decide(registered("parkeren")).queue == "work.subject.parkeren"
    assert shipped.decide(registered("hondenbelasting")).queue == "work.central"


def load(tmp_path: Path, text: str) -> RoutingRules:
    path = tmp_path / "routing.yaml"
    path.write_text(text, encoding="utf-8")
    return RoutingRules.load(path)


def test_a_routing_yaml_written_by_hand_is_read(tmp_path: Path) -> None:
    routing = load(
        tmp_path,
        "strategy: subject\nqueues:\n  - work.subject.afval\ndefault: work.escalation\nrules: []\n",
    )
    assert routing.decide(registered("afval")).queue == "work.subject.afval"
    assert routing.decide(registered("parkeren")).queue == "work.escalation"


def config_error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert info.value.path == tmp_path / "routing.yaml"
    assert str(tmp_path / "routing.yaml") in str(info.value)
    return info.value


def test_an_unknown_strategy_names_the_strategy_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, "strategy: by-moon-phase\n")
    assert len(error.problems) == 1
    assert error.problems[0].startswith("strategy: Input should be 'subject' or 'central'")


def test_a_bad_queue_name_names_its_position(tmp_path: Path) -> None:
    error = config_error(tmp_path, "queues:\n  - work.subject.parkeren\n  - parkeren\n")
    assert [p.split(":")[0] for p in error.problems] == ["queues.1"]


def test_a_bad_default_queue_names_the_default_key(tmp_path: Path) -> None:
    error = config_error(tmp_path, "default: Work.Central\n")
    assert [p.split(":")[0] for p in error.problems] == ["default"]


def test_an_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    error = config_error(tmp_path, "strategy: subject\nstratgey: central\n")
    assert error.problems == ["stratgey: Extra inputs are not permitted"]


def test_several_problems_are_all_reported_at_once(tmp_path: Path) -> None:
    error = config_error(tmp_path, "strategy: nowhere\nqueues: [Bad]\ncolour: blue\n")
    assert {p.split(":")[0] for p in error.problems} == {"strategy", "queues.0", "colour"}


def test_a_missing_routing_yaml_says_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routing\.yaml: file not found"):
        RoutingRules.load(tmp_path / "routing.yaml")
