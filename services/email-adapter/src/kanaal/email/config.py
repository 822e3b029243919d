"""The e-mail channel's part of channels.yaml: the mailboxes (entry points) and their defaults.

Pure data, validated at start; passwords are read from the environment variable each
mailbox names, never from the file.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    FilePath,
    SecretStr,
    StringConstraints,
    model_validator,
)

from kanaal.common.contract import Key

EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")]
FolderName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n\"]+$")
]


class ImapConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(993, ge=1, le=65535)
    user: str = Field(min_length=1)
    password_env: EnvName
    tls: bool = Field(True, description="IMAP over TLS (imaps); false only for tests/local")
    ca_file: FilePath | None = Field(
        None, description="PEM CA bundle to trust instead of the system's (an internal CA)"
    )
    folder: FolderName = "INBOX"

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> Self:
        if self.ca_file is not None and not self.tls:
            raise ValueError("ca_file is only used with tls: true")
        return self


class SmtpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    user: str | None = None
    password_env: EnvName | None = None
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (required, never silently plain), tls, or none"
    )
    ca_file: FilePath | None = Field(
        None, description="PEM CA bundle to trust instead of the system's (an internal CA)"
    )

    @model_validator(mode="after")
    def _ca_file_needs_tls(self) -> Self:
        if self.ca_file is not None and self.security == "none":
            raise ValueError("ca_file is only used with security: starttls or tls")
        return self


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A client context that always verifies the server: the system's CAs, or only `ca_file`'s.

    Raises :class:`ssl.SSLError` when `ca_file` holds no PEM certificate.
    """
    return ssl.create_default_context(cafile=ca_file)


class Acknowledgement(BaseModel):
    """An optional ontvangstbevestiging for normal (not automatic, not bulk) mail."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)] = (
        "Ontvangstbevestiging"
    )
    text: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] = (
        "Wij hebben uw bericht ontvangen en nemen het in behandeling."
    )


class MailboxConfig(BaseModel):
    """One mailbox: an entry point (ingang) such as info@ or parkeren@."""

    model_config = ConfigDict(extra="forbid")

    address: EmailStr = Field(description="the entry point; From of every answer")
    display_name: Annotated[str, StringConstraints(max_length=100)] | None = None
    imap: ImapConfig
    smtp: SmtpConfig | None = None
    subject: Key | None = Field(None, description="default onderwerp of its contacts")
    location: Key | None = None
    priority: int = Field(0, ge=0, le=9)
    processed_folder: FolderName = "Verwerkt"
    error_folder: FolderName = "Fouten"
    reply_subject: Annotated[str, StringConstraints(min_length=1, max_length=200)] = (
        "Uw bericht aan de gemeente"
    )
    acknowledgement: Acknowledgement = Field(default_factory=Acknowledgement)

    def imap_password(self, environ: Mapping[str, str] | None = None) -> SecretStr:
        return _secret(self.imap.password_env, environ)

    def smtp_password(self, environ: Mapping[str, str] | None = None) -> SecretStr | None:
        if self.smtp is None or self.smtp.password_env is None:
            return None
        return _secret(self.smtp.password_env, environ)


def _secret(name: str, environ: Mapping[str, str] | None) -> SecretStr:
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise MissingSecret(name)
    return SecretStr(value)


class MissingSecret(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"the environment variable {name} (a mailbox password) is not set")
        self.name = name


class EmailChannelConfig(BaseModel):
    """`channels.email` in channels.yaml."""

    model_config = ConfigDict(extra="forbid")

    outbound: bool = True
    mailboxes: list[MailboxConfig] = Field(default_factory=list)

    def mailbox(self, address: str) -> MailboxConfig | None:
        wanted = address.strip().lower()
        return next((m for m in self.mailboxes if m.address.lower() == wanted), None)
