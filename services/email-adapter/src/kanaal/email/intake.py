"""Keeps one mailbox drained: fetch a UID batch, publish, and only then move the mail.

The order is what makes it safe: a mail leaves the watched folder only after the broker
confirmed its contact (or its rejection). A crash anywhere before the move leaves the
mail where it was, so the next pass publishes it again under the same contact id, and
the dossier stores it once. A lost connection is retried with backoff; `connected` is
what readiness reports.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from prometheus_client import Counter, Gauge

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.logging import fingerprint, get_logger
from kanaal.email.config import MailboxConfig
from kanaal.email.imap import FetchedMail, ImapError, ImapMailbox
from kanaal.email.parse import Limits, ParsedMail, Unparsable, parse_mail
from kanaal.email.store import AttachmentStore

log = get_logger(__name__)

MAILS = Counter(
    "kanaal_email_mails_total",
    "Mails taken from a mailbox, by entry point and outcome (received, rejected)",
    ["entry_point", "outcome"],
)
CONNECTED = Gauge(
    "kanaal_email_mailbox_connected", "1 while the mailbox's IMAP connection is up", ["entry_point"]
)
#: Exit code of the fault-injection crash (KANAAL_EMAIL_CRASH_AFTER_PUBLISH), for tests.
CRASH_EXIT_CODE: Final = 70


@dataclass(frozen=True)
class IntakeOptions:
    batch_size: int = 50
    poll_interval: float = 60.0
    reconnect_max: float = 60.0
    imap_timeout: float = 30.0
    limits: Limits = field(default_factory=Limits)
    crash_after_publish: bool = False


#: Called with every contact published from a normal (not automatic) mail, after the move.
Acknowledge = Callable[[MailboxConfig, ParsedMail], Awaitable[None]]


class MailboxIntake:
    def __init__(
        self,
        mailbox: MailboxConfig,
        imap: ImapMailbox,
        adapter: ChannelAdapter,
        store: AttachmentStore,
        options: IntakeOptions,
        acknowledge: Acknowledge | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.entry_point = str(mailbox.address).lower()
        self.imap = imap
        self.adapter = adapter
        self.store = store
        self.options = options
        self.acknowledge = acknowledge
        self.connected = False
        #: How logs name the mailbox: its address is masked like any other e-mail address.
        self.log_id = f"mailbox-{fingerprint(self.entry_point)}"

    async def run(self) -> None:
        """Forever: connect, drain, wait for news; on any IMAP failure back off and reconnect."""
        failures = 0
        while True:
            try:
                await self.imap.connect()
                self._set_connected(True)
                failures = 0
                log.info(
                    "mailbox connected",
                    mailbox=self.log_id,
                    tls=self.mailbox.imap.tls,
                    move="UID MOVE" if self.imap.moves_atomically else "COPY, STORE, EXPUNGE",
                    news=self._how_news_arrives(),
                )
                while True:
                    while await self.drain_once() == self.options.batch_size:
                        pass
                    await self.imap.wait_for_news(self.options.poll_interval)
            except ImapError as exc:
                failures += 1
                self._set_connected(False)
                delay = min(self.options.reconnect_max, 0.5 * 2 ** min(failures, 10))
                delay *= random.uniform(0.8, 1.2)
                log.warning(
                    "mailbox unreachable; reconnecting",
                    mailbox=self.log_id,
                    reason=str(exc),
                    retry_in=round(delay, 1),
                )
                await self.imap.close()
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self._set_connected(False)
                await self.imap.close()
                raise

    def _how_news_arrives(self) -> str:
        interval = f"{self.options.poll_interval:g}s"
        if self.imap.pushes_news:
            return f"IDLE, and a poll after {interval} of silence"
        return f"polling every {interval} (the server has no IDLE)"

    def _set_connected(self, value: bool) -> None:
        self.connected = value
        CONNECTED.labels(self.entry_point).set(1 if value else 0)

    async def drain_once(self) -> int:
        """Process one UID batch; returns how many mails it held."""
        uids = await self.imap.pending_uids(self.options.batch_size)
        if not uids:
            return 0
        fetched = await self.imap.fetch(uids)
        received_at = datetime.now(UTC)
        parsed: list[tuple[int, ParsedMail]] = []
        refused: list[tuple[int, Unparsable]] = []
        for mail in fetched:
            outcome = self._parse(mail, received_at)
            if isinstance(outcome, Unparsable):
                refused.append((mail.uid, outcome))
            else:
                parsed.append((mail.uid, outcome))
        if any(p.attachments for _, p in parsed):
            await asyncio.to_thread(self.store.keep, [a for _, p in parsed for a in p.attachments])
        # Confirms in flight together: one batch is one round of broker confirms.
        await asyncio.gather(*(self.adapter.receive(p.contact) for _, p in parsed))
        for uid, problem in refused:
            await self.adapter.reject(
                entry_point=self.entry_point,
                reason=problem.reason,
                source_ref=problem.source_ref,
                kept_at=f"imap://{self.entry_point}/{self.mailbox.error_folder};UID={uid}",
                channel_data={"uid": uid, "folder": self.mailbox.error_folder},
            )
        if self.options.crash_after_publish:
            log.warning("fault injection: exiting after publish, before the move")
            os._exit(CRASH_EXIT_CODE)
        await self.imap.move([uid for uid, _ in parsed], self.mailbox.processed_folder)
        await self.imap.move([uid for uid, _ in refused], self.mailbox.error_folder)
        MAILS.labels(self.entry_point, "received").inc(len(parsed))
        MAILS.labels(self.entry_point, "rejected").inc(len(refused))
        log.info(
            "mail batch processed",
            mailbox=self.log_id,
            received=len(parsed),
            rejected=len(refused),
        )
        if self.acknowledge is not None:
            for _, done in parsed:
                if not done.automatic:
                    await self.acknowledge(self.mailbox, done)
        return len(uids)

    def _parse(self, mail: FetchedMail, received_at: datetime) -> ParsedMail | Unparsable:
        try:
            return parse_mail(
                mail.raw,
                self.mailbox,
                received_at=received_at,
                attachment_uri=self.store.uri,
                limits=self.options.limits,
            )
        except Unparsable as problem:
            return problem
