"""The call store on SQLite and PostgreSQL: duplicates are no-ops, due calls are found, purge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kanaal.common.database import create_engine
from kanaal.phone.cti import CallEvent, parse_event
from kanaal.phone.store import CallStore

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def cti(kind: str, call_id: str, at: datetime, **fields: str) -> CallEvent:
    data = {"event": [kind], "callId": [call_id], "from": ["0612345678"], "to": ["14020"]}
    data |= {"direction": ["in"]} | {k: [v] for k, v in fields.items()}
    return parse_event(data, received_at=at)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'phone.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[CallStore]:
    kept = CallStore(create_engine(database_url))
    await kept.create_schema()
    await kept.create_schema()  # starting again is harmless
    yield kept
    await kept.engine.dispose()


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
