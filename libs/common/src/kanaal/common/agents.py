"""Who the agents are: agents.yaml (skills, locations, capacity, role) and their hashed tokens.

The dossier checks the callers of its API with :class:`AgentDirectory`; the agent desk
uses the same directory to log agents in and the same config to know what they serve.

A token is never written in the YAML: an agent names either the SHA-256 of its token
(`token_sha256`) or the environment variable that holds the token (`token_env`). The
service token `KANAAL_DOSSIER_API_TOKEN` (for the adapters' status pages) gets the
`service` role, which only reads where a contact landed and a case.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kanaal.common.config import AGENTS_FILE, WorkQueueName, load_section
from kanaal.common.contract import Key
from kanaal.common.logging import get_logger

log = get_logger(__name__)

SERVICE_AGENT_ID: Final = "service"


class Role(StrEnum):
    SERVICE = "service"
    AGENT = "agent"
    SUPERVISOR = "supervisor"


class Permission(StrEnum):
    READ_CASES = "read_cases"  # a contact's landing place, a case
    READ_PARTIES = "read_parties"  # party search and the customer view, the export
    WORK_CASES = "work_cases"  # claim, reply, transfer, close
    READ_BSN = "read_bsn"  # see and search BSNs
    SUPERVISE = "supervise"  # merge parties, reassign cases


ROLE_PERMISSIONS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.SERVICE: frozenset({Permission.READ_CASES}),
    Role.AGENT: frozenset({Permission.READ_CASES, Permission.READ_PARTIES, Permission.WORK_CASES}),
    Role.SUPERVISOR: frozenset(Permission),
}

AgentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class AgentConfig(BaseModel):
    """One agent (medewerker) in agents.yaml."""

    model_config = ConfigDict(extra="forbid")

    id: AgentId
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    role: Role = Role.AGENT
    locations: list[Key] = Field(default_factory=list)
    skills: list[Key] = Field(default_factory=list)
    capacity: int = Field(1, ge=0, le=100, description="work items at the same time")
    queues: list[WorkQueueName] = Field(
        default_factory=list,
        description="work queues this agent serves besides those of its skills and locations",
    )
    bsn: bool = Field(False, description="sees BSNs (supervisors always do)")
    token_sha256: Sha256 | None = Field(None, description="hex SHA-256 of the agent's token")
    token_env: EnvName | None = Field(None, description="environment variable with the token")

    @model_validator(mode="after")
    def _one_token_source(self) -> AgentConfig:
        if self.role is Role.SERVICE:
            raise ValueError("the service role belongs to KANAAL_DOSSIER_API_TOKEN, not an agent")
        if (self.token_sha256 is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_sha256 and token_env")
        return self


class AgentsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agents: list[AgentConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> AgentsConfig:
        ids = [a.id for a in self.agents]
        doubles = sorted({i for i in ids if ids.count(i) > 1})
        if doubles:
            raise ValueError(f"agent ids must be unique: {', '.join(doubles)}")
        return self


@dataclass(frozen=True)
class Caller:
    """Who is calling the API, and what they may do."""

    id: str
    name: str
    role: Role
    permissions: frozenset[Permission]

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AgentDirectory:
    """Finds the caller of a bearer token in constant time per known token."""

    def __init__(self, entries: Mapping[bytes, Caller]) -> None:
        self._entries = dict(entries)

    @classmethod
    def build(
        cls,
        config: AgentsConfig,
        service_token: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AgentDirectory:
        env = os.environ if environ is None else environ
        entries: dict[bytes, Caller] = {}
        if service_token:
            entries[token_digest(service_token)] = Caller(
                SERVICE_AGENT_ID, "service", Role.SERVICE, ROLE_PERMISSIONS[Role.SERVICE]
            )
        for agent in config.agents:
            if agent.token_sha256 is not None:
                digest = bytes.fromhex(agent.token_sha256)
            else:
                token = env.get(agent.token_env or "")
                if not token:
                    log.warning(
                        "agent has no token: its environment variable is unset",
                        agent=agent.id,
                        token_env=agent.token_env,
                    )
                    continue
                digest = token_digest(token)
            if digest in entries:
                raise ValueError(f"agent {agent.id} shares its token with another caller")
            permissions = set(ROLE_PERMISSIONS[agent.role])
            if agent.bsn:
                permissions.add(Permission.READ_BSN)
            entries[digest] = Caller(agent.id, agent.name, agent.role, frozenset(permissions))
        return cls(entries)

    def caller(self, authorization: str | None) -> Caller | None:
        """The caller whose token is in `Authorization: Bearer <token>`, if any."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = token_digest(token.strip())
        found: Caller | None = None
        for known, caller in self._entries.items():
            if hmac.compare_digest(known, digest):
                found = caller
        return found

    @property
    def is_empty(self) -> bool:
        return not self._entries


def load_agents(config_dir: Path) -> AgentsConfig:
    """agents.yaml, validated; a missing file means no agents (only the service token)."""
    path = config_dir / AGENTS_FILE
    if not path.exists():
        return AgentsConfig()
    return load_section(path, AgentsConfig)
