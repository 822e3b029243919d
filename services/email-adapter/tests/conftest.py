"""The e-mail adapter as operators run it: its own process, a config dir, real peers."""

from __future__ import annotations

import asyncio
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
import yaml

from kanaal.common.contract import ContactMessage, Direction, Party
from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service
from kanaal.common.testing_mail import DovecotServer, SmtpSink
from kanaal.common.topology import OUTBOUND

REPO = Path(__file__).resolve().parents[3]
MAILBOX = "info@gemeente.example"
PASSWORD_ENV = "KANAAL_TEST_IMAP_INFO_PASSWORD"


@dataclass
class EmailRig:
    """Dovecot, the SMTP sink, a vhost and a config dir; `start()` runs the adapter."""

    dovecot: DovecotServer
    smtp: SmtpSink
    vhost: RabbitVhost
    root: Path
    mailbox: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    started: list[RunningService] = field(default_factory=list)

    def write_config(self) -> Path:
        config = self.root / "config"
        config.mkdir(exist_ok=True)
        for name in ("routing.yaml", "agents.yaml"):
            shutil.copy(REPO / "deploy" / "config" / name, config / name)
        channels = {"channels": {"email": {"outbound": True, "mailboxes": [self.mailbox]}}}
        (config / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
        return config

    def service_env(self, **extra: str) -> dict[str, str]:
        return {
            "KANAAL_AMQP_URL": self.vhost.url,
            "KANAAL_CONFIG_DIR": str(self.write_config()),
            "KANAAL_EMAIL_ATTACHMENT_DIR": str(self.root / "attachments"),
            "KANAAL_EMAIL_STATE_DIR": str(self.root / "state"),
            "KANAAL_EMAIL_RECONNECT_MAX": "0.5",
            "KANAAL_EMAIL_POLL_INTERVAL": "5",
            "KANAAL_RETRY_DELAY": "0.2",
            "KANAAL_LOG_LEVEL": "DEBUG",
            PASSWORD_ENV: "geheim",
            **self.env,
            **extra,
        }

    def start(
        self, name: str = "email", *, wait_ready: bool = True, **extra: str
    ) -> RunningService:
        port = free_port()
        env = self.service_env(KANAAL_EMAIL_PORT=str(port), **extra)
        service = start_service(name, "kanaal.email", port, env, self.root, wait_ready=wait_ready)
        self.started.append(service)
        return service

    def use_imaps(self, ca_file: Path | None) -> None:
        """Read the mailbox over IMAPS (a test marked `dovecot(imaps=True)`), trusting `ca_file`."""
        assert self.dovecot.imaps_port is not None, "mark the test dovecot(imaps=True)"
        imap = {**self.mailbox["imap"], "port": self.dovecot.imaps_port, "tls": True}
        if ca_file is not None:
            imap["ca_file"] = str(ca_file)
        self.mailbox["imap"] = imap

    def append(self, *mails: bytes) -> None:
        self.dovecot.append(MAILBOX, *mails)

    def folder(self, name: str) -> list[bytes]:
        return self.dovecot.messages(MAILBOX, name)


@pytest.fixture
def rig(
    dovecot: DovecotServer, smtp_sink: SmtpSink, rabbit_vhost: RabbitVhost, tmp_path: Path
) -> Iterator[EmailRig]:
    dovecot.add_user(MAILBOX, "geheim")
    mailbox = {
        "address": MAILBOX,
        "display_name": "Gemeente Voorbeeld",
        "imap": {
            "host": dovecot.host,
            "port": dovecot.port,
            "user": MAILBOX,
            "password_env": PASSWORD_ENV,
            "tls": False,
        },
        "smtp": {"host": smtp_sink.host, "port": smtp_sink.port, "security": "none"},
        "subject": "parkeren",
        "location": "centrum",
        "processed_folder": "Verwerkt",
        "error_folder": "Fouten",
    }
    rig = EmailRig(dovecot, smtp_sink, rabbit_vhost, tmp_path, mailbox)
    try:
        yield rig
    finally:
        for service in rig.started:
            service.stop()


def mail(
    number: int | str,
    *,
    subject: str = "Mijn parkeervergunning",
    sender: str = "Fenna Zwartveld <fenna.zwartveld@example.org>",
    extra: str = "",
    body: str = "Mijn vergunning voor de Zuiderkade is verlopen.",
) -> bytes:
    text = (
        f"From: {sender}\r\nTo: {MAILBOX}\r\nSubject: {subject}\r\n"
        f"Message-ID: <m{number}@example.org>\r\nDate: Mon, 16 Nov 2026 10:00:00 +0100\r\n"
        f"{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    return text.encode()


MailFactory = Callable[..., bytes]


@pytest.fixture
def make_mail() -> MailFactory:
    return mail


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.1)


def readiness(url: str) -> int:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=3) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def outbound(
    text: str = "Uw vergunning is verlengd.", email: str = "fenna@example.org"
) -> ContactMessage:
    return ContactMessage.new(
        channel="email",
        direction=Direction.OUTBOUND,
        entry_point=MAILBOX,
        source_ref="reply-1",
        party=Party(name="Fenna Zwartveld", email=email),
        text=text,
        case_ref="K-2026-000042",
        in_reply_to="m1@example.org",
        channel_data={"subject_line": "Mijn parkeervergunning"},
    )


async def publish_outbound(rig: EmailRig, contact: ContactMessage, times: int = 1) -> None:
    connection = await rig.vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(OUTBOUND.name)
        for _ in range(times):
            await exchange.publish(
                aio_pika.Message(
                    contact.model_dump_json().encode(),
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(contact.id),
                    type="contact.outbound",
                ),
                routing_key="email",
            )
