"""Which queues an agent serves and in which order "next" looks: pure, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kanaal.common.agents import AgentConfig, Role
from kanaal.desk.served import (
    ServedQueues,
    agents_serving,
    parse_order,
    served_queues,
    take_order,
)

DECLARED = [
    "work.central",
    "work.escalation",
    "work.group.ondernemers",
    "work.location.noord",
    "work.skill.terugbellen",
    "work.subject.afval",
    "work.subject.parkeren",
]


def agent(**fields: object) -> AgentConfig:
    fields.setdefault("id", "anna")
    fields.setdefault("name", "Anna")
    fields.setdefault("token_sha256", "0" * 64)
    return AgentConfig.model_validate(fields)


def test_an_agent_serves_the_declared_queues_of_its_skills_locations_and_central() -> None:
    anna = agent(skills=["parkeren", "terugbellen", "vergunningen"], locations=["noord", "zuid"])
    served = served_queues(anna, DECLARED)
    assert served.queues == (
        "work.skill.terugbellen",
        "work.subject.parkeren",
        "work.location.noord",
        "work.central",
    )
    # Urgent partners first, in the same order; each names its work queue.
    assert served.lookup[:2] == (
        ("work.skill.terugbellen.urgent", "work.skill.terugbellen"),
        ("work.subject.parkeren.urgent", "work.subject.parkeren"),
    )
    assert served.lookup[4] == ("work.skill.terugbellen", "work.skill.terugbellen")


def test_explicit_queues_come_first_and_only_supervisors_serve_escalation() -> None:
    sara = agent(id="sara", role=Role.SUPERVISOR, queues=["work.group.ondernemers"])
    assert served_queues(sara, DECLARED).queues == (
        "work.group.ondernemers",
        "work.central",
        "work.escalation",
    )
    assert "work.escalation" not in served_queues(agent(), DECLARED).queues


def test_the_configured_order_orders_and_limits_the_families() -> None:
    anna = agent(skills=["parkeren"], locations=["noord"])
    order = parse_order("location, subject")
    assert served_queues(anna, DECLARED, order).queues == (
        "work.location.noord",
        "work.subject.parkeren",
    )
    with pytest.raises(ValueError, match="unknown queue families"):
        parse_order("skill,planet")
    with pytest.raises(ValueError, match="twice"):
        parse_order("skill,skill")


def test_the_overview_names_who_serves_each_queue() -> None:
    anna = agent(skills=["parkeren"])
    bram = agent(id="bram", locations=["noord"])
    serving = agents_serving([anna, bram], DECLARED)
    assert serving["work.subject.parkeren"] == ["anna"]
    assert serving["work.location.noord"] == ["bram"]
    assert serving["work.central"] == ["anna", "bram"]
    assert serving["work.escalation"] == []


NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SERVED = ServedQueues(("work.subject.parkeren", "work.location.noord", "work.central"))


def sources(order: list[tuple[str, str]]) -> list[str]:
    return [source for source, _ in order]


def test_the_queue_whose_oldest_case_waited_longest_comes_first_urgent_partners_before_all() -> (
    None
):
    oldest = {
        "work.subject.parkeren": NOW,
        "work.location.noord": NOW - timedelta(minutes=5),
        "work.central": NOW - timedelta(minutes=1),
    }
    assert sources(take_order(SERVED.lookup, oldest)) == [
        "work.location.noord.urgent",
        "work.central.urgent",
        "work.subject.parkeren.urgent",
        "work.location.noord",
        "work.central",
        "work.subject.parkeren",
    ]


def test_equal_ages_keep_the_configured_order_and_unknown_ages_come_last() -> None:
    oldest = {"work.central": NOW, "work.subject.parkeren": NOW}
    assert sources(take_order(SERVED.lookup, oldest)) == [
        "work.subject.parkeren.urgent",
        "work.central.urgent",
        "work.location.noord.urgent",
        "work.subject.parkeren",
        "work.central",
        "work.location.noord",
    ]
    # Without any ages (the dossier did not answer): the configured order as it was.
    assert take_order(SERVED.lookup, {}) == list(SERVED.lookup)
