"""The call store on SQLite and PostgreSQL: its migrations, duplicates are no-ops, due calls
are found, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from kanaal.common.database import create_engine, schema_differences
from kanaal.phone.cti import CallEvent, parse_event
from kanaal.phone.store import MIGRATIONS_DIR, VERSION_TABLE, CallStore, metadata

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def cti(kind: str, call_id: str, at: datetime, **fields: str) -> CallEvent:
    data = {"event": [kind], "callId": [call_id], "from": ["0612345678"], "to": ["14020"]}
    data |= {"direction": ["in"]} | {k: [v] for k, v in fields.items()}
    return parse_event(data, received_at=at)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CallStore]:
    kept = CallStore(create_engine(database_url))
    await kept.upgrade()
    await kept.upgrade()  # starting again is harmless
    yield kept
    await kept.engine.dispose()


async def test_the_migrations_build_exactly_the_tables_of_the_store(store: CallStore) -> None:
    assert await schema_differences(store.engine, metadata) == []


async def test_a_database_made_before_migrations_is_upgraded_with_its_calls_kept(
    database_url: str,
) -> None:
    # The release before migrations ran `metadata.create_all`. Once a revision changes
    # these tables, make them here as that release did instead.
    old = CallStore(create_engine(database_url))
    async with old.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    assert await old.add(cti("newCall", "kept", T0))
    await old.mark_published("kept", "id", T0)
    await old.engine.dispose()

    store = CallStore(create_engine(database_url))
    try:
        await store.upgrade()
        assert [e.call_id for e in await store.events("kept")] == ["kept"]
        assert await store.is_published("kept")
        assert not await store.add(cti("newCall", "kept", T0))
        async with store.engine.connect() as connection:
            version = await connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        assert version == ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert await schema_differences(store.engine, metadata) == []
    finally:
        await store.engine.dispose()


async def test_an_event_is_kept_once_and_read_back_as_it_was(store: CallStore) -> None:
    event = cti("newCall", "a", T0, queue="1")
    assert await store.add(event)
    assert not await store.add(cti("newCall", "a", T0 + timedelta(seconds=5), queue="1"))
    assert await store.add(cti("hangup", "a", T0, cause="noAnswer"))
    events = await store.events("a")
    assert events[0] == event
    assert [e.kind.value for e in events] == ["newCall", "hangup"]


async def test_due_calls_are_the_settled_hangups_and_the_timed_out_ones(store: CallStore) -> None:
    await store.add(cti("newCall", "ended", T0))
    await store.add(cti("hangup", "ended", T0 + timedelta(seconds=30)))
    await store.add(cti("newCall", "open", T0))
    await store.add(cti("newCall", "published", T0))
    await store.add(cti("hangup", "published", T0))
    await store.mark_published("published", "id", T0)
    await store.mark_published("published", "id", T0)  # twice is harmless
    assert await store.candidates(T0 + timedelta(seconds=29), T0 - timedelta(hours=1)) == []
    assert await store.candidates(T0 + timedelta(seconds=30), T0 - timedelta(hours=1)) == ["ended"]
    assert await store.candidates(T0 + timedelta(seconds=30), T0) == ["ended", "open"]
    assert await store.is_published("published")


async def test_published_calls_are_forgotten_after_the_retention(store: CallStore) -> None:
    await store.add(cti("hangup", "old", T0))
    await store.mark_published("old", "id", T0)
    await store.add(cti("hangup", "new", T0))
    await store.mark_published("new", "id", T0 + timedelta(days=2))
    assert await store.purge(T0 + timedelta(days=1)) == 1
    assert await store.events("old") == []
    assert not await store.is_published("old")
    assert await store.is_published("new")
    assert await store.reachable()
