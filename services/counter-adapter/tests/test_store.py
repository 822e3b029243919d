"""The visit store on SQLite and PostgreSQL: a visit kept once, moved with its update."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kanaal.common.database import create_engine
from kanaal.counter.store import VisitStore
from kanaal.counter.visits import Visit, VisitStatus

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'counter.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[VisitStore]:
    kept = VisitStore(create_engine(database_url))
    await kept.create_schema()
    yield kept
    await kept.engine.dispose()


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
