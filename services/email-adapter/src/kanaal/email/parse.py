"""Raw mail bytes to a contact: the e-mail adapter's functional core.

Pure: bytes and the mailbox's config in, a :class:`ParsedMail` out (the contact plus the
attachment bytes the shell stores), or :class:`Unparsable`/:class:`OverLimit` with a
reason an operator can act on. It never raises anything else, whatever the bytes are:
real-world mail (8-bit headers, wrong charsets, broken MIME) degrades, it does not crash.
"""

from __future__ import annotations

import hashlib
import html
import mimetypes
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Final

import nh3
from pydantic import ValidationError

from kanaal.common.contract import (
    MAX_ATTACHMENTS,
    MAX_TEXT_CHARS,
    Attachment,
    ChannelDataValue,
    ContactMessage,
    Party,
)
from kanaal.email.config import MailboxConfig
from kanaal.email.message_ids import MSG_ID, message_ids, own_message_id

CHANNEL: Final = "email"
CASE_REF_IN_SUBJECT: Final = re.compile(r"\[\s*(K-\d{4}-\d{6})\s*\]", re.IGNORECASE)
SUBJECT_LINE_CHARS: Final = 200
TRUNCATED_NOTE: Final = "\n\n[... de tekst is ingekort]"
_BOUNCE_SENDERS: Final = frozenset({"mailer-daemon", "postmaster", "mail-daemon"})
_BULK_PRECEDENCE: Final = frozenset({"bulk", "list", "junk", "auto_reply"})
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_TYPE: Final = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_BLOCK_END: Final = re.compile(r"</(p|div|li|tr|h[1-6]|blockquote|pre|table|ul|ol)\s*>", re.I)
_LINE_BREAK: Final = re.compile(r"<br\s*/?>", re.I)
_TAG: Final = re.compile(r"<[^>]*>")
_KEEP_TAGS: Final = {
    "p",
    "br",
    "div",
    "li",
    "tr",
    "td",
    "th",
    "ul",
    "ol",
    "table",
    "blockquote",
} | {"pre", "h1", "h2", "h3", "h4", "h5", "h6"}
#: Charset labels that mean "we don't know": try UTF-8, then Windows-1252.
_UNKNOWN_CHARSETS: Final = frozenset({"unknown-8bit", "x-unknown", "unknown", "default", ""})


class Unparsable(Exception):
    """The bytes cannot become a contact; `reason` says why, without personal data."""

    def __init__(self, reason: str, source_ref: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.source_ref = source_ref


class OverLimit(Unparsable):
    """The mail breaks an attachment limit; it is kept in the error folder."""


@dataclass(frozen=True)
class Limits:
    max_attachment_bytes: int = 10_000_000
    max_attachments: int = 20
    max_total_bytes: int = 25_000_000


@dataclass(frozen=True)
class AttachmentPart:
    filename: str
    content_type: str
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ParsedMail:
    contact: ContactMessage
    attachments: list[AttachmentPart]

    @property
    def automatic(self) -> bool:
        """An auto-reply, bounce, bulk mail or our own: never answer it automatically."""
        return bool(self.contact.channel_data.get("automatic"))


#: `attachment_uri(sha256)`: where the attachment store keeps the bytes with this hash.
AttachmentUri = Callable[[str], str]


def parse_mail(
    raw: bytes,
    mailbox: MailboxConfig,
    *,
    received_at: datetime,
    attachment_uri: AttachmentUri,
    limits: Limits = Limits(),
) -> ParsedMail:
    """Turn one raw mail into a contact for `mailbox`, or raise Unparsable/OverLimit."""
    if not raw or not raw.strip():
        raise Unparsable("the mail is empty")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a safety net
        raise Unparsable(f"the mail cannot be parsed ({type(exc).__name__})") from exc
    headers = _Headers(message)
    if not headers.names:
        raise Unparsable("the mail has no headers")
    if not any(n in headers.names for n in ("from", "message-id", "date", "subject", "to")):
        raise Unparsable("the mail has none of From, To, Subject, Date or Message-ID")
    source_ref = _source_ref(headers.ids("message-id"), raw)
    try:
        return _to_parsed(
            message, headers, raw, source_ref, mailbox, received_at, attachment_uri, limits
        )
    except Unparsable:
        raise
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        raise Unparsable(
            f"the mail gives no valid contact ({', '.join(fields)})", source_ref
        ) from exc
    except Exception as exc:  # never crash the mailbox on one mail
        raise Unparsable(f"the mail cannot be read ({type(exc).__name__})", source_ref) from exc


def _to_parsed(
    message: EmailMessage,
    headers: _Headers,
    raw: bytes,
    source_ref: str,
    mailbox: MailboxConfig,
    received_at: datetime,
    attachment_uri: AttachmentUri,
    limits: Limits,
) -> ParsedMail:
    body_part, text = _body_text(message)
    attachments = list(_attachments(message, body_part))
    _check_limits(attachments, limits, source_ref)

    subject_line = _one_line(headers.get("subject") or "")
    party = _party(headers.get("from"))
    case_ref, in_reply_to = _thread(subject_line, headers)
    channel_data = _loop_and_bulk_facts(message, headers, source_ref, mailbox, party)
    if subject_line:
        channel_data["subject_line"] = subject_line[:SUBJECT_LINE_CHARS]
    if text is None:
        text = ""
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - len(TRUNCATED_NOTE)] + TRUNCATED_NOTE
        channel_data["text_truncated"] = True
    if body_part is not None and body_part.get_content_type() == "text/html":
        channel_data["text_from_html"] = True
    language = (headers.get("content-language") or "").strip().lower()[:2]

    contact = ContactMessage.new(
        channel=CHANNEL,
        entry_point=mailbox.address.lower(),
        source_ref=source_ref,
        received_at=received_at,
        occurred_at=_occurred_at(headers.get("date"), received_at),
        party=party,
        subject=mailbox.subject,
        location=mailbox.location,
        priority=mailbox.priority,
        text=text,
        language=language if re.fullmatch(r"[a-z]{2}", language) else "nl",
        case_ref=case_ref,
        in_reply_to=in_reply_to,
        confidential=(headers.get("sensitivity") or "").strip().lower()
        in {"private", "company-confidential"},
        attachments=[
            Attachment(
                filename=a.filename,
                content_type=a.content_type,
                size=len(a.data),
                sha256=a.sha256,
                uri=attachment_uri(a.sha256),
            )
            for a in attachments
        ],
        channel_data=channel_data,
    )
    return ParsedMail(contact, attachments)


class _Headers:
    """Header values as text, decoded gracefully: a header the modern parser chokes on
    (8-bit bytes, broken encoded words) is decoded from its raw form instead."""

    def __init__(self, message: Message) -> None:
        self._message = message
        self.names = {name.lower() for name in message}

    def get(self, name: str) -> str | None:
        if name not in self.names:
            return None
        try:
            value = self._message.get(name)
            text = None if value is None else str(value)
        except Exception:
            text = None
        if text is None or "\ufffd" in text or _has_surrogates(text):
            text = self._raw(name)
        return _CONTROL.sub("", text) if text is not None else None

    def ids(self, name: str) -> str | None:
        """A msg-id header as sent: the modern parser loses the `>` of a folded msg-id."""
        return self._raw(name) if name in self.names else None

    def all(self, name: str) -> list[str]:
        values: list[str] = []
        try:
            values = [str(v) for v in self._message.get_all(name, [])]
        except Exception:
            raw = self._raw(name)
            values = [raw] if raw else []
        return values

    def _raw(self, name: str) -> str | None:
        for key, value in self._message.raw_items():
            if key.lower() == name:
                return _decode_raw_header(str(value))
        return None


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _decode_raw_header(value: str) -> str:
    """An unparsed header value: 8-bit bytes as UTF-8 or Windows-1252, encoded words decoded."""
    data = value.encode("utf-8", "surrogateescape")
    text = _decode_bytes(data, None)
    try:
        return str(make_header(decode_header(text)))
    except Exception:
        return text


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _source_ref(message_id: str | None, raw: bytes) -> str:
    """The Message-ID without brackets; a content hash when it is missing or malformed."""
    if message_id:
        match = MSG_ID.search(message_id)
        if match and "@" in match.group(1):
            return match.group(1)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _occurred_at(value: str | None, received_at: datetime) -> datetime:
    if not value:
        return received_at
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return received_at
    if when is None:
        return received_at
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when.year < 1990 or when > received_at.replace(year=received_at.year + 1):
        return received_at  # a clock that is far off says nothing about when it was written
    return when


def _party(from_value: str | None) -> Party:
    """The sender as a Party; an address the contract refuses leaves only the name."""
    display_name, address = _first_address(from_value)
    name = _one_line(display_name)[:200] or None
    for candidate in (address or None, None):
        try:
            return Party(name=name, email=candidate)
        except ValidationError:
            continue
    return Party()


def _first_address(value: str | None) -> tuple[str, str]:
    if not value:
        return "", ""
    try:
        pairs = getaddresses([value])
    except Exception:
        return "", ""
    for name, address in pairs:
        if address and "@" in address:
            return name, address.strip()
    return (pairs[0][0], "") if pairs else ("", "")


def _thread(subject_line: str, headers: _Headers) -> tuple[str | None, str | None]:
    """case_ref from `[K-...]` in the subject or from our own Message-ID the mail answers;
    in_reply_to from In-Reply-To, else the last of References."""
    replied = message_ids(headers.ids("in-reply-to"))
    references = message_ids(headers.ids("references"))
    case_ref = None
    match = CASE_REF_IN_SUBJECT.search(subject_line)
    if match:
        case_ref = match.group(1).upper()
    else:
        for ref in [*replied, *reversed(references)]:
            own = own_message_id(ref)
            if own is not None and own.case_ref is not None:
                case_ref = own.case_ref
                break
    in_reply_to = replied[0] if replied else (references[-1] if references else None)
    return case_ref, in_reply_to


def _loop_and_bulk_facts(
    message: EmailMessage,
    headers: _Headers,
    source_ref: str,
    mailbox: MailboxConfig,
    party: Party,
) -> dict[str, ChannelDataValue]:
    """What tells an automatic or bulk mail apart, recorded so nothing answers it by itself."""
    facts: dict[str, ChannelDataValue] = {}
    auto_submitted = (headers.get("auto-submitted") or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        facts["auto_submitted"] = auto_submitted[:100]
    if "x-auto-response-suppress" in headers.names:
        facts["auto_response_suppress"] = (headers.get("x-auto-response-suppress") or "")[:100]
    if any(n in headers.names for n in ("x-autoreply", "x-autorespond", "x-autoresponder")):
        facts["auto_reply"] = True
    precedence = (headers.get("precedence") or "").strip().lower()
    if precedence:
        facts["precedence"] = precedence[:50]
    loops = [v.strip().lower() for v in headers.all("x-loop")]
    if loops:
        facts["x_loop"] = True
        if mailbox.address.lower() in loops:
            facts["loop"] = True
    if "list-unsubscribe" in headers.names or "list-id" in headers.names:
        facts["mailing_list"] = True
    sender = (party.email or "").lower()
    return_path = headers.get("return-path")
    if (
        sender.split("@")[0] in _BOUNCE_SENDERS
        or message.get_content_type() == "multipart/report"
        or (return_path is not None and return_path.strip() == "<>")
    ):
        facts["bounce"] = True
    if own_message_id(source_ref) is not None:
        facts["own_message"] = True
        facts["loop"] = True
    if sender and sender == mailbox.address.lower():
        facts["loop"] = True
    facts["automatic"] = bool(
        "auto_submitted" in facts
        or facts.get("auto_reply")
        or "auto_response_suppress" in facts
        or precedence in _BULK_PRECEDENCE
        or facts.get("x_loop")
        or facts.get("mailing_list")
        or facts.get("bounce")
        or facts.get("loop")
    )
    return facts


def _walk(part: Message) -> Iterator[Message]:
    """Every leaf part, not descending into attached mails (message/rfc822 stays one file)."""
    if part.is_multipart() and part.get_content_maintype() != "message":
        for sub in part.get_payload():
            if isinstance(sub, Message):
                yield from _walk(sub)
    else:
        yield part


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
    return disposition == "attachment" or part.get_content_maintype() not in {"text"}


def _body_text(message: EmailMessage) -> tuple[Message | None, str | None]:
    """The body: the first text/plain that is not an attachment, else the first text/html."""
    plain = html_part = None
    for part in _walk(message):
        if _is_attachment(part):
            continue
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = part
        elif kind == "text/html" and html_part is None:
            html_part = part
        elif plain is None and html_part is None and part.get_content_maintype() == "text":
            plain = part  # text/enriched, text/x-whatever: better than nothing
    if plain is not None:
        return plain, clean_text(_part_text(plain))
    if html_part is not None:
        return html_part, html_to_text(_part_text(html_part))
    return None, None


def _part_text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return _decode_bytes(data, part.get_content_charset())


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Declared charset if it decodes cleanly, else UTF-8, else Windows-1252 (never fails).

    ISO-8859-1 is read as its superset Windows-1252, as every browser does: mail that
    says latin-1 very often has curly quotes and euro signs in 0x80-0x9f.
    """
    label = (charset or "").strip().strip('"').lower()
    if label in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"}:
        label = "windows-1252" if label.startswith(("iso", "latin")) else label
    candidates = [] if label in _UNKNOWN_CHARSETS else [label]
    candidates += ["utf-8"]
    for candidate in candidates:
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("windows-1252", errors="replace")


def clean_text(text: str) -> str:
    """Plain text as we keep it: LF line ends, no control characters, trimmed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    return text.strip()


def html_to_text(markup: str) -> str:
    """Sanitise HTML with nh3 (scripts, styles, comments gone), then keep only its text."""
    cleaned = nh3.clean(markup, tags=_KEEP_TAGS, attributes={}, strip_comments=True)
    cleaned = _LINE_BREAK.sub("\n", cleaned)
    cleaned = _BLOCK_END.sub("\n", cleaned)
    cleaned = re.sub(r"<li\s*>", "- ", cleaned, flags=re.I)
    cleaned = re.sub(r"</t[dh]\s*>", " ", cleaned, flags=re.I)
    text = html.unescape(_TAG.sub("", cleaned)).replace("\xa0", " ")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return clean_text(re.sub(r"\n{3,}", "\n\n", "\n".join(lines)))


def _attachments(message: EmailMessage, body: Message | None) -> Iterator[AttachmentPart]:
    for number, part in enumerate(_walk(message), start=1):
        if part is body:
            continue
        kind = part.get_content_type()
        if not _is_attachment(part) and kind in {"text/plain", "text/html"}:
            continue  # the alternative form of the body
        data = _part_bytes(part)
        if not data and part.get_filename() is None:
            continue
        yield AttachmentPart(_filename(part, number, kind), _content_type(kind), data)


def _part_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload if isinstance(payload, list) else [payload]
        chunks = []
        for item in inner:
            if isinstance(item, Message):
                try:
                    chunks.append(item.as_bytes(policy=policy.compat32))
                except Exception:
                    chunks.append(item.as_string(policy=policy.compat32).encode("utf-8", "replace"))
        return b"".join(chunks)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: Message, number: int, kind: str) -> str:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name:
        name = _CONTROL.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    if not name:
        extension = (
            ".eml" if kind == "message/rfc822" else mimetypes.guess_extension(kind) or ".bin"
        )
        name = f"bijlage-{number}{extension}"
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 250 - len(ext)] + dot + ext) if dot and len(ext) < 10 else name[:255]
    return name


def _content_type(kind: str) -> str:
    return kind if _CONTENT_TYPE.match(kind) and len(kind) <= 127 else "application/octet-stream"


def _check_limits(attachments: list[AttachmentPart], limits: Limits, source_ref: str) -> None:
    most = min(limits.max_attachments, MAX_ATTACHMENTS)
    if len(attachments) > most:
        raise OverLimit(f"{len(attachments)} attachments; at most {most} are accepted", source_ref)
    for number, attachment in enumerate(attachments, start=1):
        if len(attachment.data) > limits.max_attachment_bytes:
            raise OverLimit(
                f"attachment {number} is {len(attachment.data)} bytes; "
                f"at most {limits.max_attachment_bytes} bytes are accepted",
                source_ref,
            )
    total = sum(len(a.data) for a in attachments)
    if total > limits.max_total_bytes:
        raise OverLimit(
            f"the attachments are {total} bytes together; "
            f"at most {limits.max_total_bytes} bytes are accepted",
            source_ref,
        )
