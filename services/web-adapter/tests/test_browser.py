"""A citizen in a real browser (Playwright on Debian's Chromium), with axe-core on every page.

The form is filled in and sent, the status page link followed, an agent's answer read
and a reply sent, all without a line of JavaScript on our side; every page state must
have no serious or critical WCAG 2.1 AA violation, and no CSP violation may be logged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from kanaal.common.contract import ContactMessage
from kanaal.common.testing import RabbitVhost
from kanaal.common.testing_browser import assert_accessible, serve_app
from kanaal.common.topology import Event
from kanaal.web.app import create_app

from .conftest import PNG, web_settings
from .test_app import answer_to, publish_answer, take, tap

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Page


async def test_a_citizen_writes_reads_the_answer_and_replies_in_a_browser(
    browser_page: Page, rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    page = browser_page
    console: list[str] = []

    def note(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", note)
    photo = tmp_path / "foto.png"
    photo.write_bytes(PNG)
    app = create_app(web_settings(rabbit_vhost, tmp_path))
    async with serve_app(app) as url:  # its start declares the topology
        connection, received = await tap(rabbit_vhost, Event.CONTACT_RECEIVED.key("web"))
        async with connection:
            await page.goto(url)
            assert await page.title() == "Stel uw vraag - Gemeente Voorbeeld"
            await assert_accessible(page)

            # Sent without a subject and with a wrong e-mail address: errors beside the fields.
            await page.get_by_label("E-mailadres").fill("niet-goed")
            await page.get_by_label("Uw bericht", exact=True).fill(
                "Er staat een fietswrak bij de Ruijterkade."
            )
            await page.get_by_role("button", name="Verstuur uw bericht").click()
            assert (await page.title()).startswith("Fout: ")
            assert await page.get_by_label("E-mailadres").get_attribute("aria-invalid") == "true"
            assert "Vul een geldig e-mailadres in" in await page.inner_text("#veld-email-fout")
            await assert_accessible(page)

            # Corrected, with a photo, using the keyboard for the subject.
            await page.get_by_label("Naam").fill("Sanne Ruijter")
            await page.get_by_label("E-mailadres").fill("sanne.ruijter@example.org")
            await page.get_by_label("Onderwerp").select_option("afval")
            await page.get_by_label("Bijlagen").set_input_files(str(photo))
            await page.get_by_label("Uw bericht", exact=True).focus()
            await page.keyboard.press("Tab")  # the keyboard reaches the file field next
            await page.get_by_role("button", name="Verstuur uw bericht").click()
            await page.get_by_role("heading", name="Uw bericht is verstuurd").wait_for()
            await assert_accessible(page)
            contact = ContactMessage.model_validate_json((await take(received)).body)
            assert contact.subject == "afval"
            assert [a.filename for a in contact.attachments] == ["foto.png"]

            await page.get_by_role("link", name="Naar uw statuspagina").click()
            await page.get_by_role("heading", name="Status van uw bericht").wait_for()
            assert re.search(r"/status/[A-Za-z0-9_-]{40,}$", page.url)
            await assert_accessible(page)

            await publish_answer(
                rabbit_vhost, answer_to(contact, "Het wrak wordt <b>morgen</b> opgehaald.")
            )
            for _ in range(100):
                await page.reload()
                if await page.get_by_text("Het wrak wordt <b>morgen</b> opgehaald.").count():
                    break
            assert await page.locator(".answer-text b").count() == 0, "answer text is shown as text"
            await assert_accessible(page)

            await page.get_by_label("Uw reactie").fill("Dank u wel!")
            await page.get_by_role("button", name="Verstuur uw reactie").click()
            await page.get_by_text("Uw reactie is verstuurd.").wait_for()
            await assert_accessible(page)
            reply = ContactMessage.model_validate_json((await take(received)).body)
    assert reply.in_reply_to == f"reply:{contact.id}"
    assert not [line for line in console if "Content Security Policy" in line], console
