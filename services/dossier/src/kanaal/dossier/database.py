"""The dossier's database: the async engine for SQLite or PostgreSQL, and the schema upgrade.

SQLite gets WAL and `BEGIN IMMEDIATE`, so concurrent writers queue for the write lock
instead of failing halfway through a transaction; PostgreSQL runs as it is. The schema
is Alembic's: :func:`upgrade` brings any database to the newest revision at start.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S: Final = 30.0


def create_engine(url: str) -> AsyncEngine:
    """An engine for `url`; for a SQLite file its folder is created first.

    Statement parameters are personal data (names, addresses, message text): they are
    kept out of SQLAlchemy's error messages, and aiosqlite's DEBUG records (which
    print every statement with its parameters) are switched off.
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

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _: Any) -> None:
        # Take transaction control away from the driver, so `_on_begin` decides how to begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Take the write lock up front: a deferred transaction that later upgrades to a
        # writer fails with SQLITE_BUSY at once instead of waiting for the lock.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def is_sqlite(url: URL | str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def alembic_config() -> Config:
    """Alembic's configuration, built in code: no alembic.ini to ship or find."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; replicas starting together take turns."""
    async with engine.begin() as connection:
        await lock_for(connection, "kanaal.dossier.schema")
        await connection.run_sync(_run_upgrade, revision)


def _run_upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def lock_for(connection: AsyncConnection, *keys: str) -> None:
    """Serialise transactions that touch the same `keys` until this transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in sorted order so two
    transactions never wait on each other crosswise. SQLite needs nothing: every
    transaction already holds the database's write lock (`BEGIN IMMEDIATE`).
    """
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(key)})


def lock_key(name: str) -> int:
    """A stable signed 64-bit number for an advisory lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def database_reachable(engine: AsyncEngine) -> bool:
    """Readiness: the database answers `SELECT 1`."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return True
