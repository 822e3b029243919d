"""The dossier's database: the async engine for SQLite or PostgreSQL, and the schema upgrade.

SQLite gets WAL and `BEGIN IMMEDIATE`, so concurrent writers queue for the write lock
instead of failing halfway through a transaction; PostgreSQL runs as it is. The schema
is Alembic's: :func:`upgrade` brings any database to the newest revision at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kanaal.common.database import advisory_lock, migrate
from kanaal.common.database import create_engine as common_create_engine

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
# Alembic's default name, kept from before the other services had version tables of their own.
VERSION_TABLE: Final = "alembic_version"


def create_engine(url: str) -> AsyncEngine:
    """The dossier's engine: on SQLite with WAL and `BEGIN IMMEDIATE` (kanaal.common.database)."""
    return common_create_engine(url, sqlite_immediate=True)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision`; replicas starting together take turns."""
    await migrate(
        engine,
        script_location=MIGRATIONS_DIR,
        version_table=VERSION_TABLE,
        revision=revision,
        lock="kanaal.dossier.schema",
    )


async def lock_for(connection: AsyncConnection, *keys: str) -> None:
    """Serialise transactions that touch the same `keys` until this transaction ends.

    PostgreSQL: transaction-scoped advisory locks, taken in sorted order so two
    transactions never wait on each other crosswise. SQLite needs nothing: every
    transaction already holds the database's write lock (`BEGIN IMMEDIATE`).
    """
    if connection.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        await advisory_lock(connection, key)
