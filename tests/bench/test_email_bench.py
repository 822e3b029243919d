"""Benchmark: the e-mail adapter's ingest rate beside a raw aioimaplib UID FETCH + parse.

Both run in the same test against the same Dovecot and the same N mails. The raw side
fetches in UID batches and parses, and does nothing else; the adapter side is the real
intake: UID batch, parse, publish with confirms, MOVE to the processed folder. Prints
mails per second; asserts nothing about speed. N is small by default; set
KANAAL_BENCH_EMAIL_N (e.g. 2000) and run `uv run pytest tests/bench/test_email_bench.py -s`.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aioimaplib import aioimaplib
from pydantic import SecretStr

from kanaal.common import topology
from kanaal.common.adapter import ChannelAdapter
from kanaal.common.config import load_topology
from kanaal.common.settings import ServiceSettings
from kanaal.common.testing import RabbitVhost
from kanaal.common.testing_mail import DovecotServer
from kanaal.email.config import MailboxConfig
from kanaal.email.imap import ImapMailbox, parse_fetch, uid_set
from kanaal.email.intake import IntakeOptions, MailboxIntake
from kanaal.email.parse import parse_mail
from kanaal.email.store import AttachmentStore

N = int(os.environ.get("KANAAL_BENCH_EMAIL_N", "200"))
BATCH = 50
REPO = Path(__file__).resolve().parents[2]
USER = "bench@gemeente.example"


def mails(prefix: str) -> list[bytes]:
    body = "Beste gemeente, de container in onze straat is al twee weken niet geleegd. " * 20
    return [
        (
            f"From: Inwoner {i} <inwoner{i}@example.org>\r\nTo: {USER}\r\n"
            f"Subject: Afval {i}\r\nMessage-ID: <{prefix}-{i}@example.org>\r\n"
            f"Date: Mon, 16 Nov 2026 10:00:00 +0100\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
        ).encode()
        for i in range(N)
    ]


def report(name: str, seconds: float, capsys: pytest.CaptureFixture[str]) -> float:
    rate = N / seconds
    with capsys.disabled():
        print(f"\n  {name:<58} {rate:>8.0f} mails/s  ({seconds:.2f}s for {N})")
    return rate


@pytest.mark.bench
async def test_bench_adapter_ingest_against_raw_uid_fetch_and_parse(
    dovecot: DovecotServer,
    rabbit_vhost: RabbitVhost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dovecot.add_user(USER, "geheim")
    mailbox = MailboxConfig.model_validate(
        {
            "address": USER,
            "imap": {
                "host": dovecot.host,
                "port": dovecot.port,
                "user": USER,
                "password_env": "KANAAL_BENCH_PASSWORD",
                "tls": False,
            },
            "subject": "afval",
        }
    )
    received_at = datetime.now(UTC)
    store = AttachmentStore(tmp_path / "attachments")

    # Raw: UID SEARCH, UID FETCH in batches of BATCH, parse each mail; nothing is moved.
    dovecot.append(USER, *mails("raw"), folder="Raw")
    client = aioimaplib.IMAP4(dovecot.host, dovecot.port, timeout=60)
    await client.wait_hello_from_server()
    await client.login(USER, "geheim")
    await client.select("Raw")
    start = time.perf_counter()
    search = await client.uid_search("ALL", charset=None)
    uids = [int(u) for u in search.lines[0].split()]
    parsed = 0
    for first in range(0, len(uids), BATCH):
        batch = uids[first : first + BATCH]
        response = await client.uid("fetch", uid_set(batch), "(UID BODY.PEEK[])")
        for mail in parse_fetch(response.lines):
            parse_mail(mail.raw, mailbox, received_at=received_at, attachment_uri=store.uri)
            parsed += 1
    raw_rate = report("raw aioimaplib UID FETCH + parse", time.perf_counter() - start, capsys)
    assert parsed == N
    await client.logout()

    # The adapter: UID batch, parse, publish with confirms, MOVE to the processed folder.
    settings = ServiceSettings(amqp_url=rabbit_vhost.url)  # type: ignore[arg-type]
    await topology.apply(rabbit_vhost.url, load_topology(REPO / "deploy" / "config"))
    adapter = ChannelAdapter("email", settings)
    await adapter.broker.connect()
    dovecot.append(USER, *mails("adapter"))
    imap = ImapMailbox(mailbox, SecretStr("geheim"), timeout=60)
    intake = MailboxIntake(mailbox, imap, adapter, store, IntakeOptions(batch_size=BATCH))
    try:
        await imap.connect()
        start = time.perf_counter()
        total = 0
        while (count := await intake.drain_once()) > 0:
            total += count
        adapter_rate = report(
            "adapter: fetch, parse, publish+confirm, MOVE", time.perf_counter() - start, capsys
        )
    finally:
        await imap.close()
        await adapter.broker.stop()
    assert total == N
    assert await asyncio.to_thread(dovecot.messages, USER, "INBOX") == []
    with capsys.disabled():
        print(f"  adapter / raw: {adapter_rate / raw_rate:.2f} (target >= 0.5)")
