"""Pytest fixtures for real-browser tests: Playwright driving Debian's Chromium, and axe-core.

Loaded as a pytest plugin next to `kanaal.common.testing`. Playwright never downloads a
browser here: the tests use `/usr/bin/chromium` (Debian's package `chromium`, which
`.ci/run` installs) and axe-core from the npm registry (`tests/browser/package.json`,
installed by `make browser-deps`). A missing browser or axe-core fails the test with the
command that installs it; it is never skipped, so CI cannot pass without looking.

    async def test_form(browser_page):
        async with serve_app(create_app(settings)) as url:
            await browser_page.goto(url)
            await assert_accessible(browser_page)
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kanaal.common.testing import serve_app

if TYPE_CHECKING:
    from playwright.async_api import Page

__all__ = ["accessibility_violations", "assert_accessible", "browser_page", "serve_app"]

CHROMIUM = Path(os.environ.get("KANAAL_TEST_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps dialling Google's hosts, which a
# closed network refuses many at a time; root needs --no-sandbox.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BLOCKING_IMPACTS = ("serious", "critical")


def axe_source() -> str:
    """axe.min.js from tests/browser/node_modules, found from this checkout's root."""
    configured = os.environ.get("KANAAL_TEST_AXE_JS")
    if configured:
        return Path(configured).read_text(encoding="utf-8")
    for folder in (Path.cwd(), *Path(__file__).resolve().parents):
        candidate = folder / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    pytest.fail("axe-core is not installed: run `make browser-deps` (npm ci in tests/browser)")


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; fails (never skips) with the install command when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser_page(chromium: Path) -> AsyncIterator[Page]:
    """A fresh page in a fresh headless Chromium with its own empty profile, Dutch locale."""
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory(prefix="kanaal-chromium-") as profile:
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(chromium),
                args=CHROMIUM_ARGS,
                headless=True,
                locale="nl-NL",
                timeout=30_000,
            )
            try:
                page = context.pages[0] if context.pages else await context.new_page()
                page.set_default_timeout(10_000)
                yield page
            finally:
                await context.close()


async def accessibility_violations(
    page: Page, impacts: tuple[str, ...] = BLOCKING_IMPACTS
) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now, of the given impacts.

    The script goes in through the DevTools protocol (`evaluate`), not as a <script> tag,
    so a page's Content-Security-Policy without inline script stays in force.
    """
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(f"() => {{ {axe_source()}\n }}")
    result = await page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
            });
            return r.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => n.target.join(" ")),
            }));
        }"""
    )
    return [violation for violation in result if violation["impact"] in impacts]


async def assert_accessible(page: Page, impacts: tuple[str, ...] = BLOCKING_IMPACTS) -> None:
    """Fail with axe-core's findings when the page has serious or critical violations."""
    violations = await accessibility_violations(page, impacts)
    assert not violations, (
        "accessibility violations on " + page.url + ":\n" + json.dumps(violations, indent=2)
    )
