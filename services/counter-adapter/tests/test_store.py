"""The visit store on SQLite and PostgreSQL: its migrations, a visit kept once, moved with its
update."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from kanaal.common.database import create_engine, schema_differences
from kanaal.counter.store import MIGRATIONS_DIR, VERSION_TABLE, VisitStore, metadata
from kanaal.counter.visits import Visit, VisitStatus

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[VisitStore]:
    kept = VisitStore(create_engine(database_url))
    await kept.upgrade()
    await kept.upgrade()  # starting again is harmless
    yield kept
    await kept.engine.dispose()


async def test_the_migrations_build_exactly_the_tables_of_the_store(store: VisitStore) -> None:
    assert await schema_differences(store.engine, metadata) == []


async def test_a_database_made_before_migrations_is_upgraded_with_its_visits_kept(
    database_url: str,
) -> None:
    # The release before migrations ran `metadata.create_all`. Once a revision changes
    # these tables, make them here as that release did instead.
    old = VisitStore(create_engine(database_url))
    async with old.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    visit = Visit(uuid.uuid4(), "stadhuis", "A024", "rijbewijs", VisitStatus.WAITING, T0)
    assert await old.add(visit)
    update_id = uuid.uuid4()
    await old.record(visit, update_id, "noted", T0)
    await old.engine.dispose()

    store = VisitStore(create_engine(database_url))
    try:
        await store.upgrade()
        assert await store.get(visit.id) == visit
        assert await store.has_update(update_id)
        assert not await store.add(visit)
        async with store.engine.connect() as connection:
            version = await connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert await schema_differences(store.engine, metadata) == []
    finally:
        await store.engine.dispose()


async def test_a_visit_is_kept_once_and_moves_with_its_update(store: VisitStore) -> None:
    visit = Visit(uuid.uuid4(), "stadhuis", "A023", "paspoort", VisitStatus.WAITING, T0)
    assert await store.add(visit)
    assert not await store.add(visit)
    assert await store.get(visit.id) == visit
    assert await store.get(uuid.uuid4()) is None

    called = Visit(
        visit.id,
        "stadhuis",
        "A023",
        "paspoort",
        VisitStatus.CALLED,
        T0,
        T0 + timedelta(minutes=5),
        "3",
    )
    update_id = uuid.uuid4()
    assert not await store.has_update(update_id)
    await store.record(called, update_id, "called", T0 + timedelta(minutes=5))
    assert await store.has_update(update_id)
    assert await store.get(visit.id) == called
    assert await store.reachable()
