"""Web sessions of the desk: a random id in an HttpOnly, SameSite=Strict cookie, kept here.

The agent's token never goes back to the browser after login; the session holds it, with
the session's CSRF token that every form must send back. Sessions live in this process:
a restarted desk asks agents to log in again (nothing is held for them in the queues).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from kanaal.desk.actions import Agent

COOKIE: Final = "kanaal_desk"
#: Before login: the login form's CSRF token, double-submitted in this cookie.
LOGIN_COOKIE: Final = "kanaal_desk_login"


@dataclass
class Session:
    id: str
    agent: Agent
    csrf: str
    expires: float
    flash: list[str] = field(default_factory=list)


class Sessions:
    def __init__(self, lifetime_seconds: float) -> None:
        self._lifetime = lifetime_seconds
        self._sessions: dict[str, Session] = {}

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def start(self, agent: Agent) -> Session:
        self._sweep()
        session = Session(
            id=secrets.token_urlsafe(32),
            agent=agent,
            csrf=secrets.token_urlsafe(32),
            expires=time.monotonic() + self._lifetime,
        )
        self._sessions[session.id] = session
        return session

    def find(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.expires < time.monotonic():
            self._sessions.pop(session_id or "", None)
            return None
        return session

    def end(self, session_id: str | None) -> None:
        self._sessions.pop(session_id or "", None)

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; a missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
