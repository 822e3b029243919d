"""Handing a composed mail to the mailbox's SMTP server (aiosmtplib), failures classified.

A 5xx answer or a refused recipient can never succeed: :class:`PermanentFailure` (the
kit reports `contact.failed.email`). Anything else (4xx, a dropped connection, a server
that does not offer the STARTTLS the config requires) is temporary and raised as is,
so the kit hands the answer back and tries again.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from typing import Final

import aiosmtplib
from pydantic import SecretStr

from kanaal.common.adapter import PermanentFailure
from kanaal.email.config import MailboxConfig, tls_context

#: Authentication answers: a 5xx, but an operator's config error, not the recipient's.
_AUTH_CODES: Final = frozenset({530, 534, 535, 538})


class TemporaryFailure(Exception):
    """Sending may succeed later: the answer is retried."""


async def send_mail(
    message: EmailMessage,
    mailbox: MailboxConfig,
    password: SecretStr | None,
    *,
    timeout: float,
) -> None:
    smtp = mailbox.smtp
    if smtp is None:
        raise PermanentFailure("the mailbox has no SMTP settings: it cannot send")
    recipients = [a.addr_spec for a in message["To"].addresses]
    try:
        refused, _ = await aiosmtplib.send(
            message,
            sender=str(mailbox.address),
            recipients=recipients,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.user,
            password=password.get_secret_value() if password else None,
            use_tls=smtp.security == "tls",
            # True, never None: None would silently stay plaintext if STARTTLS is not offered.
            start_tls=smtp.security == "starttls",
            # Without a ca_file, aiosmtplib verifies against the system's CAs itself.
            tls_context=tls_context(smtp.ca_file) if smtp.ca_file else None,
            timeout=timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if codes and all(code >= 500 for code in codes):
            raise PermanentFailure(f"the recipient was refused ({codes[0]})") from exc
        raise TemporaryFailure(f"the recipient was deferred ({codes[:1]})") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code >= 500 and exc.code not in _AUTH_CODES:
            raise PermanentFailure(f"the SMTP server refused the mail ({exc.code})") from exc
        raise TemporaryFailure(f"the SMTP server answered {exc.code}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        untrusted = _unverified_certificate(exc)
        if untrusted is not None:
            raise TemporaryFailure(
                f"the SMTP server's TLS certificate is not trusted ({untrusted.verify_message}):"
                " if an internal CA signed it, name that CA's PEM file in smtp.ca_file"
            ) from exc
        raise TemporaryFailure(f"sending failed: {type(exc).__name__}") from exc
    if refused:
        codes = [r.code for r in refused.values()]
        raise PermanentFailure(f"the recipient was refused ({codes[0]})")


def _unverified_certificate(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate error behind `exc` (aiosmtplib wraps it when connecting with TLS)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__
    return None
