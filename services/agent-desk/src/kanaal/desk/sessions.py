"""Web sessions of the desk: a random id in an HttpOnly, SameSite=Strict cookie, and the
session itself in a small SQLite file, so that a restarted desk keeps its agents logged in.

The agent's token never goes back to the browser after login: the session holds it, with
the session's CSRF token that every form must send back. The file does not give the tokens
away either: a row is found by a hash of the session id, and the token in it is encrypted
with Fernet (the `cryptography` package: AES-128-CBC with HMAC-SHA256) under a key derived
from the id with HKDF, so only a request carrying the cookie can open it. Logging out
deletes the row; the cookie is worthless from then on, restart or not. A session is also
ended when the agent's token no longer logs in (removed from agents.yaml, token rotated).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kanaal.desk.actions import Agent

COOKIE: Final = "kanaal_desk"
#: Before login: the login form's CSRF token, double-submitted in this cookie.
LOGIN_COOKIE: Final = "kanaal_desk_login"

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sessions (
    key TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    sealed_token BLOB NOT NULL,
    csrf TEXT NOT NULL,
    expires REAL NOT NULL,
    flash TEXT NOT NULL DEFAULT '[]'
)
"""


@dataclass
class Session:
    id: str
    agent: Agent
    csrf: str
    expires: float


def _key(session_id: str) -> str:
    return hashlib.sha256(b"kanaal-desk-session:" + session_id.encode()).hexdigest()


def _fernet(session_id: str) -> Fernet:
    """The session's own cipher: a Fernet key derived from the (256-bit random) id."""
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"kanaal-desk-session-token"
    ).derive(session_id.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _seal(session_id: str, token: bytes) -> bytes:
    return _fernet(session_id).encrypt(token)


def _open(session_id: str, sealed: bytes) -> str | None:
    try:
        return _fernet(session_id).decrypt(sealed).decode()
    except (InvalidToken, UnicodeDecodeError):
        return None


class Sessions:
    """Sessions in SQLite (`KANAAL_DESK_SESSIONS_PATH`); several desk processes may share it.

    Calls are synchronous: one indexed row on a local file takes well under a millisecond.
    """

    def __init__(self, path: Path, lifetime_seconds: float) -> None:
        self._path = path
        self._lifetime = lifetime_seconds
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> float:
        return self._lifetime

    @property
    def _db(self) -> sqlite3.Connection:
        if self._connection is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._path.touch(mode=0o600, exist_ok=True)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(SCHEMA)
            self._connection = db
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def start(self, agent: Agent) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            agent=agent,
            csrf=secrets.token_urlsafe(32),
            expires=time.time() + self._lifetime,
        )
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE expires < ?", (time.time(),))
            self._db.execute(
                "INSERT INTO sessions (key, agent, sealed_token, csrf, expires) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    _key(session.id),
                    agent.id,
                    _seal(session.id, agent.token.encode()),
                    session.csrf,
                    session.expires,
                ),
            )
        return session

    def find(self, session_id: str | None, login: Callable[[str], Agent | None]) -> Session | None:
        """The live session of this cookie, its agent logged in again by `login(token)`."""
        if not session_id or len(session_id) > 100:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT agent, sealed_token, csrf, expires FROM sessions WHERE key = ?",
                (_key(session_id),),
            ).fetchone()
        if row is None:
            return None
        agent_id, sealed, csrf, expires = row
        token = _open(session_id, bytes(sealed))
        agent = login(token) if token is not None else None
        if expires < time.time() or agent is None or agent.id != agent_id:
            self.end(session_id)
            return None
        return Session(session_id, agent, str(csrf), float(expires))

    def end(self, session_id: str | None) -> None:
        with self._lock:
            self._db.execute("DELETE FROM sessions WHERE key = ?", (_key(session_id or ""),))

    def add_flash(self, session: Session, message: str) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT flash FROM sessions WHERE key = ?", (_key(session.id),)
            ).fetchone()
            if row is not None:
                shown = [*json.loads(row[0]), message][-10:]
                self._db.execute(
                    "UPDATE sessions SET flash = ? WHERE key = ?",
                    (json.dumps(shown), _key(session.id)),
                )

    def take_flashes(self, session: Session) -> list[str]:
        with self._lock:
            row = self._db.execute(
                "SELECT flash FROM sessions WHERE key = ?", (_key(session.id),)
            ).fetchone()
            if row is None or row[0] == "[]":
                return []
            self._db.execute("UPDATE sessions SET flash = '[]' WHERE key = ?", (_key(session.id),))
        return [str(m) for m in json.loads(row[0])]


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of CSRF tokens; a missing one never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
