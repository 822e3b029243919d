"""The e-mail adapter as operators run it: its own process, a config dir, real peers."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kanaal.common.testing import RabbitVhost, RunningService, free_port, start_service
from kanaal.common.testing_mail import DovecotServer, SmtpSink

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

    def start(self, name: str = "email", **extra: str) -> RunningService:
        port = free_port()
        env = self.service_env(KANAAL_EMAIL_PORT=str(port), **extra)
        service = start_service(name, "kanaal.email", port, env, self.root)
        self.started.append(service)
        return service

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
