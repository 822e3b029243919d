"""Routing rules: which work queue a registered contact lands in, and why. No broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from kanaal.common.config import ConfigError, WorkQueuesConfig
from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact
from kanaal.router.rules import Condition, RoutingConfig, RoutingRules
from kanaal.router.sla import Duration

REPO_ROOT = Path(__file__).resolve().parents[3]
SHIPPED = REPO_ROOT / "deploy" / "config" / "routing.yaml"
WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BSN = "111222333"
KVK = "12345678"


def rules(text: str) -> RoutingRules:
    return RoutingRules(RoutingConfig.model_validate(yaml.safe_load(text)))


def registered(
    *,
    channel: str = "web",
    subject: str | None = "parkeren",
    location: str | None = None,
    entry_point: str = "contactformulier",
    language: str = "nl",
    priority: int = 0,
    text: str = "",
    party: dict[str, Any] | None = None,
    channel_data: dict[str, Any] | None = None,
    case_queue: str | None = None,
    case_agent: str | None = None,
    case_is_new: bool = True,
    case_status: CaseStatus = CaseStatus.OPEN,
) -> RegisteredContact:
    contact = ContactMessage.new(
        channel=channel,
        entry_point=entry_point,
        source_ref=f"s-{uuid.uuid4()}",
        occurred_at=WHEN,
        subject=subject,
        location=location,
        language=language,
        priority=priority,
        text=text,
        party=party or {},
        channel_data=channel_data or {},
    )
    return RegisteredContact(
        contact=contact,
        party_id=uuid.uuid4(),
        case_ref="K-2026-000042",
        case_status=case_status,
        case_is_new=case_is_new,
        case_queue=case_queue,
        case_agent=case_agent,
        registered_at=WHEN,
    )


# --- the five strategies ------------------------------------------------------------------------

LOCATION = """
strategy: location
queues: [work.location.noord, work.location.centrum]
"""
CHANNEL = """
strategy: channel
queues: [work.channel.phone, work.channel.email, work.channel.counter]
"""
GROUP = """
strategy: group
"""
GROUP_CUSTOM = """
strategy: group
groups:
  - {name: ondernemers, when: {has_kvk: true}}
  - {name: engelstaligen, when: {language: en}}
default_group: inwoners
"""
SUBJECT = """
strategy: subject
queues: [work.subject.parkeren, work.subject.afval]
"""
CENTRAL = "strategy: central\n"


@pytest.mark.parametrize(
    ("config", "contact", "queue", "rule"),
    [
        (LOCATION, {"location": "noord"}, "work.location.noord", "strategy:location"),
        (LOCATION, {"location": "centrum"}, "work.location.centrum", "strategy:location"),
        (LOCATION, {"location": "zuid"}, "work.central", "default"),
        (LOCATION, {"location": None}, "work.central", "default"),
        (CHANNEL, {"channel": "phone"}, "work.channel.phone", "strategy:channel"),
        (CHANNEL, {"channel": "email"}, "work.channel.email", "strategy:channel"),
        (CHANNEL, {"channel": "web"}, "work.central", "default"),
        (GROUP, {"party": {"identifiers": {"kvk_nummer": KVK}}}, "work.group.ondernemers",
         "strategy:group"),
        (GROUP, {"party": {"identifiers": {"bsn": BSN}}}, "work.group.inwoners", "strategy:group"),
        (GROUP, {}, "work.group.inwoners", "strategy:group"),
        (GROUP_CUSTOM, {"language": "en"}, "work.group.engelstaligen", "strategy:group"),
        (GROUP_CUSTOM, {"language": "en", "party": {"identifiers": {"kvk_nummer": KVK}}},
         "work.group.ondernemers", "strategy:group"),
        (SUBJECT, {"subject": "parkeren"}, "work.subject.parkeren", "strategy:subject"),
        (SUBJECT, {"subject": "afval"}, "work.subject.afval", "strategy:subject"),
        (SUBJECT, {"subject": "hondenbelasting"}, "work.central", "default"),
        (SUBJECT, {"subject": None}, "work.central", "default"),
        (CENTRAL, {"subject": "parkeren", "location": "noord"}, "work.central", "default"),
    ],
)  # fmt: skip
def test_each_strategy_sends_a_contact_to_its_kind_of_queue_or_else_the_default(
    config: str, contact: dict[str, Any], queue: str, rule: str
) -> None:
    decision = rules(config).decide(registered(**contact))
    assert (decision.queue, decision.rule) == (queue, rule)


def test_the_group_strategy_declares_its_group_queues() -> None:
    assert {"work.group.ondernemers", "work.group.engelstaligen", "work.group.inwoners"} <= (
        rules(GROUP_CUSTOM).queues
    )


def test_the_default_queue_is_whatever_routing_yaml_names() -> None:
    decision = rules("strategy: subject\ndefault: work.skill.algemeen\n").decide(registered())
    assert (decision.queue, decision.rule) == ("work.skill.algemeen", "default")


# --- rules: every condition type ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "contact", "matches"),
    [
        ({"channel": "phone"}, {"channel": "phone"}, True),
        ({"channel": "phone"}, {"channel": "email"}, False),
        ({"channel": "PHONE"}, {"channel": "phone"}, True),
        ({"channel": ["phone", "counter"]}, {"channel": "counter"}, True),
        ({"channel": ["phone", "counter"]}, {"channel": "web"}, False),
        ({"channel": {"in": ["phone"]}}, {"channel": "phone"}, True),
        ({"channel": {"equals": "web"}}, {"channel": "web"}, True),
        ({"subject": "afval"}, {"subject": "afval"}, True),
        ({"subject": "afval"}, {"subject": None}, False),
        ({"subject": {"present": True}}, {"subject": "afval"}, True),
        ({"subject": {"present": True}}, {"subject": None}, False),
        ({"subject": {"present": False}}, {"subject": None}, True),
        ({"subject": {"regex": "^park"}}, {"subject": "parkeren"}, True),
        ({"subject": {"regex": "^park"}}, {"subject": "afval"}, False),
        ({"location": "noord"}, {"location": "noord"}, True),
        ({"location": "noord"}, {"location": "zuid"}, False),
        ({"entry_point": "+31201234567"}, {"entry_point": "+31201234567"}, True),
        ({"entry_point": {"regex": "^info@"}}, {"entry_point": "info@gemeente.example"}, True),
        ({"language": "en"}, {"language": "en"}, True),
        ({"language": "en"}, {"language": "nl"}, False),
        ({"priority": 9}, {"priority": 9}, True),
        ({"priority": {"min": 5}}, {"priority": 7}, True),
        ({"priority": {"min": 5}}, {"priority": 4}, False),
        ({"priority": {"min": 2, "max": 4}}, {"priority": 4}, True),
        ({"priority": {"max": 3}}, {"priority": 4}, False),
        ({"has_bsn": True}, {"party": {"identifiers": {"bsn": BSN}}}, True),
        ({"has_bsn": True}, {}, False),
        ({"has_bsn": False}, {}, True),
        ({"has_kvk": True}, {"party": {"identifiers": {"kvk_nummer": KVK}}}, True),
        ({"has_kvk": True}, {"party": {"identifiers": {"bsn": BSN}}}, False),
        ({"known_party": True}, {"party": {"email": "a@example.org"}}, True),
        ({"known_party": True}, {"party": {"name": "A. Burger"}}, False),
        ({"known_party": False}, {}, True),
        ({"text": "paspoort|id-kaart"}, {"text": "Mijn ID-KAART is weg"}, True),
        ({"text": "paspoort|id-kaart"}, {"text": "Mijn rijbewijs is weg"}, False),
        ({"text": {"regex": "^dringend"}}, {"text": "Dringend: lekkage"}, True),
        ({"text": {"present": True}}, {"text": ""}, False),
        ({"channel_data": {"callback": True}}, {"channel_data": {"callback": True}}, True),
        ({"channel_data": {"callback": True}}, {"channel_data": {"callback": False}}, False),
        ({"channel_data": {"callback": True}}, {"channel_data": {"callback": 1}}, False),
        ({"channel_data": {"callback": True}}, {}, False),
        ({"channel_data": {"ivr_choice": [1, 2]}}, {"channel_data": {"ivr_choice": 2}}, True),
        ({"channel_data": {"ivr_choice": "2"}}, {"channel_data": {"ivr_choice": 2}}, True),
        ({"channel_data": {"ivr_choice": {"present": True}}}, {"channel_data": {}}, False),
        ({"channel_data": {"hangup": {"regex": "^no.answer$"}}},
         {"channel_data": {"hangup": "NO_ANSWER"}}, True),
        ({"channel": "phone", "subject": "afval"}, {"channel": "phone", "subject": "afval"}, True),
        ({"channel": "phone", "subject": "afval"}, {"channel": "phone", "subject": "paspoort"},
         False),
        ({}, {}, True),
    ],
)  # fmt: skip
def test_a_rule_matches_exactly_when_all_its_conditions_hold(
    when: dict[str, Any], contact: dict[str, Any], matches: bool
) -> None:
    config = RoutingConfig.model_validate(
        {"rules": [{"name": "r", "when": when, "target": "work.skill.x"}]}
    )
    decision = RoutingRules(config).decide(registered(**contact))
    assert (decision.rule == "r") is matches


ORDERED = """
strategy: subject
queues: [work.subject.parkeren]
rules:
  - name: spoed
    when: {priority: {min: 8}}
    target: work.skill.spoed
  - name: telefoon-parkeren
    when: {channel: phone, subject: parkeren}
    target: work.skill.parkeren-telefoon
  - name: telefoon
    when: {channel: phone}
    target: work.channel.phone
"""


@pytest.mark.parametrize(
    ("contact", "queue", "rule"),
    [
        ({"channel": "phone", "subject": "parkeren", "priority": 9}, "work.skill.spoed", "spoed"),
        ({"channel": "phone", "subject": "parkeren"}, "work.skill.parkeren-telefoon",
         "telefoon-parkeren"),
        ({"channel": "phone", "subject": "afval"}, "work.channel.phone", "telefoon"),
        ({"channel": "web", "subject": "parkeren"}, "work.subject.parkeren", "strategy:subject"),
        ({"channel": "web", "subject": "afval"}, "work.central", "default"),
    ],
)  # fmt: skip
def test_the_first_matching_rule_wins_before_the_strategy(
    contact: dict[str, Any], queue: str, rule: str
) -> None:
    decision = rules(ORDERED).decide(registered(**contact))
    assert (decision.queue, decision.rule) == (queue, rule)


def test_explain_says_why_each_earlier_rule_did_not_match() -> None:
    explanation = rules(ORDERED).explain(registered(channel="phone", subject="afval"))
    assert explanation.decision.rule == "telefoon"
    assert explanation.not_matched == [
        ("spoed", "priority at least 8: is 0"),
        ("telefoon-parkeren", "subject = 'parkeren': is 'afval'"),
    ]


def test_explain_never_shows_the_contacts_text() -> None:
    routing = rules("rules: [{name: r, when: {text: paspoort}, target: work.skill.x}]")
    explanation = routing.explain(registered(text="Mijn rijbewijs 06-12345678"))
    assert explanation.not_matched == [("r", "text matches /paspoort/i: is (text)")]


# --- sticky -------------------------------------------------------------------------------------

STICKY = """
strategy: subject
queues: [work.subject.parkeren, work.subject.afval]
rules:
  - name: telefoon
    when: {channel: phone}
    target: work.channel.phone
    sticky: false
"""


@pytest.mark.parametrize(
    ("contact", "queue", "rule", "agent"),
    [
        ({"case_queue": "work.subject.afval", "case_is_new": False}, "work.subject.afval",
         "sticky", None),
        ({"case_queue": "work.subject.afval", "case_agent": "agent-7", "case_is_new": False},
         "work.subject.afval", "sticky", "agent-7"),
        ({"case_queue": "work.subject.afval", "case_is_new": True}, "work.subject.parkeren",
         "strategy:subject", None),
        ({"case_queue": "work.subject.afval", "case_is_new": False,
          "case_status": CaseStatus.CLOSED}, "work.subject.parkeren", "strategy:subject", None),
        ({"case_queue": "work.subject.opgeheven", "case_is_new": False}, "work.subject.parkeren",
         "strategy:subject", None),
        ({"case_queue": None, "case_is_new": False}, "work.subject.parkeren",
         "strategy:subject", None),
        ({"case_queue": "work.subject.afval", "case_is_new": False, "channel": "phone"},
         "work.channel.phone", "telefoon", None),
    ],
)  # fmt: skip
def test_a_contact_on_an_open_case_goes_to_its_owning_queue_unless_the_rule_says_not(
    contact: dict[str, Any], queue: str, rule: str, agent: str | None
) -> None:
    decision = rules(STICKY).decide(registered(**contact))
    assert (decision.queue, decision.rule, decision.agent) == (queue, rule, agent)


def test_sticky_can_be_switched_off_for_the_whole_file() -> None:
    routing = rules(STICKY + "sticky: false\n")
    decision = routing.decide(registered(case_queue="work.subject.afval", case_is_new=False))
    assert decision.queue == "work.subject.parkeren"


# --- priority -----------------------------------------------------------------------------------

PRIORITY = """
urgent_priority: 5
rules:
  - name: ondernemers
    when: {has_kvk: true}
    target: work.group.ondernemers
    priority: 6
"""


@pytest.mark.parametrize(
    ("contact", "priority", "urgent"),
    [
        ({"priority": 0}, 0, False),
        ({"priority": 4}, 4, False),
        ({"priority": 5}, 5, True),
        ({"priority": 9}, 9, True),
        ({"priority": 0, "party": {"identifiers": {"kvk_nummer": KVK}}}, 6, True),
        ({"priority": 8, "party": {"identifiers": {"kvk_nummer": KVK}}}, 8, True),
    ],
)
def test_a_rule_raises_the_priority_and_urgent_work_goes_to_the_urgent_partner(
    contact: dict[str, Any], priority: int, urgent: bool
) -> None:
    decision = rules(PRIORITY).decide(registered(**contact))
    assert (decision.priority, decision.urgent) == (priority, urgent)


@given(priority=st.integers(0, 9), threshold=st.integers(1, 9))
def test_urgency_is_exactly_priority_at_or_above_the_threshold(
    priority: int, threshold: int
) -> None:
    decision = rules(f"urgent_priority: {threshold}\n").decide(registered(priority=priority))
    assert decision.urgent is (priority >= threshold)
    assert decision.priority == priority


# --- SLA and escalation chains ------------------------------------------------------------------

SLAS = """
sla: {phone: 30s, email: 2d, default: 4h}
escalation:
  - {queue: work.escalation}
rules:
  - name: ondernemers
    when: {has_kvk: true}
    target: work.group.ondernemers
    sla: 1d
    escalation:
      - {queue: work.skill.teamleiders, sla: 4h}
      - {queue: work.skill.management, sla: 1d}
      - {queue: work.escalation}
  - name: balie
    when: {channel: counter}
    target: work.location.noord
    escalation: []
"""


@pytest.mark.parametrize(
    ("contact", "sla", "chain"),
    [
        ({"channel": "phone"}, "30s", ["work.escalation"]),
        ({"channel": "email"}, "2d", ["work.escalation"]),
        ({"channel": "web"}, "4h", ["work.escalation"]),
        ({"channel": "counter"}, "4h", []),
        ({"channel": "phone", "party": {"identifiers": {"kvk_nummer": KVK}}}, "1d",
         ["work.skill.teamleiders", "work.skill.management", "work.escalation"]),
    ],
)  # fmt: skip
def test_the_sla_comes_from_the_rule_or_the_channel_and_the_escalation_chain_from_the_rule(
    contact: dict[str, Any], sla: str, chain: list[str]
) -> None:
    decision = rules(SLAS).decide(registered(**contact))
    assert decision.sla == Duration.parse(sla)
    assert [step.queue for step in decision.escalation] == chain


def test_every_escalation_queue_and_rule_target_is_declared() -> None:
    assert {
        "work.group.ondernemers",
        "work.skill.teamleiders",
        "work.skill.management",
        "work.location.noord",
        "work.escalation",
        "work.central",
    } <= rules(SLAS).queues


def test_the_common_config_derives_the_same_queues_as_the_router() -> None:
    data = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    assert set(WorkQueuesConfig.model_validate(data).work_queues) == set(
        RoutingRules.load(SHIPPED).queues
    )


# --- the shipped routing.yaml -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("contact", "queue"),
    [
        ({"subject": "parkeren"}, "work.subject.parkeren"),
        ({"subject": "hondenbelasting"}, "work.central"),
        ({"text": "Ik wil een nieuw paspoort"}, "work.subject.reisdocumenten"),
        ({"channel": "phone", "channel_data": {"callback": True}}, "work.skill.terugbellen"),
        ({"party": {"identifiers": {"kvk_nummer": KVK}}}, "work.group.ondernemers"),
        ({"channel": "counter", "location": "noord", "subject": None}, "work.location.noord"),
    ],
)
def test_the_shipped_routing_yaml_routes_as_its_comments_say(
    contact: dict[str, Any], queue: str
) -> None:
    assert RoutingRules.load(SHIPPED).decide(registered(**contact)).queue == queue


@given(
    subject=st.one_of(st.none(), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)),
    channel=st.sampled_from(["email", "phone", "web", "counter", "whats-app"]),
    location=st.one_of(st.none(), st.sampled_from(["noord", "zuid"])),
    priority=st.integers(0, 9),
)
def test_every_decision_of_the_shipped_file_names_a_declared_queue(
    subject: str | None, channel: str, location: str | None, priority: int
) -> None:
    routing = RoutingRules.load(SHIPPED)
    decision = routing.decide(
        registered(subject=subject, channel=channel, location=location, priority=priority)
    )
    assert decision.queue in routing.queues
    assert decision.priority >= priority


def test_a_missing_routing_yaml_says_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"routing\.yaml: file not found"):
        RoutingRules.load(tmp_path / "routing.yaml")


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 12),
    st.sampled_from(["web", "WEB", "Noord", "noord", "1", "true", "", "paspoort aanvragen"]),
    # text for the word rules: mixed case, and case folding beyond ASCII (U+017F is a long s,
    # U+212A the Kelvin sign: re's IGNORECASE matches them to s and k)
    st.sampled_from(
        ["Mijn PASPOORT is weg", "ID-Kaart kwijt", "pa\u017fpoort", "\u212aiosk", "rijbewijs"]
    ),
    st.text(alphabet="aiksoprt- \u017f\u212a\u0130", max_size=12),
)
CONDITIONS = st.one_of(
    st.builds(lambda v: {"equals": v}, SCALARS.filter(lambda v: v is not None)),
    st.builds(lambda v: {"in": v}, st.lists(SCALARS.filter(lambda v: v is not None), min_size=1)),
    st.builds(lambda v: {"present": v}, st.booleans()),
    st.builds(
        lambda v: {"regex": v},
        st.sampled_from(["^web$", "paspoort|id-kaart", "1", "NRD", "kiosk", "is|pas"]),
    ),
    st.builds(lambda v: {"min": v}, st.integers(0, 9)),
    st.builds(lambda v: {"max": v}, st.integers(0, 9)),
)


@given(condition=CONDITIONS, value=SCALARS)
def test_the_hot_path_predicate_answers_as_the_explained_test(
    condition: dict[str, Any], value: Any
) -> None:
    # The router decides with predicate(); `rules explain` reports with test(): they agree.
    parsed = Condition.model_validate(condition)
    assert parsed.predicate()(value) == parsed.test(value)


CHANNEL_CONDITIONS = st.one_of(
    st.none(),
    st.sampled_from(["phone", "PHONE", "web", "sms", {"regex": "^(e|p)"}, {"present": True}]),
    st.lists(st.sampled_from(["phone", "Email", "counter", "kiosk"]), min_size=1, max_size=3),
)


@given(
    channels=st.lists(CHANNEL_CONDITIONS, min_size=1, max_size=8),
    subjects=st.lists(st.sampled_from([None, "parkeren", "afval"]), min_size=8, max_size=8),
    channel=st.sampled_from(["phone", "email", "web", "counter", "sms", "kiosk", "whats-app"]),
    subject=st.sampled_from([None, "parkeren", "afval"]),
)
def test_deciding_by_the_channel_index_picks_the_rule_explain_picks(
    channels: list[Any], subjects: list[str | None], channel: str, subject: str | None
) -> None:
    # decide() only tries the rules that can match the contact's channel; explain() walks
    # every rule. The first match must be the same rule for every mix of channel tests.
    config = {
        "strategy": "central",
        "rules": [
            {
                "name": f"r{i}",
                "when": {
                    **({"channel": condition} if condition is not None else {}),
                    **({"subject": subjects[i]} if subjects[i] else {}),
                },
                "target": f"work.skill.s{i}",
            }
            for i, condition in enumerate(channels)
        ],
    }
    routing = RoutingRules(RoutingConfig.model_validate(config))
    contact = registered(channel=channel, subject=subject)
    assert routing.decide(contact) == routing.explain(contact).decision
