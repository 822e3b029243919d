"""The web adapter's store on SQLite and PostgreSQL: its migrations build exactly its tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from kanaal.common.database import create_engine, schema_differences
from kanaal.web.store import WebStore, metadata


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'web.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def test_the_migrations_build_exactly_the_tables_of_the_store(database_url: str) -> None:
    store = WebStore(create_engine(database_url))
    try:
        await store.upgrade()
        await store.upgrade()  # starting again changes nothing
        assert await schema_differences(store.engine, metadata) == []
    finally:
        await store.dispose()
