"""The web desk in a real browser (Debian's Chromium through Playwright): an agent logs in,
sees the queue, takes the next item, reads the customer view, replies and closes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from kanaal.common.testing_browser import assert_accessible, serve_app
from kanaal.desk.app import DeskSettings, create_app

from .conftest import PARKEREN, Suite, token_of

if TYPE_CHECKING:
    from playwright.async_api import Page


async def test_an_agent_logs_in_takes_the_next_case_replies_and_closes_it(
    suite: Suite, desk_settings: DeskSettings, browser_page: Page
) -> None:
    await suite.send(
        channel="email",
        entry_point="info@gemeente.example",
        party={"name": "Fenna <b>de Boer</b>", "email": "fenna@example.org"},
        text="Mijn vergunning <script>alert(1)</script> is verlopen.",
    )
    await suite.wait_depth(PARKEREN, 1)
    page = browser_page
    async with serve_app(create_app(desk_settings)) as url:
        # Without a session every page leads to the login; a form without CSRF is refused.
        await page.goto(f"{url}/")
        assert page.url.endswith("/login")
        await assert_accessible(page)
        async with httpx.AsyncClient(base_url=url) as http:
            forged = await http.post("/next", data={"csrf": "x"})
            assert forged.status_code == 303  # no session: to the login, nothing taken
            no_csrf = await http.post("/login", data={"token": token_of("anna")})
            assert no_csrf.status_code == 403
            headers = (await http.get("/login")).headers
            assert "default-src 'none'" in headers["content-security-policy"]
            assert headers["x-frame-options"] == "DENY"

        await page.fill("#token", "verkeerd")
        await page.click("button[type=submit]")
        assert await page.locator(".error").is_visible()
        await page.fill("#token", token_of("anna"))
        await page.click("button[type=submit]")
        cookies = {c["name"]: c for c in await page.context.cookies()}
        assert cookies["kanaal_desk"]["httpOnly"] is True
        assert cookies["kanaal_desk"]["sameSite"] == "Strict"

        row = page.locator("table.queues tr", has_text=PARKEREN)
        assert "uw werkbak" in await row.inner_text()
        await assert_accessible(page)

        await page.click("text=Volgende")
        await page.wait_for_url("**/cases/K-*")
        body = await page.locator("main").inner_text()
        assert "Mijn vergunning <script>alert(1)</script> is verlopen." in body
        assert "Fenna <b>de Boer</b>" in body  # escaped, shown as text
        assert "e-mail" in body
        await assert_accessible(page)

        await page.fill("#antwoord", "Uw vergunning is verlengd.")
        await page.click("text=Antwoord versturen")
        assert "Antwoord verstuurd via e-mail" in await page.locator(".flash").inner_text()
        [outbound] = await suite.vhost.wait_for("outbound.email", 1, timeout=15)
        assert b"Uw vergunning is verlengd." in outbound.body

        await page.select_option("#resultaat", "beantwoord")
        await page.click("text=Zaak sluiten")
        await page.wait_for_url(f"{url}/")
        assert "Zaak gesloten" in await page.locator(".flash").inner_text()
