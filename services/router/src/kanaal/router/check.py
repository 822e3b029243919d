"""Checking routing.yaml: every problem at once, each with the line it is on.

Used by `kanaal rules check`, by the router at start (it refuses to start on any
problem) and on reload (it keeps the last good rules). Pure: text in, problems out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from kanaal.common.config import WORK_QUEUE_RE, ConfigError
from kanaal.router.rules import Condition, RoutingConfig, Rule, queue_kind_known


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return (
            f"line {self.line}: {self.key}: {self.message}"
            if self.key
            else (f"line {self.line}: {self.message}")
        )


def check_text(text: str) -> tuple[RoutingConfig | None, list[Problem]]:
    """Parse and check routing.yaml's text; the config only when there are no problems."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        return None, [Problem(line, "", f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(1, "", "the top level must be a mapping")]
    problems: list[Problem] = []
    config: RoutingConfig | None = None
    try:
        config = RoutingConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(_line(root, err["loc"]), _key(err["loc"]), _message(err))
            for err in exc.errors(include_input=False, include_url=False)
        ]
    # The checks below read each part that is valid on its own, so that one run
    # reports every problem, not only those of the first kind.
    rules = _valid_rules(data.get("rules"))
    problems += _unknown_queues(root, _queue_places(data))
    problems += _shadowed_rules(root, rules)
    problems += _duplicate_names(root, rules)
    problems = sorted(set(problems))
    return (None if problems else config), problems


def load_checked(path: Path) -> RoutingConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found"]) from exc
    config, problems = check_text(text)
    if config is None:
        raise ConfigError(path, [str(p) for p in problems])
    return config


def _key(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the validator's name for before-validated unions; keep the path.
    return ".".join(str(p) for p in loc if not str(p).startswith(("function-", "tagged-")))


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    message = str(err["msg"])
    return message.removeprefix("Value error, ")


def _line(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int:
    """The line of the deepest YAML node the error's path reaches (1-based)."""
    if node is None:
        return 1
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == str(part):
                    # an unknown field is reported on its key's line
                    child, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            continue
        node = child
    return line


def _valid_rules(raw: Any) -> list[tuple[int, Rule]]:
    valid = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        try:
            valid.append((i, Rule.model_validate(item)))
        except ValidationError:
            continue
    return valid


def _queue_places(data: dict[str, Any]) -> list[tuple[tuple[int | str, ...], Any]]:
    def steps(raw: Any, *loc: int | str) -> list[tuple[tuple[int | str, ...], Any]]:
        if not isinstance(raw, list):
            return []
        return [
            ((*loc, j, "queue"), s.get("queue")) for j, s in enumerate(raw) if isinstance(s, dict)
        ]

    queues = data.get("queues")
    places: list[tuple[tuple[int | str, ...], Any]] = [
        (("queues", i), q) for i, q in enumerate(queues if isinstance(queues, list) else [])
    ]
    places.append((("default",), data.get("default")))
    places += steps(data.get("escalation"), "escalation")
    rules = data.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if isinstance(rule, dict):
            places.append((("rules", i, "target"), rule.get("target")))
            places += steps(rule.get("escalation"), "rules", i, "escalation")
    return places


def _unknown_queues(
    root: yaml.Node | None, places: list[tuple[tuple[int | str, ...], Any]]
) -> list[Problem]:
    # A name that is not even shaped like a work queue is already reported by validation.
    return [
        Problem(
            _line(root, loc),
            _key(loc),
            f"unknown queue {queue!r}: a work queue is work.central, work.escalation or "
            "work.<location|skill|subject|group|channel>.<name>",
        )
        for loc, queue in places
        if isinstance(queue, str) and WORK_QUEUE_RE.match(queue) and not queue_kind_known(queue)
    ]


def _duplicate_names(root: yaml.Node | None, rules: list[tuple[int, Rule]]) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for i, rule in rules:
        if rule.name in seen:
            loc = ("rules", i, "name")
            problems.append(
                Problem(
                    _line(root, loc),
                    _key(loc),
                    f"rule name {rule.name!r} is already used on line "
                    f"{_line(root, ('rules', seen[rule.name], 'name'))}",
                )
            )
        seen.setdefault(rule.name, i)
    return problems


def _shadowed_rules(root: yaml.Node | None, rules: list[tuple[int, Rule]]) -> list[Problem]:
    problems = []
    for position, (j, later) in enumerate(rules):
        for i, earlier in rules[:position]:
            if shadows(earlier, later):
                loc = ("rules", j)
                problems.append(
                    Problem(
                        _line(root, loc),
                        _key(loc),
                        f"rule {later.name!r} can never match: rule {earlier.name!r} "
                        f"(line {_line(root, ('rules', i))}) matches every contact it matches",
                    )
                )
                break
    return problems


def shadows(earlier: Rule, later: Rule) -> bool:
    """Whether every contact `later` matches is matched by `earlier` first."""
    later_conditions = dict(later.when.conditions())
    for name, condition in earlier.when.conditions():
        narrower = later_conditions.get(name)
        if narrower is None or not implies(narrower, condition):
            return False
    return True


def implies(narrow: Condition, wide: Condition) -> bool:
    """Whether every value that passes `narrow` passes `wide` (conservatively)."""
    if narrow == wide:
        return True
    values: list[Any] | None = None
    if narrow.equals is not None:
        values = [narrow.equals]
    elif narrow.one_of is not None:
        values = list(narrow.one_of)
    if values is not None:
        return all(wide.test(v) for v in values)
    if wide.present is True:
        return narrow.present is not False
    if wide.min is not None or wide.max is not None:
        if narrow.min is None and narrow.max is None:
            return False
        low_ok = wide.min is None or (narrow.min is not None and narrow.min >= wide.min)
        high_ok = wide.max is None or (narrow.max is not None and narrow.max <= wide.max)
        return low_ok and high_ok
    return False
