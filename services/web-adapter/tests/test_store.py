"""The web adapter's store on SQLite and PostgreSQL: its migrations build exactly its tables."""

from __future__ import annotations

from kanaal.common.database import create_engine, schema_differences
from kanaal.web.store import WebStore, metadata


async def test_the_migrations_build_exactly_the_tables_of_the_store(database_url: str) -> None:
    store = WebStore(create_engine(database_url))
    try:
        await store.upgrade()
        await store.upgrade()  # starting again changes nothing
        assert await schema_differences(store.engine, metadata) == []
    finally:
        await store.dispose()
