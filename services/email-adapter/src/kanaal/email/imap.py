"""One IMAP connection to one mailbox: it only moves bytes (aioimaplib).

Fetch a batch of UIDs with `BODY.PEEK[]` (the mail stays unseen until we move it),
move UIDs to a folder, and wait for news with IDLE, bounded by the poll interval so a
silent IDLE or a server without IDLE still gets polled.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import Any, Final

from aioimaplib import aioimaplib
from pydantic import SecretStr

from kanaal.email.config import MailboxConfig, tls_context

_FETCH_START: Final = re.compile(rb"^\d+ FETCH \(")
_UID: Final = re.compile(rb"UID (\d+)")
_LITERAL: Final = re.compile(rb"\{(\d+)\}$")


class ImapError(Exception):
    """The server refused a command or the connection broke: reconnect and try again."""


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes


def quote(folder: str) -> str:
    """An IMAP quoted string (the config refuses quotes and line breaks in folder names)."""
    return '"' + folder.replace("\\", "\\\\") + '"'


def uid_set(uids: list[int]) -> str:
    return ",".join(str(u) for u in sorted(uids))


def parse_fetch(lines: list[Any]) -> list[FetchedMail]:
    """Group a UID FETCH response: a `n FETCH (UID u BODY[] {size}` line, then the literal.

    The UID may also come after the literal (`... BODY[] {size}`, literal, ` UID u)`).
    """
    mails: list[FetchedMail] = []
    pending_uid: int | None = None
    literal: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):
            literal = bytes(line)
            continue
        if _FETCH_START.match(line):
            if literal is not None and pending_uid is not None:
                mails.append(FetchedMail(pending_uid, literal))
            found = _UID.search(line)
            pending_uid = int(found.group(1)) if found else None
            literal = None
            continue
        if pending_uid is None and literal is not None:
            found = _UID.search(line)
            if found:
                pending_uid = int(found.group(1))
        if literal is not None and pending_uid is not None:
            mails.append(FetchedMail(pending_uid, literal))
            pending_uid, literal = None, None
    if literal is not None and pending_uid is not None:
        mails.append(FetchedMail(pending_uid, literal))
    return mails


class ImapMailbox:
    """A logged-in, selected IMAP connection; every failure raises :class:`ImapError`."""

    def __init__(self, mailbox: MailboxConfig, password: SecretStr, timeout: float) -> None:
        self.mailbox = mailbox
        self._password = password
        self._timeout = timeout
        self._client: aioimaplib.IMAP4 | None = None
        self._lost = asyncio.Event()

    async def connect(self) -> None:
        imap = self.mailbox.imap
        self._lost = asyncio.Event()

        def lost(_: Exception | None) -> None:
            self._lost.set()

        try:
            if imap.tls:
                client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                    imap.host,
                    imap.port,
                    timeout=self._timeout,
                    # Verified against the system's CAs or the mailbox's ca_file, never off.
                    ssl_context=tls_context(imap.ca_file),
                )
                # IMAP4_SSL passes no connection-lost callback (LIBRARY-NOTES): add ours.
                client.protocol.conn_lost_cb = lost
            else:
                client = aioimaplib.IMAP4(
                    imap.host, imap.port, timeout=self._timeout, conn_lost_cb=lost
                )
            self._client = client
            await client.wait_hello_from_server()
            await self._ok(client.login(imap.user, self._password.get_secret_value()), "LOGIN")
            # What the server offers can change with the login (RFC 3501, 6.2.3); aioimaplib
            # adds a LOGIN answer's list to the greeting's instead of replacing it. Ask
            # again, so MOVE, UIDPLUS and IDLE are used only when offered to this user.
            await client.protocol.capability()
            for folder in (self.mailbox.processed_folder, self.mailbox.error_folder):
                # NO [ALREADYEXISTS] is fine: we only need the folder to be there.
                await client.create(quote(folder))
            await self._ok(client.select(quote(imap.folder)), "SELECT")
        except ImapError:
            raise
        except ssl.SSLCertVerificationError as exc:
            raise ImapError(
                f"the server's TLS certificate is not trusted ({exc.verify_message}): "
                "if an internal CA signed it, name that CA's PEM file in imap.ca_file"
            ) from exc
        except ssl.SSLError as exc:
            raise ImapError(f"the TLS handshake failed ({exc.reason})") from exc
        except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"cannot connect: {type(exc).__name__}") from exc

    @property
    def client(self) -> aioimaplib.IMAP4:
        if self._client is None or self._lost.is_set():
            raise ImapError("not connected")
        return self._client

    async def _ok(self, command: Any, name: str) -> Any:
        try:
            response = await command
        except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"{name} failed: {type(exc).__name__}") from exc
        if response.result != "OK":
            # The server's text, not ours: it names the problem, never the mail's content.
            detail = b" ".join(line for line in response.lines if isinstance(line, bytes))
            raise ImapError(f"{name} refused: {detail[:200].decode(errors='replace')}")
        return response

    async def pending_uids(self, limit: int) -> list[int]:
        """The UIDs still in the watched folder, oldest first, at most `limit`."""
        response = await self._ok(self.client.uid_search("ALL", charset=None), "UID SEARCH")
        uids: list[int] = []
        # aioimaplib strips the `* SEARCH` prefix; the last line is the tagged completion.
        for line in response.lines[:-1]:
            words = line.split() if isinstance(line, bytes) else []
            if words and words[0].upper() == b"SEARCH":
                words = words[1:]
            if all(word.isdigit() for word in words):
                uids.extend(int(word) for word in words)
        return sorted(uids)[:limit]

    async def fetch(self, uids: list[int]) -> list[FetchedMail]:
        if not uids:
            return []
        response = await self._ok(
            self.client.uid("fetch", uid_set(uids), "(UID BODY.PEEK[])"), "UID FETCH"
        )
        wanted = set(uids)
        # `n:*` style answers can include a message we did not ask for (RFC 3501).
        return [m for m in parse_fetch(response.lines) if m.uid in wanted]

    @property
    def moves_atomically(self) -> bool:
        """The server has MOVE (RFC 6851); else a move is COPY, STORE \\Deleted and EXPUNGE."""
        return bool(self.client.has_capability("MOVE"))

    async def move(self, uids: list[int], folder: str) -> None:
        if not uids:
            return
        client = self.client
        if self.moves_atomically:
            await self._ok(client.uid("move", uid_set(uids), quote(folder)), "UID MOVE")
            return
        await self._ok(client.uid("copy", uid_set(uids), quote(folder)), "UID COPY")
        await self._ok(client.uid("store", uid_set(uids), "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
        if client.has_capability("UIDPLUS"):
            await self._ok(client.uid("expunge", uid_set(uids)), "UID EXPUNGE")
        else:
            await self._ok(client.expunge(), "EXPUNGE")

    @property
    def pushes_news(self) -> bool:
        """The server has IDLE (RFC 2177) and announces new mail; else we can only poll."""
        return bool(self.client.has_capability("IDLE"))

    async def wait_for_news(self, poll_interval: float) -> None:
        """Return when the server announces new mail, or after `poll_interval` at the latest."""
        client = self.client
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            if not self.pushes_news:
                # Never IDLE unasked: servers that leave it out may still accept it, or not.
                await asyncio.wait({lost}, timeout=poll_interval)
            else:
                await self._idle(client, lost, poll_interval)
        finally:
            lost.cancel()
        if self._lost.is_set():
            raise ImapError("the server closed the connection")

    async def _idle(
        self, client: aioimaplib.IMAP4, lost: asyncio.Future[Any], poll_interval: float
    ) -> None:
        try:
            idle = await client.idle_start(timeout=poll_interval)
        except (OSError, TimeoutError, aioimaplib.AioImapException) as exc:
            raise ImapError(f"IDLE failed: {type(exc).__name__}") from exc
        try:
            while True:
                push = asyncio.ensure_future(client.wait_server_push(timeout=poll_interval + 5))
                done, _ = await asyncio.wait({push, lost}, return_when=asyncio.FIRST_COMPLETED)
                if push not in done:
                    push.cancel()
                    return
                try:
                    lines = push.result()
                except TimeoutError:
                    return  # a silent IDLE: poll anyway
                if lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    return
                if any(isinstance(x, bytes) and x.endswith(b"EXISTS") for x in lines):
                    return
        finally:
            if not self._lost.is_set() and client.has_pending_idle():
                client.idle_done()
                try:
                    await asyncio.wait_for(idle, self._timeout)
                except (TimeoutError, aioimaplib.AioImapException) as exc:
                    raise ImapError("IDLE did not end") from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if not self._lost.is_set():
                await asyncio.wait_for(client.logout(), 5)
        except (OSError, TimeoutError, aioimaplib.AioImapException):
            pass
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()
