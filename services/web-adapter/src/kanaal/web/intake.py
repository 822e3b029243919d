"""What the web channel does, for the JSON API and the form pages alike.

A submission is kept (its thread and status token), published, and answered with the
case reference once the dossier has it; a reply from a status page is a new contact on
the thread's case; an agent's answer from `outbound.web` is kept for its thread's page,
with an optional e-mail notice that holds the link, never the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from kanaal.common.adapter import ChannelAdapter, PermanentFailure
from kanaal.common.contract import (
    Attachment,
    CaseStatus,
    ContactMessage,
    Direction,
    Party,
)
from kanaal.common.logging import get_logger
from kanaal.common.topology import OUTBOUND, Event
from kanaal.web.attachments import AttachmentStore, Limits, Upload, check
from kanaal.web.store import Thread, WebStore
from kanaal.web.submission import (
    ReplyMessage,
    WebChannelConfig,
    WebMessage,
    content_digest,
    reply_contact,
    to_contact,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class Submitted:
    contact_id: uuid.UUID
    token: str
    case_ref: str | None


@dataclass(frozen=True)
class ThreadStatus:
    thread: Thread
    registered: bool
    case_ref: str | None
    case_status: CaseStatus | None

    @property
    def answers(self) -> list[tuple[float, str]]:
        return [(e.at, e.text) for e in self.thread.entries if e.kind == "answer"]


class Dossier:
    """The few reads the web channel makes from the dossier's API (service token)."""

    def __init__(self, url: str, token: SecretStr | None, wait: float) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        self.wait = wait

    async def contact(self, contact_id: str) -> dict[str, Any] | None:
        """Where the contact landed, or None while unknown (or the dossier cannot say)."""
        try:
            async with httpx.AsyncClient(timeout=3.0, headers=self.headers) as client:
                response = await client.get(f"{self.url}/api/v1/contacts/{contact_id}")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        found: dict[str, Any] = response.json()
        return found

    async def wait_for_case_ref(self, contact_id: str) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait
        while loop.time() < deadline:
            found = await self.contact(contact_id)
            if found is not None:
                return str(found["case_ref"])
            await asyncio.sleep(0.1)
        return None


class WebIntake:
    def __init__(
        self,
        channel: WebChannelConfig,
        adapter: ChannelAdapter,
        store: WebStore,
        files: AttachmentStore,
        dossier: Dossier,
        limits: Limits,
        public_url: str,
    ) -> None:
        self.channel = channel
        self.adapter = adapter
        self.store = store
        self.files = files
        self.dossier = dossier
        self.limits = limits
        self.public_url = public_url.rstrip("/")
        self._key = b""

    def use_key(self, key: bytes) -> None:
        self._key = key

    def token_for(self, thread_id: str) -> str:
        """The status token: unguessable without our key, and the same for the same thread."""
        mac = hmac.new(self._key, f"status:{thread_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def keep_files(self, uploads: Sequence[Upload]) -> list[Attachment]:
        """Check uploads (raises AttachmentRefused) and keep them in the attachment store."""
        checked = check(list(uploads), self.limits)
        return [
            await asyncio.to_thread(self.files.keep, upload, content_type)
            for upload, content_type in checked
        ]

    async def submit(
        self,
        message: WebMessage,
        files: Sequence[Attachment] = (),
        *,
        idempotency_key: str | None = None,
    ) -> Submitted:
        """Keep, publish (raises HTTP 503 when the broker does not confirm), find the case."""
        contact = to_contact(
            message,
            self.channel,
            received_at=datetime.now(UTC),
            idempotency_key=idempotency_key,
            attachments=files,
        )
        token = self.token_for(str(contact.id))
        thread_id = await self.store.record_submission(
            contact, content_digest(message, files), token=token
        )
        token = self.token_for(thread_id)
        await self.adapter.accept(contact)
        case_ref = await self.dossier.wait_for_case_ref(str(contact.id))
        if case_ref is not None:
            await self.store.set_case_ref(thread_id, case_ref)
        return Submitted(contact.id, token, case_ref)

    async def reply(
        self, thread: Thread, reply: ReplyMessage, files: Sequence[Attachment] = ()
    ) -> uuid.UUID:
        """The citizen's reply from the status page: a new contact on the same case."""
        case_ref = thread.case_ref or (await self.status(thread)).case_ref
        contact = reply_contact(
            reply,
            self.channel,
            thread_id=thread.id,
            subject=thread.subject,
            case_ref=case_ref,
            in_reply_to=thread.last_source_ref,
            received_at=datetime.now(UTC),
            attachments=files,
        )
        await self.store.record_submission(
            contact, content_digest(reply, files), token="", thread_id=thread.id
        )
        await self.adapter.accept(contact)
        return contact.id

    async def status(self, thread: Thread) -> ThreadStatus:
        """The thread with where its newest contact landed (the case may have moved on)."""
        found = None
        for contact_id in reversed(thread.contact_ids):
            found = await self.dossier.contact(contact_id)
            if found is not None:
                break
        if found is None:
            return ThreadStatus(thread, False, thread.case_ref, None)
        case_ref = str(found["case_ref"])
        if case_ref != thread.case_ref:
            await self.store.set_case_ref(thread.id, case_ref)
        return ThreadStatus(thread, True, case_ref, CaseStatus(found["case_status"]))

    async def deliver(self, answer: ContactMessage) -> str:
        """`outbound.web`: keep the answer for its status page; notify by e-mail if asked."""
        thread_id = await self.store.thread_for_answer(answer.in_reply_to)
        if thread_id is None:
            raise PermanentFailure("the answer replies to no web message this adapter knows")
        if await self.store.record_answer(thread_id, answer):
            log.info("answer kept for its status page", contact_id=str(answer.id))
        if self.channel.notify is not None and answer.party.email:
            # Sent again on a redelivery: the e-mail adapter mails one contact id once.
            await self._notify(answer, thread_id)
        return f"status:{thread_id}"

    async def _notify(self, answer: ContactMessage, thread_id: str) -> None:
        notice = self.channel.notify
        assert notice is not None
        link = f"{self.public_url}/status/{self.token_for(thread_id)}"
        mail = ContactMessage.new(
            channel="email",
            direction=Direction.OUTBOUND,
            entry_point=notice.mailbox,
            source_ref=f"web-notice:{answer.id}",
            party=Party(email=answer.party.email),
            subject=answer.subject,
            language=answer.language,
            case_ref=answer.case_ref,
            text=notice.text.replace("{status_url}", link),
        )
        await self.adapter.publisher.publish(
            mail,
            exchange=OUTBOUND,
            routing_key="email",
            message_type=Event.CONTACT_OUTBOUND.value,
            message_id=mail.id,
        )
        log.info("answer notice sent to the e-mail channel", contact_id=str(mail.id))
