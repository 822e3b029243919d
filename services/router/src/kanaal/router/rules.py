"""Pure routing: routing.yaml in, a Decision per registered contact out.

No broker, no network: `RoutingRules.load(path)`, `decide(registered)` and
`explain(registered)`. Ordered rules are tried first (the first match wins); then the
strategy (location, channel, group, subject, central) names a queue; `default` catches
the rest. A contact on an open case with an owning queue goes there (sticky) unless the
deciding rule says `sticky: false`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from kanaal.common.config import WorkQueueName, WorkQueuesConfig
from kanaal.common.contract import CaseStatus, ContactMessage, Key, RegisteredContact
from kanaal.common.topology import WORK_CENTRAL, WORK_ESCALATION, WorkKind, work_queue_name
from kanaal.router.sla import Calendar, Duration, DurationField, _parse_duration, due_at

Strategy = Literal["location", "channel", "group", "subject", "central"]
Scalar = str | int | float | bool
RuleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}$")]
SlaDuration = Annotated[DurationField, BeforeValidator(_parse_duration)]
CONDITION_KEYS: Final = {"equals", "in", "present", "regex", "min", "max"}
KNOWN_KINDS: Final = {k.value for k in WorkKind}


class Condition(BaseModel):
    """One test on one fact: equality, one of a list, presence, a regex or a range.

    Written as a plain value (equality), a list (one of), or a mapping with one of
    `equals`, `in`, `present`, `regex`, or `min`/`max`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    equals: Scalar | None = None
    one_of: list[Scalar] | None = Field(None, alias="in", min_length=1)
    present: bool | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {"in": value}
        if isinstance(value, Scalar):
            return {"equals": value}
        return value

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"bad regex {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Condition:
        kinds = [
            k
            for k, v in (
                ("equals", self.equals),
                ("in", self.one_of),
                ("present", self.present),
                ("regex", self.regex),
                ("min/max", self.min if self.min is not None else self.max),
            )
            if v is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a condition is a value, a list, or one of equals, in, present, regex, min/max"
            )
        return self

    @property
    def pattern(self) -> re.Pattern[str] | None:
        return _compiled(self.regex) if self.regex is not None else None

    def test(self, value: Any) -> bool:
        if self.present is not None:
            return (value is not None and value != "") == self.present
        if value is None:
            return False
        if self.equals is not None:
            return _equal(value, self.equals)
        if self.one_of is not None:
            return any(_equal(value, option) for option in self.one_of)
        if self.regex is not None:
            return _compiled(self.regex).search(str(value)) is not None
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def predicate(self) -> Callable[[Any], bool]:
        """`test` specialised once per condition for the hot path; the same answers."""
        if self.equals is not None and isinstance(self.equals, str):
            folded = self.equals.casefold()
            return lambda value: (
                value is not None
                and not isinstance(value, bool)
                and (value if isinstance(value, str) else str(value)).casefold() == folded
            )
        if self.one_of is not None and all(isinstance(o, str) for o in self.one_of):
            options = frozenset(str(o).casefold() for o in self.one_of)
            return lambda value: (
                value is not None
                and not isinstance(value, bool)
                and (value if isinstance(value, str) else str(value)).casefold() in options
            )
        if self.regex is not None:
            search = _compiled(self.regex).search
            if _WORDS.fullmatch(self.regex):
                return _any_word(self.regex.split("|"), search)
            return lambda value: value is not None and search(str(value)) is not None
        return self.test

    def describe(self) -> str:
        if self.present is not None:
            return "present" if self.present else "absent"
        if self.equals is not None:
            return f"= {self.equals!r}"
        if self.one_of is not None:
            return f"one of {self.one_of!r}"
        if self.regex is not None:
            return f"matches /{self.regex}/i"
        if self.max is None:
            return f"at least {_number(self.min)}"
        if self.min is None:
            return f"at most {_number(self.max)}"
        return f"between {_number(self.min)} and {_number(self.max)}"


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and value == int(value) else str(value)


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _compiled(regex: str) -> re.Pattern[str]:
    pattern = _PATTERNS.get(regex)
    if pattern is None:
        pattern = _PATTERNS[regex] = re.compile(regex, re.IGNORECASE)
    return pattern


# A regex that is only lowercase ASCII words: `paspoort|id-kaart`, the usual text rule.
_WORDS: Final = re.compile(r"[a-z0-9 _-]+(?:\|[a-z0-9 _-]+)*")


def _any_word(words: list[str], search: Callable[[str], Any]) -> Callable[[Any], bool]:
    """`search` for a pattern of plain words, by substring on ASCII text.

    Python's case-insensitive regex scans about four times slower than a case-sensitive
    one, and a contact's text meets every text rule. On ASCII text, lowercasing and
    looking for each word answers exactly as the pattern with IGNORECASE does; other
    text (where re's case folding knows more than str.lower, e.g. U+017F for `s`) goes
    to the pattern itself.
    """
    found = tuple(words)

    def holds(value: Any) -> bool:
        if value is None:
            return False
        text = value if isinstance(value, str) else str(value)
        if text.isascii():
            lowered = text.lower()
            return any(word in lowered for word in found)
        return search(text) is not None

    return holds


def _equal(value: Any, expected: Scalar) -> bool:
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value is expected
    if isinstance(value, str) or isinstance(expected, str):
        return str(value).casefold() == str(expected).casefold()
    return bool(value == expected)


def _text_condition(value: Any) -> Any:
    """`text: "paspoort|id-kaart"` is a regex: text is only ever matched by pattern."""
    return {"regex": value} if isinstance(value, str) else value


class When(BaseModel):
    """A rule's conditions; all of them must hold. No conditions matches every contact."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Condition | None = None
    subject: Condition | None = None
    location: Condition | None = None
    entry_point: Condition | None = None
    language: Condition | None = None
    priority: Condition | None = None
    has_bsn: Condition | None = None
    has_kvk: Condition | None = None
    known_party: Condition | None = None
    text: Annotated[Condition | None, BeforeValidator(_text_condition)] = None
    channel_data: dict[Key, Condition] = Field(default_factory=dict)

    def conditions(self) -> Iterator[tuple[str, Condition]]:
        for name in When.model_fields:
            if name == "channel_data":
                continue
            condition = getattr(self, name)
            if condition is not None:
                yield name, condition
        for key, condition in self.channel_data.items():
            yield f"channel_data.{key}", condition

    def matcher(self) -> Callable[[Facts], bool]:
        """A predicate for the hot path: `first_failure(...) is None` without the reasons."""
        checks = tuple((name, condition.predicate()) for name, condition in self.conditions())
        if not checks:
            return lambda facts: True
        if len(checks) == 1:  # most rules: one condition, no generator per contact
            ((name, test),) = checks
            return lambda facts: test(facts.get(name))

        def holds(facts: Facts) -> bool:
            get = facts.get
            return all(test(get(name)) for name, test in checks)

        return holds

    def first_failure(self, facts: Facts) -> str | None:
        """None when every condition holds, else why the first one does not."""
        for name, condition in self.conditions():
            value = facts.get(name)
            if not condition.test(value):
                shown = "(text)" if name == "text" else repr(value)
                return f"{name} {condition.describe()}: is {shown}"
        return None


class EscalationStep(BaseModel):
    """Where an unclaimed contact moves when its SLA passes, and its SLA there."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: WorkQueueName
    sla: SlaDuration | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    when: When = Field(default_factory=When)
    target: WorkQueueName
    priority: int | None = Field(None, ge=0, le=9, description="at least this priority")
    sla: SlaDuration | None = None
    escalation: list[EscalationStep] | None = None
    sticky: bool | None = None


class Group(BaseModel):
    """A target group (doelgroep) of the `group` strategy: `work.group.<name>`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Key
    when: When = Field(default_factory=When)


def _sla_table(value: Any) -> Any:
    return {"default": value} if isinstance(value, str) else value


class RoutingConfig(WorkQueuesConfig):
    """routing.yaml as the router reads it."""

    model_config = ConfigDict(extra="forbid")

    strategy: Strategy = "central"
    rules: list[Rule] = Field(default_factory=list)
    groups: list[Group] | None = None
    default_group: Key = "inwoners"
    sla: Annotated[dict[str, SlaDuration], BeforeValidator(_sla_table)] = Field(
        default_factory=dict, description="per channel, and `default`; or one duration"
    )
    escalation: list[EscalationStep] = Field(default_factory=list)
    sticky: bool = True
    urgent_priority: int = Field(5, ge=1, le=9)
    calendar: Calendar | None = None

    @property
    def group_list(self) -> list[Group]:
        if self.groups is not None:
            return self.groups
        return [Group(name="ondernemers", when=When(has_kvk=Condition(equals=True)))]

    @property
    def work_queues(self) -> list[str]:
        found = {*self.queues, self.default, WORK_CENTRAL, WORK_ESCALATION}
        found |= {step.queue for step in self.escalation}
        for rule in self.rules:
            found.add(rule.target)
            found |= {step.queue for step in rule.escalation or ()}
        if self.strategy == "group":
            found |= {f"work.group.{g.name}" for g in self.group_list}
            found.add(f"work.group.{self.default_group}")
        return sorted(found)


class Facts:
    """The facts about a registered contact that conditions test, computed once."""

    __slots__ = ("_contact", "_values")

    def __init__(self, contact: ContactMessage) -> None:
        ids = contact.party.identifiers
        self._contact = contact
        self._values: dict[str, Any] = {
            "channel": contact.channel,
            "subject": contact.subject,
            "location": contact.location,
            "entry_point": contact.entry_point,
            "language": contact.language,
            "priority": contact.priority,
            "has_bsn": ids.bsn is not None,
            "has_kvk": ids.kvk_nummer is not None or ids.vestigingsnummer is not None,
            "known_party": bool(
                contact.party.email
                or contact.party.phone
                or ids.bsn
                or ids.kvk_nummer
                or ids.rsin
                or ids.vestigingsnummer
            ),
            "text": contact.text,
        }
        for key, value in contact.channel_data.items():
            self._values[f"channel_data.{key}"] = value

    def get(self, name: str) -> Any:
        """The fact's value; a `channel_data.<key>` the contact does not carry is None."""
        return self._values.get(name)


@dataclass(frozen=True)
class Decision:
    queue: str
    rule: str
    priority: int
    sla: Duration | None = None
    escalation: tuple[EscalationStep, ...] = ()
    agent: str | None = None
    urgent: bool = False


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    not_matched: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


STRATEGY_KIND: Final[dict[str, WorkKind]] = {
    "location": WorkKind.LOCATION,
    "channel": WorkKind.CHANNEL,
    "subject": WorkKind.SUBJECT,
    "group": WorkKind.GROUP,
}


@dataclass(frozen=True)
class RoutingRules:
    config: RoutingConfig
    queues: frozenset[str] = field(init=False)
    # The rules a contact of a channel can match, in order: a rule that names other
    # channels only is left out. Channels no rule names share `_other_channels`.
    _by_channel: dict[str, tuple[tuple[Rule, Callable[[Facts], bool]], ...]] = field(
        init=False, repr=False
    )
    _other_channels: tuple[tuple[Rule, Callable[[Facts], bool]], ...] = field(
        init=False, repr=False
    )

    def __post_init__(self) -> None:
        rules = self.config.rules
        object.__setattr__(self, "queues", frozenset(self.config.work_queues))
        only = [_channels_named(rule.when.channel) for rule in rules]
        named = {channel for channels in only if channels for channel in channels}
        candidates = [(rule, rule.when.matcher()) for rule in rules]
        by_channel = {
            channel: tuple(
                c for c, o in zip(candidates, only, strict=True) if not o or channel in o
            )
            for channel in named
        }
        object.__setattr__(self, "_by_channel", by_channel)
        others = tuple(c for c, o in zip(candidates, only, strict=True) if not o)
        object.__setattr__(self, "_other_channels", others)

    @classmethod
    def load(cls, path: Path) -> RoutingRules:
        """Read and check routing.yaml; a ConfigError lists every problem with its line."""
        from kanaal.router.check import load_checked

        return cls(load_checked(path))

    def longest_wait(self, now: datetime) -> timedelta:
        """How long after routing the last SLA timer of any chain fires, for work routed now.

        Every rule's SLA (or the channels' defaults) followed by its escalation steps, and
        the same for contacts no rule matches; counted in the calendar when there is one.
        """
        config = self.config
        defaults = list(config.sla.values())
        chains = [
            (
                [rule.sla] if rule.sla is not None else defaults,
                config.escalation if rule.escalation is None else rule.escalation,
            )
            for rule in config.rules
        ]
        chains.append((defaults, config.escalation))
        longest = timedelta(0)
        for firsts, steps in chains:
            for first in firsts:
                moment = due_at(now, first, config.calendar)
                for step in steps:
                    if step.sla is None:
                        break
                    moment = due_at(moment, step.sla, config.calendar)
                longest = max(longest, moment - now)
        return longest

    def decide(self, registered: RegisteredContact) -> Decision:
        return self.explain(registered, why=False).decision

    def explain(self, registered: RegisteredContact, *, why: bool = True) -> Explanation:
        contact = registered.contact
        facts = Facts(contact)
        config = self.config
        not_matched: list[tuple[str, str]] = []
        notes: list[str] = []
        matched: Rule | None = None
        if not why:
            candidates = self._by_channel.get(contact.channel.casefold(), self._other_channels)
            matched = next((rule for rule, holds in candidates if holds(facts)), None)
        else:
            for rule in config.rules:
                failure = rule.when.first_failure(facts)
                if failure is None:
                    matched = rule
                    break
                not_matched.append((rule.name, failure))

        if matched is not None:
            queue, label = matched.target, matched.name
        else:
            queue, label = self._by_strategy(facts, notes if why else None)

        sticky = (
            matched.sticky
            if matched is not None and matched.sticky is not None
            else (config.sticky)
        )
        agent = None
        if sticky and not registered.case_is_new and registered.case_status != CaseStatus.CLOSED:
            if registered.case_queue in self.queues:
                notes.append(f"sticky: the case's owning queue {registered.case_queue}")
                queue, label = str(registered.case_queue), "sticky"
            elif registered.case_queue is not None:
                notes.append(f"not sticky: {registered.case_queue} is not a declared queue")
            agent = registered.case_agent
        elif why and registered.case_queue and not sticky:
            notes.append("not sticky: the rule says sticky: false")

        priority = max(contact.priority, matched.priority or 0) if matched else contact.priority
        sla = matched.sla if matched is not None and matched.sla is not None else None
        if sla is None:
            sla = config.sla.get(contact.channel, config.sla.get("default"))
        steps = matched.escalation if matched is not None else None
        escalation = tuple(config.escalation if steps is None else steps)
        decision = Decision(
            queue=queue,
            rule=label,
            priority=priority,
            sla=sla,
            escalation=escalation,
            agent=agent,
            urgent=priority >= config.urgent_priority,
        )
        return Explanation(decision, not_matched, notes)

    def _by_strategy(self, facts: Facts, notes: list[str] | None) -> tuple[str, str]:
        strategy = self.config.strategy
        value: Any = None
        if strategy == "group":
            value = next(
                (g.name for g in self.config.group_list if g.when.first_failure(facts) is None),
                self.config.default_group,
            )
        elif strategy != "central":
            value = facts.get(strategy)
        if strategy != "central" and value is not None:
            queue = work_queue_name(STRATEGY_KIND[strategy], str(value))
            if queue in self.queues:
                return queue, f"strategy:{strategy}"
            if notes is not None:
                notes.append(f"strategy {strategy}: {queue} is not a declared queue")
        elif notes is not None and strategy != "central":
            notes.append(f"strategy {strategy}: the contact has no {strategy}")
        return self.config.default, "default"


def _channels_named(condition: Condition | None) -> frozenset[str] | None:
    """The only channels (casefolded) a rule's channel condition admits; None if any may."""
    if condition is None or condition.present is not None:
        return None
    if isinstance(condition.equals, str):
        return frozenset({condition.equals.casefold()})
    if condition.one_of is not None and all(isinstance(o, str) for o in condition.one_of):
        return frozenset(str(o).casefold() for o in condition.one_of)
    return None


def queue_kind_known(queue: str) -> bool:
    """Whether a work queue's kind is one of the five (or central/escalation)."""
    parts = queue.split(".")
    return queue in (WORK_CENTRAL, WORK_ESCALATION) or (len(parts) == 3 and parts[1] in KNOWN_KINDS)
