"""Who may use the dossier API: the agents of agents.yaml, as `kanaal.common.agents` reads them."""

from kanaal.common.agents import (
    ROLE_PERMISSIONS,
    SERVICE_AGENT_ID,
    AgentConfig,
    AgentDirectory,
    AgentId,
    AgentsConfig,
    Caller,
    Permission,
    Role,
    load_agents,
    token_digest,
)

__all__ = [
    "ROLE_PERMISSIONS",
    "SERVICE_AGENT_ID",
    "AgentConfig",
    "AgentDirectory",
    "AgentId",
    "AgentsConfig",
    "Caller",
    "Permission",
    "Role",
    "load_agents",
    "token_digest",
]
