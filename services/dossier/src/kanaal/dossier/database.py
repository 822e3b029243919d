"""The dossier's database: the async engine for SQLite or PostgreSQL, and the schema upgrade.

SQLite gets WAL and `BEGIN IMMEDIATE`, so concurrent writers queue for the write lock
instead of failing halfway through a transaction; PostgreSQL runs as it is. The schema
is Alembic's: :func:`upgrade` brings any database to the newest revision at start.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kanaal.common.database import create_engine as common_create_engine

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    """The dossier's engine: on SQLite with WAL and `BEGIN IMMEDIATE` (kanaal.common.database)."""
    return common_create_engine(url, sqlite_immediate=True)


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
