"""Web sessions survive a restart of the desk; logging out ends them for good; the sessions
file does not give the agents' tokens away."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from kanaal.desk.app import DeskSettings, create_app
from kanaal.desk.sessions import COOKIE

from .conftest import Suite, token_of

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@asynccontextmanager
async def running_desk(settings: DeskSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A desk (a fresh app: as after a restart) and a browser-like client without cookies."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://desk") as http,
    ):
        yield http


async def test_a_desk_restart_keeps_an_agent_logged_in_and_logout_still_ends_the_session(
    suite: Suite, desk_settings: DeskSettings
) -> None:
    async with running_desk(desk_settings) as http:
        form = await http.get("/login")
        [login_csrf] = CSRF.findall(form.text)
        done = await http.post("/login", data={"token": token_of("anna"), "csrf": login_csrf})
        assert (done.status_code, done.headers["location"]) == (303, "/")
        cookie = http.cookies[COOKIE]
        assert (await http.get("/")).status_code == 200

    # The token is not in the sessions file, neither is the cookie that opens it.
    stored = desk_settings.desk_sessions_path.read_bytes()
    assert token_of("anna").encode() not in stored
    assert cookie.encode() not in stored

    async with running_desk(desk_settings) as http:  # restarted: a new process would be the same
        http.cookies.set(COOKIE, cookie)
        home = await http.get("/")
        assert home.status_code == 200, home.headers.get("location")
        assert "Medewerker anna" in home.text
        [csrf] = CSRF.findall(home.text)[:1]
        # A form action still works with the session's CSRF token from before the restart.
        taken = await http.post("/next", data={"csrf": csrf})
        assert (taken.status_code, taken.headers["location"]) == (303, "/")
        assert "Er wacht geen werk" in (await http.get("/")).text

        out = await http.post("/logout", data={"csrf": csrf})
        assert (out.status_code, out.headers["location"]) == (303, "/login")
        http.cookies.set(COOKIE, cookie)  # the old cookie, replayed
        again = await http.get("/")
        assert (again.status_code, again.headers["location"]) == (303, "/login")

    async with running_desk(desk_settings) as http:
        http.cookies.set(COOKIE, cookie)
        assert (await http.get("/")).status_code == 303
        # A made-up session id leads to the login too.
        http.cookies.set(COOKIE, "x" * 43)
        assert (await http.get("/")).status_code == 303
