"""The router's memory of work events, in a SQLite file, so SLA timers survive restarts.

Every event from `router.events` is appended before it is acked; at start the journal
is replayed into a :class:`WaitingWork`. Events older than the retention are dropped, at
the start and while the router runs (:meth:`Journal.forget`).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Final

from kanaal.common.contract import CaseEvent, WorkItem
from kanaal.common.topology import Event
from kanaal.router.escalation import WaitingWork

DEFAULT_RETENTION_DAYS: Final = 30


def apply_event(waiting: WaitingWork, kind: str, body: bytes) -> None:
    """Fold one event into `waiting`; raises pydantic's ValidationError on a bad body."""
    if kind == Event.CONTACT_ROUTED:
        waiting.routed(WorkItem.model_validate_json(body))
    elif kind.startswith("case."):
        waiting.case_event(CaseEvent.model_validate_json(body))


class Journal:
    def __init__(self, path: Path, retention_days: int = DEFAULT_RETENTION_DAYS) -> None:
        self._retention_seconds = retention_days * 86_400
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A process crash loses nothing committed with NORMAL; only power loss could.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS events "
            "(seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, body BLOB NOT NULL, at REAL NOT NULL)"
        )
        # forget() deletes by age while the router runs: without an index, a full scan.
        self._db.execute("CREATE INDEX IF NOT EXISTS events_at ON events (at)")

    def append(self, kind: str, body: bytes) -> None:
        self._db.execute(
            "INSERT INTO events (kind, body, at) VALUES (?, ?, ?)", (kind, body, time.time())
        )

    def append_many(self, kind: str, bodies: list[bytes]) -> None:
        """Several events of one kind in one transaction (one commit for a batch)."""
        if not bodies:
            return
        now = time.time()
        self._db.execute("BEGIN")
        try:
            self._db.executemany(
                "INSERT INTO events (kind, body, at) VALUES (?, ?, ?)",
                [(kind, body, now) for body in bodies],
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def forget(self) -> int:
        """Delete the events older than the retention; returns how many."""
        cursor = self._db.execute(
            "DELETE FROM events WHERE at < ?", (time.time() - self._retention_seconds,)
        )
        return cursor.rowcount

    def replay(self, waiting: WaitingWork) -> int:
        self.forget()
        count = 0
        for kind, body in self._db.execute("SELECT kind, body FROM events ORDER BY seq"):
            try:
                apply_event(waiting, kind, body)
            except ValueError:
                continue
            count += 1
        return count

    def close(self) -> None:
        self._db.close()
