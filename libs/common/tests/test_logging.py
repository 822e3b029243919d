"""Logs never show personal data in the clear, and masking leaves ids and timestamps readable."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from kanaal.common.logging import configure_logging, get_logger, mask_text

EMAIL = "jan.jansen@example.nl"
BSN = "111222333"
NAME = "Jan Jansen"
TEXT = "Mijn parkeervergunning is verlopen"
PHONES = [
    "06 12345678",
    "0612345678",
    "06-1234 5678",
    "+31 6 1234 5678",
    "+31612345678",
    "0031612345678",
    "(020) 123 4567",
    "020-1234567",
    "+31 (0)20 123 4567",
    "+44 20 7946 0958",
    "+1 (555) 123-4567",
]
NOISY = ("aiormq", "aio_pika", "httpx", "httpcore")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in NOISY}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()


def lines(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[dict[str, Any]]]:
    out = capsys.readouterr().out
    return out, [json.loads(line) for line in out.splitlines() if line.strip()]


def assert_no_personal_data(out: str, *values: str) -> None:
    for value in values:
        assert value not in out, f"{value!r} appears in the log: {out}"


def test_structlog_messages_never_show_email_phone_or_bsn(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test")
    log = get_logger("kanaal.test")
    for phone in PHONES:
        log.info(f"mail from {EMAIL}, call back on {phone}, bsn {BSN}")
    out, records = lines(capsys)
    assert len(records) == len(PHONES)
    assert_no_personal_data(out, EMAIL, BSN, *PHONES)
    assert records[0]["event"] == "mail from <email>, call back on <phone>, bsn <number>"
    assert all(r["event"] == records[0]["event"] for r in records), out


def test_personal_keywords_are_replaced_whole(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    get_logger("kanaal.test").info(
        "contact stored", text=TEXT, name=NAME, email=EMAIL, phone="06 12345678", bsn=BSN
    )
    out, [record] = lines(capsys)
    assert_no_personal_data(out, TEXT, NAME, EMAIL, "12345678", BSN)
    for key in ("text", "name", "email", "phone", "bsn"):
        assert record[key] == "<masked>"


def test_personal_data_nested_in_other_fields_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    get_logger("kanaal.test").info(
        "resolved",
        contact={"party": {"name": NAME}, "reply_to": EMAIL},
        senders=[EMAIL, "+31 6 1234 5678"],
        note=f"caller {NAME} said: call {PHONES[6]}",
    )
    out, [record] = lines(capsys)
    assert_no_personal_data(out, EMAIL, PHONES[6], "1234 5678")
    assert record["contact"] == {"party": "<masked>", "reply_to": "<email>"}
    assert record["senders"] == ["<email>", "<phone>"]


def test_bound_context_with_personal_data_is_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    structlog.contextvars.bind_contextvars(email=EMAIL, handled_for=EMAIL)
    get_logger("kanaal.test").info("handling")
    out, [record] = lines(capsys)
    assert_no_personal_data(out, EMAIL)
    assert record["email"] == "<masked>"


def test_stdlib_records_are_masked_like_our_own(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    library = logging.getLogger("some.library")
    library.warning("delivery to %s failed, phone %s, bsn %s", EMAIL, "(020) 123 4567", BSN)
    library.warning("extra fields", extra={"email": EMAIL, "text": TEXT, "peer": EMAIL})
    out, records = lines(capsys)
    assert_no_personal_data(out, EMAIL, "123 4567", BSN, TEXT)
    assert records[0]["event"] == "delivery to <email> failed, phone <phone>, bsn <number>"
    assert records[0]["logger"] == "some.library"
    assert records[0]["service"] == "test"
    assert records[1]["email"] == records[1]["text"] == "<masked>"
    assert records[1]["peer"] == "<email>"


def test_an_exception_mentioning_an_email_is_masked_in_the_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("test")

    def deliver() -> None:
        raise ValueError(f"mailbox {EMAIL} refused the reply to 06 12345678")

    try:
        deliver()
    except ValueError:
        get_logger("kanaal.test").exception("send failed")
        logging.getLogger("some.library").exception("send failed too")
    out, records = lines(capsys)
    assert len(records) == 2
    assert_no_personal_data(out, EMAIL, "12345678")
    for record in records:
        assert "ValueError: mailbox <email> refused the reply to <phone>" in record["exception"]
        assert "Traceback" in record["exception"]


def test_contact_ids_and_timestamps_stay_readable(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    contact_id = uuid.UUID("01234567-0123-5123-8123-012345678901")
    occurred = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=1)))
    get_logger("kanaal.test").info(
        f"routed {contact_id} at {occurred.isoformat()}",
        contact_id=str(contact_id),
        occurred_at=occurred.isoformat(),
        case_ref="K-2026-000042",
        queue="work.subject.parkeren",
        count=123456789,
    )
    _, [record] = lines(capsys)
    assert record["event"] == f"routed {contact_id} at 2026-03-02T09:30:15.123456+01:00"
    assert record["contact_id"] == str(contact_id)
    assert record["occurred_at"] == "2026-03-02T09:30:15.123456+01:00"
    assert record["case_ref"] == "K-2026-000042"
    assert record["queue"] == "work.subject.parkeren"
    assert record["count"] == 123456789
    assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
    assert record["level"] == "info"


def test_debug_records_are_dropped_at_info_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test", level="INFO")
    get_logger("kanaal.test").debug("noise")
    logging.getLogger("aio_pika").info("connection chatter")
    get_logger("kanaal.test").info("signal")
    _, records = lines(capsys)
    assert [r["event"] for r in records] == ["signal"]


@given(st.uuids())
def test_masking_never_touches_a_uuid(value: uuid.UUID) -> None:
    assert mask_text(f"contact {value} routed") == f"contact {value} routed"


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]
        ),
    )
)
@example(datetime(2026, 3, 2, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=-5))))
def test_masking_never_touches_an_iso_timestamp(value: datetime) -> None:
    for text in (
        value.isoformat(),
        value.isoformat(sep=" "),
        value.strftime("%Y-%m-%d %H:%M:%S,%f"),
    ):
        assert mask_text(text) == text


@given(st.text("0123456789", min_size=8, max_size=8))
def test_masking_hides_every_dutch_mobile_number(rest: str) -> None:
    for phone in (f"06{rest}", f"06 {rest}", f"+31 6 {rest[:4]} {rest[4:]}", f"(06) {rest}"):
        assert rest not in mask_text(f"bel {phone} terug"), phone
