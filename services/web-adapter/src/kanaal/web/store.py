"""What the web adapter keeps: status threads and their tokens, answers, attachment metadata.

A thread is what one status page shows: the citizen's first message, the replies they
sent from the page, and the answers agents sent through the web channel. Its token is
never stored, only its SHA-256, so a copy of the database opens no status page.
The citizen's own text is not kept here (the dossier has it); answers are, because the
status page shows them. SQLite by default (`KANAAL_WEB_DATABASE_URL`), PostgreSQL
works the same; the schema is Alembic's, upgraded at start.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from kanaal.common.contract import Attachment, ContactMessage
from kanaal.common.database import database_reachable, migrate

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
VERSION_TABLE: Final = "web_alembic_version"

metadata = MetaData()

threads = Table(
    "web_threads",
    metadata,
    Column("id", String(36), primary_key=True),  # the first contact's id
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("subject", String(64), nullable=True),
    Column("case_ref", String(20), nullable=True),
    Column("created_at", Float, nullable=False),
)

contacts = Table(
    "web_contacts",
    metadata,
    Column("contact_id", String(36), primary_key=True),
    Column("thread_id", String(36), ForeignKey("web_threads.id"), nullable=False, index=True),
    Column("source_ref", String(1000), nullable=False, index=True),
    Column("content_sha256", String(64), nullable=False),
    Column("attachments", Integer, nullable=False),
    Column("at", Float, nullable=False),
)

answers = Table(
    "web_answers",
    metadata,
    Column("contact_id", String(36), primary_key=True),  # the outbound contact's id
    Column("thread_id", String(36), ForeignKey("web_threads.id"), nullable=False, index=True),
    Column("source_ref", String(1000), nullable=False),
    Column("text", Text, nullable=False),
    Column("at", Float, nullable=False),
)

attachments = Table(
    "web_attachments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("contact_id", String(36), nullable=False, index=True),
    Column("filename", String(255), nullable=False),
    Column("content_type", String(127), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uri", String(2000), nullable=False),
)

keys = Table(
    "web_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

# Messages per client and rate-limit window, shared by every replica. `client` is an
# HMAC of the client's address (never the address); rows go after two windows.
rate_hits = Table(
    "web_rate_hits",
    metadata,
    Column("client", String(64), primary_key=True),
    Column("window", BigInteger, primary_key=True),
    Column("hits", Integer, nullable=False),
)


class SubmissionConflict(Exception):
    """The same submission id (Idempotency-Key) was used before for a different message."""


@dataclass(frozen=True)
class Entry:
    """One line of a status page: the citizen wrote (no text kept) or an agent answered."""

    at: float
    kind: str  # "sent" | "answer"
    text: str = ""
    attachments: int = 0


@dataclass(frozen=True)
class Thread:
    id: str
    subject: str | None
    case_ref: str | None
    created_at: float
    contact_ids: list[str] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    last_source_ref: str | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def upgrade(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        await migrate(self.engine, script_location=MIGRATIONS_DIR, version_table=VERSION_TABLE)

    async def reachable(self) -> bool:
        return await database_reachable(self.engine)

    async def secret_key(self, name: str = "status") -> bytes:
        """A random key made once and kept, so tokens and form signatures survive restarts."""
        async with self.engine.begin() as connection:
            found = await connection.scalar(select(keys.c.value).where(keys.c.name == name))
            if found is None:
                try:
                    async with connection.begin_nested():
                        value = secrets.token_urlsafe(48)
                        await connection.execute(insert(keys).values(name=name, value=value))
                        found = value
                except IntegrityError:  # another replica made it first
                    found = await connection.scalar(select(keys.c.value).where(keys.c.name == name))
        return str(found).encode()

    async def record_submission(
        self,
        contact: ContactMessage,
        content_sha256: str,
        *,
        token: str,
        thread_id: str | None = None,
    ) -> str:
        """Keep a submitted contact (and its thread, when it opens one); return the thread id.

        The same contact again is a no-op; the same contact id with other content (a
        reused Idempotency-Key) raises :class:`SubmissionConflict`.
        """
        contact_id = str(contact.id)
        now = time.time()
        async with self.engine.begin() as connection:
            known = (
                await connection.execute(
                    select(contacts.c.thread_id, contacts.c.content_sha256).where(
                        contacts.c.contact_id == contact_id
                    )
                )
            ).first()
            if known is not None:
                if known.content_sha256 != content_sha256:
                    raise SubmissionConflict(contact_id)
                return str(known.thread_id)
            if thread_id is None:
                thread_id = contact_id
                await connection.execute(
                    insert(threads).values(
                        id=thread_id,
                        token_sha256=token_digest(token),
                        subject=contact.subject,
                        case_ref=None,  # only what the dossier says, never what was typed
                        created_at=now,
                    )
                )
            await connection.execute(
                insert(contacts).values(
                    contact_id=contact_id,
                    thread_id=thread_id,
                    source_ref=contact.source_ref,
                    content_sha256=content_sha256,
                    attachments=len(contact.attachments),
                    at=now,
                )
            )
            if contact.attachments:
                await connection.execute(
                    insert(attachments),
                    [_attachment_row(contact_id, a) for a in contact.attachments],
                )
        return thread_id

    async def thread(self, token: str) -> Thread | None:
        """The thread a status token opens, with its entries oldest first."""
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(threads).where(threads.c.token_sha256 == token_digest(token))
                )
            ).first()
            if row is None:
                return None
            sent = (
                await connection.execute(
                    select(contacts.c.contact_id, contacts.c.source_ref, contacts.c.at)
                    .add_columns(contacts.c.attachments)
                    .where(contacts.c.thread_id == row.id)
                )
            ).all()
            answered = (
                await connection.execute(
                    select(answers.c.source_ref, answers.c.text, answers.c.at).where(
                        answers.c.thread_id == row.id
                    )
                )
            ).all()
        timeline = sorted(
            [(c.at, 0, Entry(c.at, "sent", attachments=c.attachments), c.source_ref) for c in sent]
            + [(a.at, 1, Entry(a.at, "answer", a.text), a.source_ref) for a in answered],
            key=lambda item: (item[0], item[1]),
        )
        return Thread(
            id=row.id,
            subject=row.subject,
            case_ref=row.case_ref,
            created_at=row.created_at,
            contact_ids=[c.contact_id for c in sorted(sent, key=lambda c: c.at)],
            entries=[item[2] for item in timeline],
            last_source_ref=timeline[-1][3] if timeline else None,
        )

    async def set_case_ref(self, thread_id: str, case_ref: str) -> None:
        """The case the dossier put the thread's newest contact on (a follow-up may move it)."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(threads).where(threads.c.id == thread_id).values(case_ref=case_ref)
            )

    async def thread_for_answer(self, in_reply_to: str | None) -> str | None:
        """The thread an answer belongs to: the one holding the message it answers.

        Never by case reference alone: a citizen can type any case's reference into the
        form, so a case reference does not prove whose status page an answer belongs on.
        """
        if in_reply_to is None:
            return None
        async with self.engine.connect() as connection:
            found = await connection.scalar(
                select(contacts.c.thread_id).where(contacts.c.source_ref == in_reply_to)
            )
            if found is None:
                found = await connection.scalar(
                    select(answers.c.thread_id).where(answers.c.source_ref == in_reply_to)
                )
        return None if found is None else str(found)

    async def record_answer(self, thread_id: str, answer: ContactMessage) -> bool:
        """Keep an agent's answer for its thread; False when it was kept before (a redelivery)."""
        async with self.engine.begin() as connection:
            known = await connection.scalar(
                select(answers.c.contact_id).where(answers.c.contact_id == str(answer.id))
            )
            if known is not None:
                return False
            await connection.execute(
                insert(answers).values(
                    contact_id=str(answer.id),
                    thread_id=thread_id,
                    source_ref=answer.source_ref,
                    text=answer.text,
                    at=time.time(),
                )
            )
            if answer.case_ref is not None:
                await connection.execute(
                    update(threads)
                    .where(threads.c.id == thread_id, threads.c.case_ref.is_(None))
                    .values(case_ref=answer.case_ref)
                )
        return True

    async def count_hit(self, client: str, window: int) -> int:
        """Count one message of `client` in `window`; returns the window's count so far."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(rate_hits).values(client=client, window=window, hits=1)
        statement = statement.on_conflict_do_update(
            index_elements=[rate_hits.c.client, rate_hits.c.window],
            set_={"hits": rate_hits.c.hits + 1},
        ).returning(rate_hits.c.hits)
        async with self.engine.begin() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def forget_hits(self, before_window: int) -> None:
        """Drop the counts of windows before `before_window`."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(rate_hits).where(rate_hits.c.window < before_window))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _attachment_row(contact_id: str, attachment: Attachment) -> dict[str, object]:
    return {"contact_id": contact_id, **attachment.model_dump()}
