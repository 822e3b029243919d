"""Our own Message-IDs: made from the outbound contact, recognised again in replies and loops.

`<kanaal.K-2026-000042.<contact uuid>@<mailbox domain>>`: the same outbound contact always
gets the same Message-ID (a retry after a crash sends an identical mail), and a reply
that quotes it in `In-Reply-To`/`References` leads back to the case even when the
customer's mail program dropped the `[K-...]` from the subject.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "kanaal"
_OURS = re.compile(
    rf"^{PREFIX}\.(?:ack\.)?(?:(?P<case>K-\d{{4}}-\d{{6}})|none)\.(?P<id>[0-9a-f-]{{36}})@(?P<domain>[^@\s]+)$",
    re.IGNORECASE,
)
#: One msg-id (RFC 5322 section 3.6.4) in angle brackets, tolerant of what real mailers send.
MSG_ID = re.compile(r"<([^<>\s]{1,900})>")


@dataclass(frozen=True)
class OwnMessageId:
    contact_id: uuid.UUID
    case_ref: str | None
    domain: str


def outbound_message_id(contact_id: uuid.UUID, case_ref: str | None, domain: str) -> str:
    """The Message-ID (without angle brackets) of the mail for an outbound contact."""
    return f"{PREFIX}.{case_ref or 'none'}.{contact_id}@{domain.lower()}"


def acknowledgement_message_id(contact_id: uuid.UUID, case_ref: str | None, domain: str) -> str:
    """The Message-ID of the ontvangstbevestiging for an inbound contact."""
    return f"{PREFIX}.ack.{case_ref or 'none'}.{contact_id}@{domain.lower()}"


def own_message_id(value: str) -> OwnMessageId | None:
    """The outbound contact behind one of our Message-IDs, or None for anyone else's."""
    match = _OURS.match(value.strip().strip("<>"))
    if match is None:
        return None
    try:
        contact_id = uuid.UUID(match.group("id"))
    except ValueError:
        return None
    case = match.group("case")
    return OwnMessageId(contact_id, case.upper() if case else None, match.group("domain").lower())


def message_ids(header_value: str | None) -> list[str]:
    """Every msg-id in a header value (In-Reply-To, References), without angle brackets."""
    if not header_value:
        return []
    found = MSG_ID.findall(header_value)
    if not found and "@" in header_value and " " not in header_value.strip():
        found = [header_value.strip()]  # a bare id without brackets, as some mailers send
    return [f for f in found if "@" in f]
