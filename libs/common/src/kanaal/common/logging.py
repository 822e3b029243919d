"""Structured JSON logs that never carry personal data in the clear.

Every record, ours and the libraries' (aio-pika, uvicorn, FastStream), passes the
same masking processor: fields that hold personal data are replaced whole, and
e-mail addresses, phone numbers and BSN-like numbers inside any string are masked.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

#: Keys whose values are personal data or message text: always replaced.
PERSONAL_KEYS: Final = frozenset(
    {
        "name",
        "email",
        "phone",
        "bsn",
        "rsin",
        "text",
        "body",
        "party",
        "identifiers",
        "address",
        "from",
        "to",
        "subject_line",
        "password",
        "token",
    }
)

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# A phone number: + or 0 followed by 8 to 14 digits with the usual separators, also the
# bracketed forms "(020) 123 4567" and "+31 (0)20 123 4567" (up to two separators in a row).
# Not after "<digit>:", so the seconds of a timestamp ("09:30:05.123456-05:00") stay readable.
_PHONE = re.compile(r"(?<![\w-])(?<!\d:)(?:\+|00|\(?0)\d(?:[\s().-]{0,2}\d){7,13}(?![\w-])")
_NINE_DIGITS = re.compile(r"(?<![\w-])\d{9}(?![\w-])")


def fingerprint(value: str) -> str:
    """A short stable hash, so that logs can correlate a value without showing it."""
    return hashlib.sha256(value.encode()).hexdigest()[:10]


def mask_text(value: str) -> str:
    """Mask e-mail addresses, phone numbers and BSN-like numbers inside free text."""
    value = _EMAIL.sub("<email>", value)
    value = _PHONE.sub("<phone>", value)
    return _NINE_DIGITS.sub("<number>", value)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: ("<masked>" if str(k) in PERSONAL_KEYS else _mask(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def mask_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace personal fields, scrub personal data from strings."""
    for key, value in list(event_dict.items()):
        if key in PERSONAL_KEYS and value is not None:
            event_dict[key] = "<masked>"
        else:
            event_dict[key] = _mask(value)
    return event_dict


def configure_logging(
    service: str, level: str = "INFO", fmt: str = "json", stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging through one masking pipeline to stdout (or `stream`)."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        # Masking comes last, so it also sees rendered tracebacks.
        mask_personal_data,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared[:-1],
            structlog.stdlib.PositionalArgumentsFormatter(),
            mask_personal_data,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared[:-1],
            structlog.stdlib.ExtraAdder(),
            _drop_colour_copies,
            mask_personal_data,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _add_service(service),
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Drivers that log statements with their parameters (personal data) stay quiet.
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def _drop_colour_copies(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.pop("color_message", None)
    return event_dict


def _add_service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
