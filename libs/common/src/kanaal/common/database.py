"""Async SQLAlchemy engines made the same way by every service that keeps state.

Needs the optional extra `kanaal-common[database]` (SQLAlchemy, aiosqlite, asyncpg).
Statement parameters are personal data (names, addresses, message text): they are kept
out of SQLAlchemy's error messages, and aiosqlite's DEBUG records (which print every
statement with its parameters) are switched off. A SQLite file's folder is made first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_S: Final = 30.0


def is_sqlite(url: URL | str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, sqlite_immediate: bool = False) -> AsyncEngine:
    """An engine for `url` (SQLite or PostgreSQL).

    `sqlite_immediate` gives SQLite WAL, foreign keys and `BEGIN IMMEDIATE`, so that
    concurrent writers queue for the write lock instead of failing halfway through a
    transaction (what the dossier needs); PostgreSQL runs as it is.
    """
    parsed = make_url(url)
    if not is_sqlite(parsed):
        return create_async_engine(parsed, pool_pre_ping=True, hide_parameters=True)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}, hide_parameters=True
    )
    if sqlite_immediate:
        event.listen(engine.sync_engine, "connect", _wal_without_driver_transactions)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _wal_without_driver_transactions(dbapi_connection: Any, _: Any) -> None:
    # Take transaction control away from the driver, so `_begin_immediate` decides.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # Take the write lock up front: a deferred transaction that later upgrades to a
    # writer fails with SQLITE_BUSY at once instead of waiting for the lock.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


async def database_reachable(engine: AsyncEngine) -> bool:
    """Readiness: the database answers `SELECT 1` (raises when it does not)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True
