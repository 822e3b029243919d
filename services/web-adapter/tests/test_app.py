"""The web adapter in this process against the real RabbitMQ: pages, API, answers, abuse cases."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import aio_pika
import httpx
import pytest
import yaml

from kanaal.common.config import ConfigError
from kanaal.common.contract import ContactMessage, DeliveryReport, Direction, RejectedInput
from kanaal.common.database import create_engine
from kanaal.common.messaging import contract_message
from kanaal.common.testing import RabbitVhost
from kanaal.common.topology import EVENTS, OUTBOUND, Event, rejected_queue
from kanaal.web.app import create_app
from kanaal.web.store import WebStore

from .conftest import PNG, REPO, Web, web_settings

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def tap(
    vhost: RabbitVhost, *keys: str
) -> tuple[aio_pika.abc.AbstractConnection, aio_pika.abc.AbstractQueue]:
    """A private queue on kanaal.events bound to `keys`; close the connection when done."""
    connection = await vhost.connect()
    channel = await connection.channel()
    events = await channel.get_exchange(EVENTS.name)
    queue = await channel.declare_queue(exclusive=True)
    for key in keys:
        await queue.bind(events, key)
    return connection, queue


async def take(
    queue: aio_pika.abc.AbstractQueue, timeout: float = 10
) -> aio_pika.abc.AbstractIncomingMessage:
    for _ in range(int(timeout / 0.05)):
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError("nothing arrived")


async def publish_answer(vhost: RabbitVhost, answer: ContactMessage) -> None:
    connection = await vhost.connect()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(OUTBOUND.name)
        await exchange.publish(
            contract_message(answer, message_type=Event.CONTACT_OUTBOUND, message_id=answer.id),
            routing_key="web",
        )


def answer_to(contact: ContactMessage, text: str, case_ref: str | None = None) -> ContactMessage:
    """An agent's answer as the dossier puts it on kanaal.outbound."""
    return ContactMessage.new(
        case_ref=case_ref,
        channel="web",
        direction=Direction.OUTBOUND,
        entry_point="contactformulier",
        source_ref=f"reply:{contact.id}",
        text=text,
        in_reply_to=contact.source_ref,
        party={"email": "m.de.vries@example.org"},
    )


async def submit_form(
    web: Web, files: dict[str, tuple[str, bytes, str]] | None = None, **fields: str
) -> httpx.Response:
    hidden = await web.form()
    return await web.client.post("/", data={**hidden, **fields}, files=files or {})


async def test_the_form_page_is_plain_accessible_html_under_a_strict_policy(web: Web) -> None:
    page = await web.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in page.text
    assert " style=" not in page.text
    assert '<html lang="nl">' in page.text
    for field in ("name", "email", "phone", "subject", "case_ref", "text", "attachments"):
        assert f'<label for="veld-{field}">' in page.text, field
        assert f'id="veld-{field}"' in page.text
    cookie = page.headers["set-cookie"]
    assert "kanaal_csrf=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


async def test_a_form_with_an_attachment_is_published_with_a_reference_to_the_stored_file(
    web: Web,
) -> None:
    connection, queue = await tap(web.vhost, Event.CONTACT_RECEIVED.key("web"))
    async with connection:
        sent = await submit_form(
            web,
            files={"attachments": ("../../etc/foto:1.png", PNG, "image/png")},
            name="Marloes de Vries",
            subject="afval",
            text="De container is niet geleegd.",
        )
        assert sent.status_code == 200, sent.text
        assert "Uw bericht is verstuurd" in sent.text
        status_path = re.search(r'href="(/status/[A-Za-z0-9_-]{40,})"', sent.text)
        assert status_path is not None
        message = await take(queue)
    assert PNG not in message.body, "file bytes never travel on the bus"
    contact = ContactMessage.model_validate_json(message.body)
    [attachment] = contact.attachments
    assert attachment.filename == "foto_1.png"
    assert attachment.content_type == "image/png"
    assert attachment.size == len(PNG)
    stored = Path(attachment.uri.removeprefix("file://"))
    assert await asyncio.to_thread(stored.read_bytes) == PNG
    page = await web.client.get(status_path.group(1))
    assert page.status_code == 200
    assert "Met 1 bijlage." in page.text
    assert page.headers["cache-control"] == "no-store"


async def test_an_answer_on_outbound_web_shows_on_the_status_page_as_text(web: Web) -> None:
    connection, queue = await tap(
        web.vhost, Event.CONTACT_RECEIVED.key("web"), Event.CONTACT_SENT.key("web")
    )
    async with connection:
        accepted = await web.client.post(
            "/api/v1/messages", json={"subject": "parkeren", "text": XSS, "name": "Jan <b>Bold</b>"}
        )
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        contact = ContactMessage.model_validate_json((await take(queue)).body)
        assert str(contact.id) == body["contact_id"]
        answer = answer_to(contact, f"Wij kijken ernaar.\n{XSS}")
        await publish_answer(web.vhost, answer)
        report = DeliveryReport.model_validate_json((await take(queue)).body)
    assert report.contact_id == answer.id
    assert report.status.value == "sent"

    page = await web.client.get(body["status_page_url"])
    assert "Wij kijken ernaar." in page.text
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    assert "Beantwoord" in page.text
    status = (await web.client.get(body["status_url"])).json()
    assert [a["text"] for a in status["answers"]] == [f"Wij kijken ernaar.\n{XSS}"]
    assert status["status"] == "received"  # no dossier in this test


async def test_a_reply_from_the_status_page_is_a_new_contact_answering_the_last_message(
    web: Web,
) -> None:
    connection, queue = await tap(web.vhost, Event.CONTACT_RECEIVED.key("web"))
    async with connection:
        accepted = await web.client.post(
            "/api/v1/messages",
            json={"subject": "parkeren", "text": "Vraag", "case_ref": "K-2026-000042"},
        )
        first = ContactMessage.model_validate_json((await take(queue)).body)
        answer = answer_to(first, "Antwoord", case_ref="K-2026-000042")
        await publish_answer(web.vhost, answer)
        page_path = accepted.json()["status_page_url"]
        for _ in range(100):
            if "Antwoord" in (await web.client.get(page_path)).text:
                break
            await asyncio.sleep(0.05)
        hidden = await web.form(page_path)
        replied = await web.client.post(
            f"{page_path}/reply", data={**hidden, "text": f"Dank u. {XSS}"}
        )
        assert replied.status_code == 303
        assert replied.headers["location"].startswith(page_path)
        # A double click posts the same form again: the same contact.
        await web.client.post(f"{page_path}/reply", data={**hidden, "text": f"Dank u. {XSS}"})
        second = ContactMessage.model_validate_json((await take(queue)).body)
        again = ContactMessage.model_validate_json((await take(queue)).body)
    assert second.id == again.id != first.id
    assert second.case_ref == "K-2026-000042"
    assert second.in_reply_to == answer.source_ref
    assert second.subject == "parkeren"
    assert second.party.is_empty
    page = await web.client.get(f"{page_path}?verstuurd=1")
    assert "Uw reactie is verstuurd." in page.text
    assert page.text.count("U stuurde een bericht") == 2


async def test_a_typed_case_ref_is_passed_on_but_never_shown_or_reused_by_the_adapter(
    web: Web,
) -> None:
    # Only the dossier says which case a message is on (it may refuse a typed number that
    # is another customer's); without its word the page shows none and a reply names none.
    connection, queue = await tap(web.vhost, Event.CONTACT_RECEIVED.key("web"))
    async with connection:
        accepted = await web.client.post(
            "/api/v1/messages",
            json={"subject": "parkeren", "text": "Vraag", "case_ref": "K-2026-000042"},
        )
        assert accepted.status_code == 202, accepted.text
        first = ContactMessage.model_validate_json((await take(queue)).body)
        assert first.case_ref == "K-2026-000042"  # for the dossier to judge
        assert accepted.json()["case_ref"] is None
        status = (await web.client.get(accepted.json()["status_url"])).json()
        assert status["case_ref"] is None
        page_path = accepted.json()["status_page_url"]
        assert "K-2026-000042" not in (await web.client.get(page_path)).text
        hidden = await web.form(page_path)
        await web.client.post(f"{page_path}/reply", data={**hidden, "text": "Nog iets"})
        reply = ContactMessage.model_validate_json((await take(queue)).body)
    assert reply.case_ref is None
    assert reply.in_reply_to == first.source_ref


async def test_invalid_form_fields_are_named_next_to_the_field_and_values_stay_escaped(
    web: Web,
) -> None:
    page = await submit_form(
        web, subject="ufo", email="geen-adres", phone="14 020", text=XSS, name=XSS
    )
    assert page.status_code == 422
    assert page.text.count('aria-invalid="true"') == 3
    assert 'id="veld-email-fout"' in page.text
    assert 'id="veld-phone-fout"' in page.text
    assert 'id="veld-subject-fout"' in page.text
    assert "<title>Fout: " in page.text
    assert "<script>alert" not in page.text
    assert "<img src=x" not in page.text
    assert "&lt;script&gt;" in page.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "ufo", "text": "x"}, "subject"),
        ({"subject": "afval", "text": ""}, "text"),
        ({"subject": "afval", "text": "x", "email": "nee"}, "email"),
        ({"subject": "afval", "text": "x", "extra": 1}, "extra"),
        ({"text": "x"}, "subject"),
    ],
)
async def test_an_invalid_api_request_is_a_422_naming_the_field(
    web: Web, body: dict[str, object], field: str
) -> None:
    answer = await web.client.post("/api/v1/messages", json=body)
    assert answer.status_code == 422
    assert ["body", field] in [e["loc"] for e in answer.json()["detail"]]


async def test_other_bad_requests_are_4xx_with_a_reason(web: Web) -> None:
    client = web.client
    not_json = await client.post(
        "/api/v1/messages", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    text = await client.post(
        "/api/v1/messages", content=b"hoi", headers={"content-type": "text/plain"}
    )
    assert text.status_code == 415
    key = {"Idempotency-Key": "form-77"}
    first = await client.post(
        "/api/v1/messages", json={"subject": "afval", "text": "a"}, headers=key
    )
    assert first.status_code == 202
    reused = await client.post(
        "/api/v1/messages", json={"subject": "afval", "text": "b"}, headers=key
    )
    assert reused.status_code == 409
    same = await client.post(
        "/api/v1/messages", json={"subject": "afval", "text": "a"}, headers=key
    )
    assert same.json()["status_url"] == first.json()["status_url"]
    assert (await client.get("/api/v1/status/" + "A" * 43)).status_code == 404
    assert (await client.get("/api/v1/status/kort")).status_code == 422
    unknown = await client.get("/status/" + "A" * 43)
    assert unknown.status_code == 404
    assert "Pagina niet gevonden" in unknown.text


async def test_oversized_and_unwanted_uploads_are_refused(web: Web) -> None:
    client = web.client
    big = PNG + b"\x00" * web.settings.web_max_attachment_bytes
    too_big = await client.post(
        "/api/v1/messages",
        data={"subject": "afval", "text": "foto"},
        files={"attachments": ("groot.png", big, "image/png")},
    )
    assert too_big.status_code == 422
    assert too_big.json()["detail"][0]["loc"] == ["body", "attachments"]
    program = await client.post(
        "/api/v1/messages",
        data={"subject": "afval", "text": "pdf"},
        files={"attachments": ("factuur.pdf", b"MZ\x90\x00 not a pdf", "application/pdf")},
    )
    assert program.status_code == 422
    many = [("attachments", (f"{i}.png", PNG, "image/png")) for i in range(7)]
    too_many = await client.post(
        "/api/v1/messages", data={"subject": "afval", "text": "veel"}, files=many
    )
    assert too_many.status_code in (400, 422)
    huge = b"\x00" * (web.settings.web_max_upload_bytes + 1)
    whole = await client.post(
        "/api/v1/messages",
        data={"subject": "afval", "text": "x"},
        files={"attachments": ("x.png", huge, "image/png")},
    )
    assert whole.status_code == 413
    json_too_big = await client.post(
        "/api/v1/messages", json={"subject": "afval", "text": "x" * 300_000}
    )
    assert json_too_big.status_code == 413

    async def chunks() -> object:  # no Content-Length: the limit still holds
        for _ in range(30):
            yield b"x" * 10_000

    streamed = await client.post(
        "/api/v1/messages", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    form_page = await submit_form(
        web,
        files={"attachments": ("groot.png", big, "image/png")},
        subject="afval",
        text="foto",
    )
    assert form_page.status_code == 422
    assert 'id="veld-attachments-fout"' in form_page.text


async def test_a_form_without_its_csrf_token_is_refused(web: Web) -> None:
    hidden = await web.form()
    forged = await web.client.post(
        "/", data={**hidden, "csrf_token": "0" * 64, "subject": "afval", "text": "x"}
    )
    assert forged.status_code == 403
    web.client.cookies.clear()
    no_cookie = await web.client.post("/", data={**hidden, "subject": "afval", "text": "x"})
    assert no_cookie.status_code == 403


async def test_a_filled_in_honeypot_is_refused_and_recorded(web: Web) -> None:
    bot = await submit_form(web, subject="afval", text="Goedkope pillen", website="http://spam")
    assert bot.status_code == 400
    [record] = await web.vhost.wait_for(rejected_queue("web").name, 1, timeout=10)
    assert "honeypot" in RejectedInput.model_validate_json(record.body).reason


async def test_too_many_messages_from_one_client_get_a_clear_429(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    app = create_app(web_settings(rabbit_vhost, tmp_path, web_rate_limit=2, web_rate_window=60))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            codes = [
                (await client.post("/api/v1/messages", json={"subject": "afval", "text": f"{i}"}))
                for i in range(3)
            ]
            page = await client.post("/", data={"subject": "afval", "text": "x"})
    assert [c.status_code for c in codes] == [202, 202, 429]
    assert int(codes[2].headers["retry-after"]) > 0
    assert "too many" in codes[2].json()["detail"]
    assert page.status_code == 429
    assert "Probeer het over" in page.text


async def test_the_rate_limit_holds_across_replicas_that_share_a_database(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    # Two replicas of the adapter behind one load balancer, one database: a client that
    # used its messages on one gets 429 on the other too.
    settings = web_settings(rabbit_vhost, tmp_path, web_rate_limit=2, web_rate_window=60)
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        codes = []
        for app in (first, first, second):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
                sent = await client.post(
                    "/api/v1/messages", json={"subject": "afval", "text": f"{len(codes)}"}
                )
                codes.append(sent.status_code)
    assert codes == [202, 202, 429]


@pytest.mark.postgres
async def test_the_store_keeps_threads_and_answers_on_postgresql(postgres_url: str) -> None:
    store = WebStore(create_engine(postgres_url))
    try:
        await store.upgrade()
        await store.upgrade()  # a second start changes nothing
        key = await store.secret_key()
        assert key == await store.secret_key()
        contact = ContactMessage.new(
            channel="web", entry_point="contactformulier", source_ref="s-1", text="x"
        )
        thread_id = await store.record_submission(contact, "a" * 64, token="t" * 43)
        assert await store.record_submission(contact, "a" * 64, token="t" * 43) == thread_id
        answer = answer_to(contact, "Antwoord")
        assert await store.thread_for_answer(contact.source_ref) == thread_id
        assert await store.thread_for_answer(None) is None
        assert await store.record_answer(thread_id, answer)
        assert not await store.record_answer(thread_id, answer)
        thread = await store.thread("t" * 43)
        assert thread is not None
        assert [e.kind for e in thread.entries] == ["sent", "answer"]
        assert thread.last_source_ref == answer.source_ref
    finally:
        await store.dispose()


async def test_an_answer_notice_by_e_mail_has_the_link_and_never_the_answer(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    channels = yaml.safe_load((config / "channels.yaml").read_text(encoding="utf-8"))
    channels["channels"]["web"]["notify"] = {
        "mailbox": "info@gemeente.example",
        "text": "Er is een antwoord: {status_url}",
    }
    (config / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    settings = web_settings(
        rabbit_vhost,
        tmp_path,
        config_dir=config,
        web_public_url="https://contact.gemeente.example",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            connection, queue = await tap(rabbit_vhost, Event.CONTACT_RECEIVED.key("web"))
            async with connection:
                accepted = await client.post(
                    "/api/v1/messages", json={"subject": "afval", "text": "Vraag"}
                )
                contact = ContactMessage.model_validate_json((await take(queue)).body)
            answer = answer_to(contact, "Het geheime antwoord", case_ref="K-2026-000007")
            await publish_answer(rabbit_vhost, answer)
            [mail] = await rabbit_vhost.wait_for("outbound.email", 1, timeout=10)
    notice = ContactMessage.model_validate_json(mail.body)
    assert notice.channel == "email"
    assert notice.direction is Direction.OUTBOUND
    assert notice.entry_point == "info@gemeente.example"
    assert notice.party.email == "m.de.vries@example.org"
    assert notice.case_ref == "K-2026-000007"
    page = accepted.json()["status_page_url"]
    assert notice.text == f"Er is een antwoord: https://contact.gemeente.example{page}"
    assert "geheime" not in mail.body.decode()


def test_a_notice_without_outbound_e_mail_is_a_config_error(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "deploy" / "config", config)
    channels = yaml.safe_load((config / "channels.yaml").read_text(encoding="utf-8"))
    channels["channels"]["web"]["notify"] = {"mailbox": "info@gemeente.example"}
    channels["channels"]["email"]["outbound"] = False
    (config / "channels.yaml").write_text(yaml.safe_dump(channels), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"channels\.email\.outbound"):
        create_app(web_settings(rabbit_vhost, tmp_path, config_dir=config))


@pytest.mark.postgres
async def test_the_adapter_keeps_its_threads_and_answers_on_postgresql(
    rabbit_vhost: RabbitVhost, tmp_path: Path, postgres_url: str
) -> None:
    app = create_app(web_settings(rabbit_vhost, tmp_path, web_database_url=postgres_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://web") as client:
            connection, queue = await tap(rabbit_vhost, Event.CONTACT_RECEIVED.key("web"))
            async with connection:
                accepted = await client.post(
                    "/api/v1/messages", json={"subject": "afval", "text": "Op PostgreSQL"}
                )
                contact = ContactMessage.model_validate_json((await take(queue)).body)
            await publish_answer(rabbit_vhost, answer_to(contact, "Antwoord uit PostgreSQL"))
            status_url = accepted.json()["status_url"]
            for _ in range(100):
                status = (await client.get(status_url)).json()
                if status["answers"]:
                    break
                await asyncio.sleep(0.05)
    assert [a["text"] for a in status["answers"]] == ["Antwoord uit PostgreSQL"]
