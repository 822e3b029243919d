"""Fixtures for the dossier's tests: a migrated store on SQLite and on PostgreSQL, and contacts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from itertools import count
from typing import Any

import pytest

from kanaal.common.contract import ContactMessage
from kanaal.common.testing import sample_contact
from kanaal.dossier.database import create_engine, upgrade
from kanaal.dossier.store import DossierStore

_refs = count(1)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[DossierStore]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield DossierStore(engine)
    await engine.dispose()


ContactFactory = Callable[..., ContactMessage]


@pytest.fixture
def make_contact() -> ContactFactory:
    """A valid contact; every call is a new source item unless `source_ref` is given."""

    def make(**fields: Any) -> ContactMessage:
        fields.setdefault("source_ref", f"submission-{next(_refs)}")
        return sample_contact(**fields)

    return make
