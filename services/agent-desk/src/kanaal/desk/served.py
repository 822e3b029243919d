"""Which work queues an agent serves, and in which order "next" looks at them.

Pure: agents.yaml facts and the declared queue names in, queue names out. An agent
serves the queues named in its `queues`, `work.<kind>.<skill>` for each of its skills
(kinds skill, subject, group and channel), `work.location.<location>` for each of its
locations, `work.central`, and, for supervisors, `work.escalation` — each only when it
is declared. `KANAAL_DESK_QUEUE_ORDER` orders those families. "Next" looks at every
urgent partner (`work.x.urgent`) first, then at the queues themselves; within each of the
two, the queue whose oldest unclaimed case has waited longest comes first
(:func:`take_order`), and the configured order breaks ties.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from kanaal.common.agents import AgentConfig, Role
from kanaal.common.topology import WORK_CENTRAL, WORK_ESCALATION, urgent_queue_name

#: The families of queues, as `KANAAL_DESK_QUEUE_ORDER` names them.
FAMILIES: Final = (
    "queues",
    "skill",
    "subject",
    "group",
    "channel",
    "location",
    "central",
    "escalation",
)
DEFAULT_ORDER: Final = FAMILIES


def parse_order(text: str) -> tuple[str, ...]:
    """`"skill,location,central"` -> the families in that order; unknown names are an error.

    Families left out are not served at all.
    """
    order = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [f for f in order if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown queue families {unknown}; known: {', '.join(FAMILIES)}")
    if len(set(order)) != len(order):
        raise ValueError("a queue family appears twice")
    return order


@dataclass(frozen=True)
class ServedQueues:
    """The queues an agent serves (`queues`, in order) and where "next" looks (`lookup`)."""

    queues: tuple[str, ...]

    @property
    def lookup(self) -> tuple[tuple[str, str], ...]:
        """(queue to take from, the work queue it belongs to): urgent partners first."""
        urgent = tuple((urgent_queue_name(q), q) for q in self.queues)
        return urgent + tuple((q, q) for q in self.queues)


def take_order(
    lookup: Sequence[tuple[str, str]], oldest_since: Mapping[str, datetime | None]
) -> list[tuple[str, str]]:
    """`lookup` (urgent partners first) re-ordered oldest first within urgent and normal.

    `oldest_since` maps a work queue to when its longest-waiting unclaimed case came in
    (the dossier's `GET /queues`). An urgent partner goes by its work queue's age: the
    dossier does not tell urgent cases apart. A queue the dossier knows nothing waiting in
    (all its items stale, or just routed and not yet recorded) comes after those it does,
    and equal ages keep the configured order (the sort is stable).
    """
    urgent = {source for source, work_queue in lookup if source != work_queue}

    def key(entry: tuple[int, tuple[str, str]]) -> tuple[bool, bool, float, int]:
        index, (source, work_queue) = entry
        since = oldest_since.get(work_queue)
        return (source not in urgent, since is None, since.timestamp() if since else 0.0, index)

    return [pair for _, pair in sorted(enumerate(lookup), key=key)]


def served_queues(
    agent: AgentConfig, declared: Iterable[str], order: Sequence[str] = DEFAULT_ORDER
) -> ServedQueues:
    """The declared work queues `agent` serves, in the order of the families in `order`."""
    known = set(declared)
    found: list[str] = []
    for family in order:
        if family == "queues":
            candidates = list(agent.queues)
        elif family == "location":
            candidates = [f"work.location.{loc}" for loc in agent.locations]
        elif family == "central":
            candidates = [WORK_CENTRAL]
        elif family == "escalation":
            candidates = [WORK_ESCALATION] if agent.role is Role.SUPERVISOR else []
        else:
            candidates = [f"work.{family}.{skill}" for skill in agent.skills]
        found += [q for q in candidates if q in known and q not in found]
    return ServedQueues(tuple(found))


def agents_serving(
    agents: Iterable[AgentConfig], declared: Iterable[str], order: Sequence[str] = DEFAULT_ORDER
) -> dict[str, list[str]]:
    """Queue -> the ids of the agents that serve it (for the queue overview)."""
    known = list(declared)
    serving: dict[str, list[str]] = {q: [] for q in known}
    for agent in agents:
        for queue in served_queues(agent, known, order).queues:
            serving[queue].append(agent.id)
    return serving
