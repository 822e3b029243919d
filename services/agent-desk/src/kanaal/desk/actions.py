"""What an agent can do at the desk, shared by the web pages and the JSON API (the CLI).

Each action runs as the agent: the agent's own token goes to the dossier, which checks
the role and keeps the record. The desk adds what the dossier does not know: which queues
an agent serves, their capacity, how deep each queue is in the broker.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika

from kanaal.common.agents import AgentConfig, AgentDirectory, Caller
from kanaal.common.topology import urgent_queue_name
from kanaal.desk.dossier import DossierClient
from kanaal.desk.served import ServedQueues, agents_serving, served_queues
from kanaal.desk.taking import NextResult, WorkTaker, queue_depths

#: Seconds a queue overview is reused (many agents' pages refresh it at once).
OVERVIEW_CACHE: float = 2.0
#: Channels that cannot send answers but where a "reply" is a callback the agent makes.
CALLBACK_CHANNELS = frozenset({"phone"})


@dataclass(frozen=True)
class Agent:
    """A logged-in agent: who (from agents.yaml), the token, and what they serve."""

    config: AgentConfig
    token: str
    served: ServedQueues

    @property
    def id(self) -> str:
        return self.config.id


class Desk:
    def __init__(
        self,
        agents: Iterable[AgentConfig],
        directory: AgentDirectory,
        work_queues: Iterable[str],
        order: Sequence[str],
        dossier: DossierClient,
        connection: aio_pika.abc.AbstractConnection,
    ) -> None:
        self.agents = {a.id: a for a in agents}
        self.directory = directory
        self.work_queues = sorted(set(work_queues))
        self.order = tuple(order)
        self.dossier = dossier
        self.connection = connection
        self.taker = WorkTaker(connection, dossier)
        self.serving = agents_serving(self.agents.values(), self.work_queues, self.order)
        self._overview: tuple[float, list[dict[str, Any]]] | None = None

    def login(self, token: str) -> Agent | None:
        """The agent whose token this is (supervisors too); None for anything else."""
        caller: Caller | None = self.directory.caller(f"Bearer {token}")
        if caller is None or caller.id not in self.agents:
            return None
        config = self.agents[caller.id]
        return Agent(config, token, served_queues(config, self.work_queues, self.order))

    async def next(self, agent: Agent) -> NextResult:
        return await self.taker.next(agent.config, agent.token, agent.served)

    async def me(self, agent: Agent) -> dict[str, Any]:
        held = await self.dossier.held_cases(agent.token)
        return {
            "id": agent.id,
            "name": agent.config.name,
            "role": agent.config.role.value,
            "skills": agent.config.skills,
            "locations": agent.config.locations,
            "capacity": agent.config.capacity,
            "queues": list(agent.served.queues),
            "held": held,
        }

    async def overview(self, agent: Agent) -> list[dict[str, Any]]:
        """Per work queue: ready items in the broker (queue + urgent partner), unclaimed
        cases in the dossier, the oldest one's waiting seconds, SLA breaches, who serves it."""
        cached = self._overview
        if cached is not None and time.monotonic() - cached[0] < OVERVIEW_CACHE:
            return cached[1]
        names = [n for q in self.work_queues for n in (q, urgent_queue_name(q))]
        depths = await queue_depths(self.connection, names)
        waiting = {w["queue"]: w for w in await self.dossier.queues_waiting(agent.token)}
        now = datetime.now(UTC)
        rows = []
        for queue in self.work_queues:
            known = waiting.get(queue, {})
            since = known.get("oldest_since")
            oldest = (now - datetime.fromisoformat(since)).total_seconds() if since else None
            rows.append(
                {
                    "queue": queue,
                    "ready": (depths.get(queue) or 0),
                    "ready_urgent": depths.get(urgent_queue_name(queue)) or 0,
                    "waiting": int(known.get("waiting", 0)),
                    "oldest_waiting_seconds": round(oldest) if oldest is not None else None,
                    "sla_breached": int(known.get("sla_breached", 0)),
                    "agents": self.serving.get(queue, []),
                }
            )
        self._overview = (time.monotonic(), rows)
        return rows

    async def case(self, agent: Agent, case_ref: str) -> dict[str, Any]:
        """The customer view: the case with its timeline, and the party with all else."""
        case = await self.dossier.case(agent.token, case_ref)
        party = await self.dossier.party(agent.token, str(case["party_id"]))
        others = [c for c in party["cases"] if c["ref"] != case_ref]
        return {
            "case": case,
            "party": party,
            "other_cases": others,
            "reply_channel": reply_channel(case),
        }

    async def reply(
        self,
        agent: Agent,
        case_ref: str,
        text: str,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Answer through the customer's channel; on the phone that is a callback made."""
        if channel is None and (
            reply_channel(await self.dossier.case(agent.token, case_ref)) in CALLBACK_CHANNELS
        ):
            channel = "phone"
        if channel in CALLBACK_CHANNELS:
            noted = await self.dossier.note(agent.token, case_ref, text, callback=True)
            return {"case_ref": case_ref, "channel": channel, "callback": True, **noted}
        sent = await self.dossier.reply(
            agent.token,
            case_ref,
            text,
            channel=channel,
            idempotency_key=idempotency_key,
        )
        return {"callback": False, **sent}


def reply_channel(case: dict[str, Any]) -> str | None:
    """The channel of the customer's last inbound contact on the case. A reply without a
    channel goes there when it can send (else the dossier picks the customer's preferred
    or last channel that can); on the phone it is a callback."""
    inbound = [c for c in case.get("contacts", []) if c.get("direction") == "inbound"]
    return str(inbound[-1]["channel"]) if inbound else None
