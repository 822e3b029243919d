"""The browser fixtures see what a user's browser sees, under a strict CSP."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from kanaal.common.testing_browser import accessibility_violations, assert_accessible, serve_app

CSP = "default-src 'self'; script-src 'self'; style-src 'self'"
GOOD = """<!doctype html><html lang="nl"><head><title>Contact</title></head>
<body><main><h1>Contact</h1><form><label for="naam">Naam</label>
<input id="naam" name="naam"><button type="submit">Versturen</button></form></main></body></html>"""
BAD = """<!doctype html><html lang="nl"><head><title>Contact</title></head>
<body><main><h1>Contact</h1><img src="/logo.png"><input name="naam"></main></body></html>"""


def pages() -> FastAPI:
    app = FastAPI()

    @app.get("/{name}", response_class=HTMLResponse)
    async def page(name: str) -> HTMLResponse:
        return HTMLResponse(
            GOOD if name == "good" else BAD, headers={"Content-Security-Policy": CSP}
        )

    return app


async def test_a_labelled_form_passes_and_an_unlabelled_one_fails(browser_page) -> None:
    async with serve_app(pages()) as url:
        await browser_page.goto(f"{url}/good")
        await assert_accessible(browser_page)

        await browser_page.goto(f"{url}/bad")
        found = {violation["id"] for violation in await accessibility_violations(browser_page)}
        assert {"image-alt", "label"} <= found
        with pytest.raises(AssertionError, match="image-alt"):
            await assert_accessible(browser_page)


async def test_the_page_csp_stays_in_force(browser_page) -> None:
    async with serve_app(pages()) as url:
        await browser_page.goto(f"{url}/good")
        blocked = await browser_page.evaluate(
            """() => new Promise(resolve => {
                document.addEventListener("securitypolicyviolation", () => resolve(true));
                const s = document.createElement("script");
                s.textContent = "window.ran = true";
                document.body.appendChild(s);
                setTimeout(() => resolve(false), 1000);
            })"""
        )
        assert blocked
        assert not await browser_page.evaluate("window.ran === true")
