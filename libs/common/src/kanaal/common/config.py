"""Loading the YAML files in `KANAAL_CONFIG_DIR`, with errors that name file, key and problem.

Each file has a part every service shares (declared here) and parts that belong to one
service (validated by that service with :func:`load_section`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from kanaal.common.contract import ChannelSlug, Key
from kanaal.common.topology import WORK_CENTRAL, Topology

CHANNELS_FILE: Final = "channels.yaml"
ROUTING_FILE: Final = "routing.yaml"
AGENTS_FILE: Final = "agents.yaml"

WORK_QUEUE_PATTERN: Final = r"^work\.(central|escalation|[a-z]+\.[a-z0-9][a-z0-9_-]*)$"
WorkQueueName = Annotated[str, StringConstraints(pattern=WORK_QUEUE_PATTERN)]

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """A configuration file is missing or wrong; the message says where and what."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(path, ["file not found"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, [f"not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, ["the top level must be a mapping"])
    return data


def validate(path: Path, model: type[M], data: Any) -> M:
    """Validate data from `path`, turning pydantic's errors into `key: problem` lines."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError(path, problems) from exc


def load_section(path: Path, model: type[M], *keys: str) -> M:
    """Read `path` and validate the section under `keys` (or the whole file) as `model`."""
    data: Any = read_yaml(path)
    for key in keys:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return validate(path, model, data)


class ChannelConfig(BaseModel):
    """The part of a channel's entry every service reads; the adapter validates the rest."""

    model_config = ConfigDict(extra="allow")

    outbound: bool = Field(False, description="answers go out through outbound.<channel>")


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channels: dict[ChannelSlug, ChannelConfig] = Field(default_factory=dict)

    @property
    def outbound_channels(self) -> list[str]:
        return [name for name, channel in self.channels.items() if channel.outbound]


class WorkQueuesConfig(BaseModel):
    """The work queues routing.yaml uses; the router validates the rules themselves.

    The queues to declare are derived: `queues` (the strategy's queues), `default`, every
    rule's `target`, every escalation step's `queue` and, for the `group` strategy,
    `work.group.<name>` of every group. Anything malformed here is skipped; the router
    (and `kanaal rules check`) reports it with its line.
    """

    model_config = ConfigDict(extra="allow")

    strategy: Key = "central"
    queues: list[WorkQueueName] = Field(default_factory=list)
    default: WorkQueueName = WORK_CENTRAL

    @property
    def work_queues(self) -> list[str]:
        extra = self.model_extra or {}
        found: list[Any] = [*self.queues, self.default]
        found += _escalation_queues(extra.get("escalation"))
        rules = extra.get("rules")
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict):
                found.append(rule.get("target"))
                found += _escalation_queues(rule.get("escalation"))
        if self.strategy == "group":
            groups = extra.get("groups")
            names = (
                [g.get("name") for g in groups if isinstance(g, dict)]
                if isinstance(groups, list)
                else ["ondernemers"]
            )
            names.append(extra.get("default_group", "inwoners"))
            found += [f"work.group.{name}" for name in names if isinstance(name, str)]
        return sorted({q for q in found if isinstance(q, str) and WORK_QUEUE_RE.match(q)})


WORK_QUEUE_RE: Final = re.compile(WORK_QUEUE_PATTERN)


def _escalation_queues(steps: Any) -> list[Any]:
    if not isinstance(steps, list):
        return []
    return [s.get("queue") for s in steps if isinstance(s, dict)]


def load_topology(config_dir: Path, *, router: bool = False) -> Topology:
    """The topology for this deployment, from channels.yaml and routing.yaml.

    With `router`, also the work queues' urgent partners and the router's timer, holding
    and event queues: what the router and `kanaal topology` declare. Other services
    declare only what they use, so that their start (and their tests) stay light.
    """
    channels = load_section(config_dir / CHANNELS_FILE, ChannelsConfig)
    routing = load_section(config_dir / ROUTING_FILE, WorkQueuesConfig)
    return Topology.build(
        channels.outbound_channels, routing.work_queues, channels.channels, router=router
    )
