"""Async SQLAlchemy engines and Alembic schema upgrades, alike for every service with state.

Needs the optional extra `kanaal-common[database]` (SQLAlchemy, aiosqlite, asyncpg, Alembic).
Statement parameters are personal data (names, addresses, message text): they are kept
out of SQLAlchemy's error messages, and aiosqlite's DEBUG records (which print every
statement with its parameters) are switched off. A SQLite file's folder is made first.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Final

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

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


async def migrate(
    engine: AsyncEngine,
    *,
    script_location: str | Path,
    version_table: str,
    revision: str = "head",
    lock: str | None = None,
) -> None:
    """Bring the schema of the migrations in `script_location` to `revision`, at start.

    Alembic's configuration is built here (no alembic.ini to ship or find) and its
    `env.py` gets the open connection (see :func:`run_migrations`). Every service keeps
    its own `version_table`, so services can share one database. All of it is one
    transaction, and processes starting together take turns: on PostgreSQL an advisory
    lock named `lock` (by default after the version table), on SQLite the write lock.
    """
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes["version_table"] = version_table
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await advisory_lock(connection, lock or f"kanaal.schema.{version_table}")
        elif connection.dialect.name == "sqlite" and not event.contains(
            engine.sync_engine, "begin", _begin_immediate
        ):
            # The driver itself begins a transaction only before INSERT/UPDATE/DELETE,
            # so without this the CREATE statements would each commit on their own.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        await connection.run_sync(_upgrade, config, revision)


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def run_migrations(metadata: MetaData) -> None:
    """The whole of a service's `migrations/env.py`: migrate on the connection handed in.

    There is no offline (SQL script) mode and no `alembic` command line: migrations run
    through :func:`migrate`, which also names the service's version table.
    """
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("run these migrations through kanaal.common.database.migrate()")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,  # SQLite alters a table by copying it
        version_table=context.config.attributes["version_table"],
    )
    with context.begin_transaction():
        context.run_migrations()


async def schema_differences(engine: AsyncEngine, metadata: MetaData) -> list[Any]:
    """What the database's tables lack or have beyond `metadata` (Alembic's autogenerate
    comparison); empty when they match. Tables not in `metadata` (another service's, a
    version table) are not looked at."""

    def include_name(name: str | None, type_: str, _: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    def compare(connection: Connection) -> list[Any]:
        migration = MigrationContext.configure(connection, opts={"include_name": include_name})
        return list(compare_metadata(migration, metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def advisory_lock(connection: AsyncConnection, name: str) -> None:
    """PostgreSQL: hold the lock `name` until this transaction ends (waiting for it first)."""
    await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})


def lock_key(name: str) -> int:
    """A stable signed 64-bit number for an advisory lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
