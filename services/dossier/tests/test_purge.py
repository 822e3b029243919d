"""Retention: `kanaal dossier purge` removes closed cases, their contacts and orphaned parties."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from kanaal.common.contract import ContactMessage, RegisteredContact
from kanaal.dossier.database import create_engine, upgrade
from kanaal.dossier.models import Base, CaseRow, ContactRow, OutboxRow, PartyRow
from kanaal.dossier.store import Actor, DossierStore

ContactFactory = Callable[..., ContactMessage]
ANNA = Actor("anna")

# A follow-up by e-mail: on the web a typed address would prove nothing (cases.link_case).
BY_EMAIL = {"channel": "email", "entry_point": "info@gemeente.nl"}


async def count(store: DossierStore, model: type[Base]) -> int:
    async with store.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def register(store: DossierStore, contact: ContactMessage) -> RegisteredContact:
    registered = await store.register(contact)
    assert registered is not None
    return registered


async def test_purge_removes_closed_cases_their_contacts_and_parties_left_without_cases(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    gone = await register(store, make_contact(party={"email": "weg@example.nl"}))
    await register(
        store, make_contact(party={"email": "weg@example.nl"}, case_ref=gone.case_ref, **BY_EMAIL)
    )
    stays_open = await register(store, make_contact(party={"email": "blijft@example.nl"}))
    closed_too = await register(store, make_contact(party={"email": "blijft@example.nl"}))
    await store.close(gone.case_ref, ANNA, "beantwoord")
    await store.close(closed_too.case_ref, ANNA, "beantwoord")
    async with store.sessions.begin() as session:  # the relay published everything
        for row in await session.scalars(select(OutboxRow)):
            row.published_at = datetime.now(UTC)
    tomorrow = datetime.now(UTC) + timedelta(days=1)

    dry = await store.purge(tomorrow, dry_run=True)
    assert (dry.cases, dry.contacts, dry.parties, dry.dry_run) == (2, 3, 1, True)
    assert await count(store, ContactRow) == 4

    done = await store.purge(tomorrow, dry_run=False)
    assert (done.cases, done.contacts, done.parties) == (2, 3, 1)
    assert await count(store, ContactRow) == 1
    assert await count(store, CaseRow) == 1
    assert await count(store, PartyRow) == 1
    assert await store.case_view(gone.case_ref) is None
    assert await store.case_view(stays_open.case_ref) is not None
    async with store.sessions() as session:
        kept = set(await session.scalars(select(OutboxRow.message_id)))
    assert str(gone.contact.id) not in kept
    assert str(stays_open.contact.id) in kept


async def test_purge_keeps_cases_closed_after_the_date(
    store: DossierStore, make_contact: ContactFactory
) -> None:
    registered = await register(store, make_contact())
    await store.close(registered.case_ref, ANNA, "beantwoord")
    counts = await store.purge(datetime.now(UTC) - timedelta(days=1), dry_run=False)
    assert (counts.cases, counts.contacts, counts.parties) == (0, 0, 0)
    assert await store.case_view(registered.case_ref) is not None


async def test_the_purge_command_reports_counts_and_dry_run_changes_nothing(
    tmp_path: Path, make_contact: ContactFactory
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/dossier.db"
    engine = create_engine(url)
    await upgrade(engine)
    store = DossierStore(engine)
    registered = await register(store, make_contact())
    await store.close(registered.case_ref, ANNA, "beantwoord")
    await engine.dispose()
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    kanaal = Path(sys.executable).with_name("kanaal")
    env = {"KANAAL_DATABASE_URL": url, "PATH": str(kanaal.parent)}

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(kanaal), "dossier", "purge", "--closed-before", tomorrow, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    assert "would remove 1 closed cases, 1 contacts and 1 parties" in run("--dry-run")
    assert "removed 1 closed cases, 1 contacts and 1 parties" in run()
    assert "removed 0 closed cases" in run()
