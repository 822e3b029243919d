"""The e-mail adapter's shell: mailboxes in (IMAP), answers out (SMTP), health and metrics.

In: every mailbox in `channels.email.mailboxes` is drained by its own :class:`MailboxIntake`
(publish `contact.received.email`, reject to `dead.intake.email`). Out: `outbound.email`
is consumed by the kit, which calls :func:`send` and reports `contact.sent/failed.email`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from email.message import EmailMessage
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydantic import Field, HttpUrl, SecretStr

from kanaal.common.adapter import ChannelAdapter, PermanentFailure
from kanaal.common.config import CHANNELS_FILE, ConfigError, load_section
from kanaal.common.contract import ContactMessage
from kanaal.common.logging import get_logger
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.email.compose import CannotCompose, compose_acknowledgement, compose_reply
from kanaal.email.config import EmailChannelConfig, MailboxConfig, MissingSecret, tls_context
from kanaal.email.imap import ImapMailbox
from kanaal.email.intake import IntakeOptions, MailboxIntake
from kanaal.email.parse import Limits, ParsedMail
from kanaal.email.smtp import send_mail
from kanaal.email.store import AttachmentStore, SentRecord

log = get_logger(__name__)


class EmailSettings(ServiceSettings):
    email_port: int = Field(SERVICE_PORTS["email"], description="email adapter HTTP port")
    email_attachment_dir: Path = Field(
        Path("var/attachments"), description="the attachment store (a directory)"
    )
    email_state_dir: Path = Field(
        Path("var/email"), description="the record of sent mail (no mail sent twice)"
    )
    email_max_attachment_bytes: int = Field(10_000_000, ge=1, description="per attachment")
    email_max_attachments: int = Field(20, ge=0, le=50, description="attachments per mail")
    email_max_total_bytes: int = Field(25_000_000, ge=1, description="attachments per mail")
    # aioimaplib parses a response recursively, line by line: keep batches well below ~300.
    email_batch_size: int = Field(50, ge=1, le=200, description="mails per UID FETCH")
    email_poll_interval: float = Field(
        60.0, gt=0, description="seconds between polls (also the longest IDLE before a poll)"
    )
    email_reconnect_max: float = Field(60.0, gt=0, description="longest reconnect backoff")
    email_imap_timeout: float = Field(30.0, gt=0, description="seconds per IMAP command")
    email_smtp_timeout: float = Field(30.0, gt=0, description="seconds per SMTP exchange")
    email_ack_wait: float = Field(
        10.0, ge=0, le=60, description="seconds to wait for the case ref before acknowledging"
    )
    email_crash_after_publish: bool = Field(
        False, description="fault tests only: exit hard after publishing, before the move"
    )
    dossier_url: HttpUrl = Field(
        HttpUrl(f"http://127.0.0.1:{SERVICE_PORTS['dossier']}"), description="the dossier's API"
    )
    dossier_api_token: SecretStr | None = Field(None, description="bearer token for the dossier")


def load_channel(settings: EmailSettings) -> EmailChannelConfig:
    path = settings.config_dir / CHANNELS_FILE
    channel = load_section(path, EmailChannelConfig, "channels", "email")
    problems = []
    for number, mailbox in enumerate(channel.mailboxes):
        key = f"channels.email.mailboxes.{number}"
        try:
            mailbox.imap_password()
            mailbox.smtp_password()
        except MissingSecret as exc:
            problems.append(f"{key}: {exc}")
        for side, server in (("imap", mailbox.imap), ("smtp", mailbox.smtp)):
            if server is None or server.ca_file is None:
                continue
            try:
                tls_context(server.ca_file)
            except (ssl.SSLError, OSError) as exc:
                problems.append(f"{key}.{side}.ca_file: not a PEM CA bundle ({exc})")
    addresses = [m.address.lower() for m in channel.mailboxes]
    if len(set(addresses)) != len(addresses):
        problems.append("channels.email.mailboxes: an address is configured twice")
    if problems:
        raise ConfigError(path, problems)
    return channel


def create_app(settings: EmailSettings) -> FastAPI:
    channel = load_channel(settings)
    adapter = ChannelAdapter("email", settings)
    store = AttachmentStore(settings.email_attachment_dir)
    sent = SentRecord(settings.email_state_dir)
    # The IMAP and SMTP libraries log protocol lines (mail content) at DEBUG.
    for noisy in ("aioimaplib", "aiosmtplib", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def send(contact: ContactMessage) -> str:
        mailbox = channel.mailbox(contact.entry_point)
        if mailbox is None:
            raise PermanentFailure("no mailbox is configured for this entry point")
        try:
            message = compose_reply(contact, mailbox)
        except CannotCompose as exc:
            raise PermanentFailure(str(exc)) from exc
        return await deliver(contact.id, message, mailbox)

    sending: dict[uuid.UUID, asyncio.Lock] = {}

    async def deliver(key: uuid.UUID, message: EmailMessage, mailbox: MailboxConfig) -> str:
        """Send once: a redelivered answer (even one in flight at the same time) is not resent."""
        message_id = str(message["Message-ID"]).strip("<>")
        lock = sending.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if sent.message_id(key) is not None:
                    log.info("already sent; not sending again", contact_id=str(key))
                    return message_id
                await send_mail(
                    message, mailbox, mailbox.smtp_password(), timeout=settings.email_smtp_timeout
                )
                await asyncio.to_thread(sent.record, key, message_id)
        finally:
            if not lock.locked():
                sending.pop(key, None)
        log.info("mail sent", contact_id=str(key))
        return message_id

    if channel.outbound:
        adapter.on_outbound(send)

    async def case_ref_of(contact_id: uuid.UUID) -> str | None:
        if settings.dossier_api_token is None or settings.email_ack_wait == 0:
            return None
        url = f"{str(settings.dossier_url).rstrip('/')}/api/v1/contacts/{contact_id}"
        headers = {"Authorization": f"Bearer {settings.dossier_api_token.get_secret_value()}"}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.email_ack_wait
        async with httpx.AsyncClient(timeout=3.0, headers=headers) as client:
            while loop.time() < deadline:
                with suppress(httpx.HTTPError):
                    response = await client.get(url)
                    if response.status_code == 200:
                        return str(response.json()["case_ref"])
                await asyncio.sleep(0.2)
        return None

    acknowledging: set[asyncio.Task[None]] = set()

    async def acknowledge(mailbox: MailboxConfig, mail: ParsedMail) -> None:
        """Acknowledge in the background: waiting for the case ref must not hold up intake."""
        if not mailbox.acknowledgement.enabled or mailbox.smtp is None:
            return
        task = asyncio.create_task(send_acknowledgement(mailbox, mail.contact))
        acknowledging.add(task)
        task.add_done_callback(acknowledging.discard)

    async def send_acknowledgement(mailbox: MailboxConfig, contact: ContactMessage) -> None:
        # Only the dossier's word: a [K-…] in the subject is typed by the sender, may be
        # someone else's case, and echoing it would thread their replies to it.
        case_ref = await case_ref_of(contact.id)
        try:
            message = compose_acknowledgement(contact, mailbox, case_ref)
            await deliver(uuid.uuid5(contact.id, "acknowledgement"), message, mailbox)
        except (CannotCompose, PermanentFailure) as exc:
            log.info("no acknowledgement sent", contact_id=str(contact.id), reason=str(exc))
        except Exception as exc:  # an acknowledgement is a courtesy, never worth a lost mail
            log.warning("acknowledgement failed", contact_id=str(contact.id), reason=str(exc))

    options = IntakeOptions(
        batch_size=settings.email_batch_size,
        poll_interval=settings.email_poll_interval,
        reconnect_max=settings.email_reconnect_max,
        imap_timeout=settings.email_imap_timeout,
        limits=Limits(
            max_attachment_bytes=settings.email_max_attachment_bytes,
            max_attachments=settings.email_max_attachments,
            max_total_bytes=settings.email_max_total_bytes,
        ),
        crash_after_publish=settings.email_crash_after_publish,
    )
    intakes = [
        MailboxIntake(
            mailbox,
            ImapMailbox(mailbox, mailbox.imap_password(), settings.email_imap_timeout),
            adapter,
            store,
            options,
            acknowledge=acknowledge if mailbox.acknowledgement.enabled else None,
        )
        for mailbox in channel.mailboxes
    ]

    @asynccontextmanager
    async def mailboxes(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(intake.run()) for intake in intakes]
        try:
            yield
        finally:
            for task in [*tasks, *acknowledging]:
                task.cancel()
            await asyncio.gather(*tasks, *acknowledging, return_exceptions=True)

    async def mailboxes_connected() -> bool:
        return all(intake.connected for intake in intakes)

    return adapter.app(checks={"imap": mailboxes_connected}, lifespan=mailboxes)
