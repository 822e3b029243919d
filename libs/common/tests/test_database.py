"""Schema upgrades through `migrate` on SQLite and PostgreSQL: one transaction, one version
table per service, and processes that start together take turns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, inspect, text

from kanaal.common.database import create_engine, migrate, schema_differences

ENV = """
from sqlalchemy import MetaData

from kanaal.common.database import run_migrations

run_migrations(MetaData())
"""

REVISION = """
import time

import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down_revision!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True))
    time.sleep(0.3)  # room for a second process to start meanwhile
    {then}


def downgrade() -> None:
    op.drop_table("{table}")
"""

notes = MetaData()
Table("notes", notes, Column("id", Integer, primary_key=True))


def write_migrations(folder: Path, *, failing_second: bool = False) -> Path:
    """A migrations folder: `notes`, and optionally a second revision that fails halfway."""
    (folder / "versions").mkdir(parents=True)
    (folder / "env.py").write_text(ENV)
    revision = REVISION.format(revision="n0001", down_revision=None, table="notes", then="")
    (folder / "versions" / "n0001.py").write_text(revision)
    if failing_second:
        broken = REVISION.format(
            revision="n0002",
            down_revision="n0001",
            table="tags",
            then='raise RuntimeError("a revision that fails")',
        )
        (folder / "versions" / "n0002.py").write_text(broken)
    return folder


@pytest.fixture(
    params=[
        "sqlite",
        "sqlite-immediate",
        pytest.param("postgresql", marks=pytest.mark.postgres),
    ]
)
def engine_maker(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, bool]:
    """A database URL and whether its engine begins SQLite transactions IMMEDIATE."""
    if request.param.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'var' / 'kanaal.db'}"
        return url, request.param == "sqlite-immediate"
    postgres_url: str = request.getfixturevalue("postgres_url")
    return postgres_url, False


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


def migrate_in_own_process(url: str, immediate: bool, folder: Path) -> None:
    """What one replica does at start, on its own thread and event loop."""

    async def start() -> None:
        engine = create_engine(url, sqlite_immediate=immediate)
        try:
            await migrate(engine, script_location=folder, version_table="notes_alembic_version")
        finally:
            await engine.dispose()

    asyncio.run(start())


async def test_replicas_starting_together_migrate_once(
    engine_maker: tuple[str, bool], tmp_path: Path
) -> None:
    url, immediate = engine_maker
    folder = write_migrations(tmp_path / "migrations")
    await asyncio.gather(
        *(asyncio.to_thread(migrate_in_own_process, url, immediate, folder) for _ in range(3))
    )
    assert await table_names(url) == {"notes", "notes_alembic_version"}
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            versions = (
                await connection.execute(text("SELECT version_num FROM notes_alembic_version"))
            ).all()
        assert [v.version_num for v in versions] == ["n0001"]
        assert await schema_differences(engine, notes) == []
    finally:
        await engine.dispose()


async def test_a_failing_revision_leaves_the_database_as_it_was(
    engine_maker: tuple[str, bool], tmp_path: Path
) -> None:
    url, immediate = engine_maker
    folder = write_migrations(tmp_path / "migrations", failing_second=True)
    engine = create_engine(url, sqlite_immediate=immediate)
    try:
        with pytest.raises(RuntimeError, match="a revision that fails"):
            await migrate(engine, script_location=folder, version_table="notes_alembic_version")
    finally:
        await engine.dispose()
    assert await table_names(url) == set()


async def test_schema_differences_see_only_the_tables_of_the_metadata(
    engine_maker: tuple[str, bool], tmp_path: Path
) -> None:
    url, immediate = engine_maker
    folder = write_migrations(tmp_path / "migrations")
    engine = create_engine(url, sqlite_immediate=immediate)
    try:
        await migrate(engine, script_location=folder, version_table="notes_alembic_version")
        others = MetaData()
        Table("someone_elses", others, Column("name", String(10), primary_key=True))
        async with engine.begin() as connection:
            await connection.run_sync(others.create_all)
        assert await schema_differences(engine, notes) == []
        wider = MetaData()
        Table("notes", wider, Column("id", Integer, primary_key=True), Column("text", String(99)))
        [(kind, _, table, column)] = await schema_differences(engine, wider)
        assert (kind, table, column.name) == ("add_column", "notes", "text")
    finally:
        await engine.dispose()
