"""Pure routing: routing.yaml in, a Decision per registered contact out.

No broker, no network: `RoutingRules.load(path)` and `decide(registered)`.
This walking-skeleton version knows the `subject` and `central` strategies and
sticky routing; ordered rules, SLAs and escalation build on the same seam.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict

from kanaal.common.config import WorkQueuesConfig, load_section
from kanaal.common.contract import RegisteredContact
from kanaal.common.topology import WorkKind, work_queue_name


class RoutingConfig(WorkQueuesConfig):
    """routing.yaml as the router reads it."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["subject", "central"] = "central"
    rules: list[dict[str, object]] = []


@dataclass(frozen=True)
class Decision:
    queue: str
    rule: str
    priority: int


@dataclass(frozen=True)
class RoutingRules:
    config: RoutingConfig

    @classmethod
    def load(cls, path: Path) -> RoutingRules:
        return cls(load_section(path, RoutingConfig))

    @property
    def queues(self) -> frozenset[str]:
        return frozenset([*self.config.queues, self.config.default])

    def decide(self, registered: RegisteredContact) -> Decision:
        contact = registered.contact
        # Sticky only to a queue that still exists: an owning queue removed from
        # routing.yaml would make the work item unroutable.
        if registered.case_queue in self.queues and not registered.case_is_new:
            return Decision(str(registered.case_queue), "sticky", contact.priority)
        if self.config.strategy == "subject" and contact.subject:
            queue = work_queue_name(WorkKind.SUBJECT, contact.subject)
            if queue in self.queues:
                return Decision(queue, "strategy:subject", contact.priority)
        return Decision(self.config.default, "default", contact.priority)
