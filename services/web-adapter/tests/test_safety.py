"""Abuse and safety: rate limits (on a SQLite store), CSRF tokens, upload checks, replies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from kanaal.common.contract import ContactMessage
from kanaal.common.database import create_engine
from kanaal.web.attachments import AttachmentRefused, Limits, Upload, check, safe_filename, sniff
from kanaal.web.safety import CsrfSigner, RateLimiter, retry_after
from kanaal.web.store import WebStore, rate_hits
from kanaal.web.submission import (
    ReplyMessage,
    WebChannelConfig,
    WebMessage,
    form_errors,
    reply_contact,
)

PDF = b"%PDF-1.7\n..."
PNG = b"\x89PNG\r\n\x1a\n...."


async def test_a_client_gets_its_limit_per_window_and_then_how_long_to_wait(
    tmp_path: Path,
) -> None:
    store = WebStore(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'web.db'}"))
    await store.upgrade()
    now = [120.0]  # the start of a 60-second window
    limiter = RateLimiter(store, 2, 60, clock=lambda: now[0])
    limiter.use_key(b"key")
    try:
        assert await limiter.hit("a") == await limiter.hit("a") == 0
        assert await limiter.hit("a") == pytest.approx(60)
        assert await limiter.hit("b") == 0, "clients are counted apart"
        now[0] += 30
        assert await limiter.hit("a") == pytest.approx(30)
        now[0] += 31  # the next window
        assert await limiter.hit("a") == 0
        # Kept: an HMAC of the address, never the address; older windows are dropped.
        now[0] += 120
        assert await limiter.hit("c") == 0
        async with store.engine.connect() as connection:
            rows = (await connection.execute(select(rate_hits))).all()
        assert {row.window for row in rows} == {5}
        assert "c" not in {row.client for row in rows}
    finally:
        await store.dispose()
    assert retry_after(0.2) == "1"


def test_a_csrf_field_is_valid_only_for_its_cookie_and_key() -> None:
    signer = CsrfSigner(b"key")
    cookie = signer.new_cookie()
    field = signer.field_for(cookie)
    assert signer.valid(cookie, field)
    assert not signer.valid(signer.new_cookie(), field)
    assert not CsrfSigner(b"other").valid(cookie, field)
    assert not signer.valid(None, field)
    assert not signer.valid(cookie, None)


def test_uploads_are_judged_by_their_bytes_not_their_name() -> None:
    limits = Limits(max_bytes=100, max_count=2)
    [(_, kind)] = check([Upload("scan.jpg", PDF)], limits)
    assert kind == "application/pdf"
    assert sniff(b"MZ\x90\x00") is None
    with pytest.raises(AttachmentRefused, match="bestandstype"):
        check([Upload("factuur.pdf", b"MZ\x90\x00")], limits)
    with pytest.raises(AttachmentRefused, match="groter"):
        check([Upload("groot.png", PNG + b"\x00" * 100)], limits)
    with pytest.raises(AttachmentRefused, match="ten hoogste 2"):
        check([Upload(f"{i}.png", PNG) for i in range(3)], limits)
    with pytest.raises(AttachmentRefused, match="leeg"):
        check([Upload("leeg.pdf", b"")], limits)
    gif = Limits(max_bytes=100, max_count=1, types=("image/png",))
    with pytest.raises(AttachmentRefused):
        check([Upload("a.gif", b"GIF89a....")], gif)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\jan\\foto.png", "foto.png"),
        ("a\x00b<script>.pdf", "a_b_script_.pdf"),
        ("...", "bijlage"),
        ("x" * 300 + ".pdf", "x" * 255),
    ],
)
def test_file_names_lose_their_path_and_unsafe_characters(given: str, kept: str) -> None:
    assert safe_filename(given) == kept


def test_the_config_takes_only_attachment_types_it_can_recognise() -> None:
    with pytest.raises(ValidationError, match="unknown type"):
        WebChannelConfig.model_validate({"attachment_types": ["application/x-msdownload"]})
    with pytest.raises(ValidationError, match="status_url"):
        WebChannelConfig.model_validate({"notify": {"mailbox": "info@x.example", "text": "Hoi"}})


def test_a_status_page_reply_is_on_the_thread_s_case_and_answers_its_last_message() -> None:
    config = WebChannelConfig(subjects=["parkeren"])
    at = datetime(2026, 11, 22, tzinfo=UTC)

    def reply(text: str, key: str | None = "k1") -> ContactMessage:
        return reply_contact(
            ReplyMessage(text=text, submission_id=key),
            config,
            thread_id="t1",
            subject="parkeren",
            case_ref="K-2026-000042",
            in_reply_to="reply:abc",
            received_at=at,
        )

    first = reply("Dank u")
    assert first.case_ref == "K-2026-000042"
    assert first.in_reply_to == "reply:abc"
    assert first.id == reply("Dank u").id
    assert first.id != reply("Dank u, ook nog").id
    assert first.id != reply("Dank u", key="k2").id


def test_form_errors_are_one_dutch_sentence_per_field() -> None:
    with pytest.raises(ValidationError) as caught:
        WebMessage.model_validate({"subject": "a", "text": "", "email": "x", "phone": "112"})
    errors = form_errors(caught.value)
    assert set(errors) == {"text", "email", "phone"}
    assert errors["text"] == "Vul uw bericht in."
