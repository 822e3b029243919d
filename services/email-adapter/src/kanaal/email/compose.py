"""An outbound contact to the mail that answers it: pure, deterministic, injection-proof.

The same outbound contact always gives the same mail (Message-ID and Date come from the
contact), so a retry after a crash sends an identical mail the receiver can recognise.
Every header value comes from data and is refused when it carries CR, LF or NUL.
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Final

from kanaal.common.contract import ContactMessage
from kanaal.email.config import MailboxConfig
from kanaal.email.message_ids import acknowledgement_message_id, outbound_message_id

_FORBIDDEN: Final = re.compile(r"[\r\n\x00]")
_MSG_ID: Final = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")


class CannotCompose(Exception):
    """The outbound contact can never become a mail (no address, an injection attempt)."""


def _header(name: str, value: str) -> str:
    if _FORBIDDEN.search(value):
        raise CannotCompose(f"the {name} header would contain a line break or NUL: refused")
    return value


def _subject(base: str, case_ref: str | None) -> str:
    base = " ".join(_header("Subject", base).split())
    if case_ref and f"[{case_ref}]" not in base:
        return f"{base} [{case_ref}]"
    return base


def _domain(mailbox: MailboxConfig) -> str:
    return str(mailbox.address).rsplit("@", 1)[1].lower()


def _address(value: str, name: str, display_name: str | None = None) -> Address:
    _header(name, value)
    if display_name is not None:
        _header(name, display_name)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise CannotCompose(f"the {name} address is not an e-mail address")
    try:
        return Address(display_name=display_name or "", username=local, domain=domain)
    except (ValueError, IndexError) as exc:
        raise CannotCompose(f"the {name} address is not usable") from exc


def compose_reply(contact: ContactMessage, mailbox: MailboxConfig) -> EmailMessage:
    """The mail for an outbound contact: From the entry point, threaded, case ref in subject."""
    if contact.party.email is None:
        raise CannotCompose("the outbound contact has no e-mail address to send to")
    base = contact.channel_data.get("subject_line")
    subject = str(base) if isinstance(base, str) and base.strip() else mailbox.reply_subject
    if contact.in_reply_to and not subject.lower().startswith("re:") and base:
        subject = f"Re: {subject}"
    message = _message(
        mailbox,
        to=contact.party.email,
        to_name=contact.party.name,
        subject=_subject(subject, contact.case_ref),
        message_id=outbound_message_id(contact.id, contact.case_ref, _domain(mailbox)),
        text=contact.text,
        occurred_at=format_datetime(contact.occurred_at),
    )
    if contact.in_reply_to:
        if not _MSG_ID.match(contact.in_reply_to):
            raise CannotCompose("in_reply_to is not a Message-ID: refused as a header")
        message["In-Reply-To"] = f"<{contact.in_reply_to}>"
        message["References"] = f"<{contact.in_reply_to}>"
    return message


def compose_acknowledgement(
    contact: ContactMessage, mailbox: MailboxConfig, case_ref: str | None
) -> EmailMessage:
    """The ontvangstbevestiging for an inbound contact: automatic, so marked as such."""
    if contact.party.email is None:
        raise CannotCompose("the contact has no e-mail address to acknowledge")
    message = _message(
        mailbox,
        to=contact.party.email,
        to_name=None,
        subject=_subject(mailbox.acknowledgement.subject, case_ref),
        message_id=acknowledgement_message_id(contact.id, case_ref, _domain(mailbox)),
        text=mailbox.acknowledgement.text,
        occurred_at=format_datetime(contact.received_at),
    )
    # RFC 3834: an automatic answer says so, and asks other robots not to answer it.
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    if _MSG_ID.match(contact.source_ref):
        message["In-Reply-To"] = f"<{contact.source_ref}>"
        message["References"] = f"<{contact.source_ref}>"
    return message


def _message(
    mailbox: MailboxConfig,
    *,
    to: str,
    to_name: str | None,
    subject: str,
    message_id: str,
    text: str,
    occurred_at: str,
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = _address(str(mailbox.address), "From", mailbox.display_name)
    message["To"] = _address(to, "To", to_name)
    message["Subject"] = _header("Subject", subject)
    message["Message-ID"] = f"<{_header('Message-ID', message_id)}>"
    message["Date"] = occurred_at
    message["X-Loop"] = str(mailbox.address).lower()
    message.set_content(text or " ", charset="utf-8")
    return message
