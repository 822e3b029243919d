"""The web desk: server-rendered Dutch pages with plain forms, for agents in a browser.

Every page but the login needs a session; every form carries the session's CSRF token
and is refused without it. Output is escaped by Jinja2 (autoescape), and the headers
allow nothing from elsewhere: scripts, styles and forms only from the desk itself.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from kanaal.common.contract import MAX_TEXT_CHARS
from kanaal.common.logging import get_logger
from kanaal.desk.actions import Desk
from kanaal.desk.dossier import DossierError
from kanaal.desk.sessions import COOKIE, LOGIN_COOKIE, Session, Sessions, same_token
from kanaal.desk.taking import Outcome

log = get_logger(__name__)

TEMPLATES = Path(__file__).parent / "templates"
CASE_REF: Final = re.compile(r"^K-\d{4}-\d{6}$")
KEY: Final = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_FORM_BYTES: Final = 256_000

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

STALE_WORDS: Final = {
    "claimed": "al opgepakt",
    "transferred": "doorgezet",
    "escalated": "geëscaleerd",
    "moved": "verplaatst",
    "closed": "gesloten",
    "unknown": "onbekend",
    "invalid": "ongeldig",
}
CHANNEL_WORDS: Final = {
    "email": "e-mail",
    "phone": "telefoon",
    "web": "web",
    "counter": "balie",
    "sms": "sms",
}
STATUS_WORDS: Final = {"open": "open", "in_progress": "in behandeling", "closed": "gesloten"}
KIND_WORDS: Final = {
    "contact.routed": "in werkbak gezet",
    "contact.sent": "verzonden",
    "contact.failed": "niet verzonden",
    "contact.updated": "bijgewerkt",
    "case.claimed": "opgepakt",
    "case.transferred": "doorgezet",
    "case.escalated": "geëscaleerd",
    "case.closed": "gesloten",
    "case.replied": "beantwoord",
    "case.noted": "notitie",
    "case.called_back": "teruggebeld",
    "case.reopened": "heropend",
    "case.merged": "samengevoegd",
}


async def security_headers(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.url.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone().strftime("%d-%m-%Y %H:%M")


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "\N{EN DASH}"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} u {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} u"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["duration"] = _duration
    env.filters["channel"] = lambda c: CHANNEL_WORDS.get(c or "", c or "")
    env.filters["status"] = lambda s: STATUS_WORDS.get(s or "", s or "")
    env.filters["kind"] = lambda k: KIND_WORDS.get(k or "", k or "")
    env.filters["stale"] = lambda r: STALE_WORDS.get(r or "", r or "")
    return env


class Form:
    """An urlencoded form body, parsed here (no python-multipart needed)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str) -> str | None:
        values = self._fields.get(name)
        return values[0] if values else None


async def read_form(request: Request) -> Form:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "formulier te groot")
    return Form(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def web_router(
    get_desk: Callable[[], Desk], sessions: Sessions, *, secure_cookie: bool = False
) -> APIRouter:
    env = environment()
    router = APIRouter(include_in_schema=False)

    def page(name: str, code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(env.get_template(name).render(**context), status_code=code)

    def secure(request: Request) -> bool:
        return secure_cookie or request.url.scheme == "https"

    def current(request: Request) -> Session | None:
        return sessions.find(request.cookies.get(COOKIE), get_desk().login)

    def to_login() -> RedirectResponse:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)

    def back(path: str, session: Session, message: str | None = None) -> RedirectResponse:
        if message:
            sessions.add_flash(session, message)
        return RedirectResponse(path, status.HTTP_303_SEE_OTHER)

    async def checked_form(request: Request) -> tuple[Session, Form] | RedirectResponse:
        session = current(request)
        if session is None:
            return to_login()
        form = await read_form(request)
        if not same_token(form.get("csrf"), session.csrf):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "ongeldig formulier (CSRF)")
        return session, form

    def flashes(session: Session) -> list[str]:
        return sessions.take_flashes(session)

    def login_page(request: Request, code: int = 200, error: str | None = None) -> Response:
        """The login form with a fresh CSRF token, double-submitted in a /login cookie."""
        token = secrets.token_urlsafe(32)
        response = page("login.html", code=code, csrf=token, error=error)
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=900,
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/login",
        )
        return response

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> Response:
        return login_page(request)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if not same_token(form.get("csrf"), request.cookies.get(LOGIN_COOKIE)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "ongeldig formulier (CSRF)")
        agent = get_desk().login((form.get("token") or "").strip())
        if agent is None:
            log.info("desk login refused")
            return login_page(
                request,
                status.HTTP_401_UNAUTHORIZED,
                "Onbekende token. Vraag uw beheerder om uw token.",
            )
        session = sessions.start(agent)
        log.info("desk login", agent=agent.id)
        done = RedirectResponse("/", status.HTTP_303_SEE_OTHER)
        done.set_cookie(
            COOKIE,
            session.id,
            max_age=int(sessions.lifetime),
            httponly=True,
            samesite="strict",
            secure=secure(request),
            path="/",
        )
        done.delete_cookie(LOGIN_COOKIE, path="/login")
        return done

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        checked = await checked_form(request)
        if isinstance(checked, RedirectResponse):
            return checked
        session, _ = checked
        sessions.end(session.id)
        response = to_login()
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/", response_class=HTMLResponse)
    async def home(request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login()
        desk, agent = get_desk(), session.agent
        try:
            me = await desk.me(agent)
            queues = await desk.overview(agent)
            error = None
        except DossierError as exc:
            me, queues, error = None, [], f"Het dossier antwoordt niet: {exc.detail}"
        return page(
            "home.html",
            agent=agent,
            me=me,
            queues=queues,
            served=set(agent.served.queues),
            csrf=session.csrf,
            flashes=flashes(session),
            error=error,
        )

    @router.get("/fragments/queues", response_class=HTMLResponse)
    async def queues_fragment(request: Request) -> Response:
        session = current(request)
        if session is None:
            return Response(status_code=status.HTTP_401_UNAUTHORIZED)
        queues = await get_desk().overview(session.agent)
        return page("queues.html", queues=queues, served=set(session.agent.served.queues))

    @router.post("/next")
    async def take_next(request: Request) -> Response:
        checked = await checked_form(request)
        if isinstance(checked, RedirectResponse):
            return checked
        session, _ = checked
        try:
            result = await get_desk().next(session.agent)
        except DossierError as exc:
            if exc.reason == "claim_undecided":
                return back(
                    "/",
                    session,
                    "Het dossier kon de zaak niet aan u toewijzen; het werk staat weer in de "
                    "werkbak. Probeer het zo opnieuw.",
                )
            return back("/", session, f"Volgende lukte niet: {exc.detail}")
        skipped = sum(result.skipped.values())
        note = f" ({skipped} verouderde items overgeslagen)" if skipped else ""
        if result.outcome is Outcome.AT_CAPACITY:
            return back(
                "/",
                session,
                f"U heeft al {result.held} zaken in behandeling (max. "
                f"{result.capacity}). Sluit of draag eerst een zaak over.",
            )
        if result.outcome is Outcome.EMPTY or result.item is None:
            return back("/", session, "Er wacht geen werk in uw werkbakken." + note)
        ref = result.item.case_ref
        return back(
            f"/cases/{ref}", session, f"Zaak {ref} opgepakt uit {result.taken_from}." + note
        )

    @router.get("/cases/{ref}", response_class=HTMLResponse)
    async def show_case(ref: str, request: Request) -> Response:
        session = current(request)
        if session is None:
            return to_login()
        if not CASE_REF.match(ref):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "geen zaak")
        desk = get_desk()
        try:
            view = await desk.case(session.agent, ref)
        except DossierError as exc:
            if exc.status == 404:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "Geen zaak met dit nummer") from exc
            return back("/", session, f"Zaak {ref} tonen lukte niet: {exc.detail}")
        return page(
            "case.html",
            agent=session.agent,
            view=view,
            case=view["case"],
            party=view["party"],
            queues=desk.work_queues,
            csrf=session.csrf,
            flashes=flashes(session),
        )

    async def case_action(
        request: Request, ref: str, act: Callable[[Session, Form], Awaitable[str]]
    ) -> Response:
        if not CASE_REF.match(ref):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "geen zaak")
        checked = await checked_form(request)
        if isinstance(checked, RedirectResponse):
            return checked
        session, form = checked
        try:
            message = await act(session, form)
        except ValueError as exc:
            return back(f"/cases/{ref}", session, str(exc))
        except DossierError as exc:
            return back(f"/cases/{ref}", session, f"Dat lukte niet: {exc.detail}")
        target = "/" if message.startswith(("Zaak gesloten", "Zaak doorgezet")) else ""
        return back(target or f"/cases/{ref}", session, message)

    def text_field(form: Form, name: str, label: str, limit: int = MAX_TEXT_CHARS) -> str:
        value = (form.get(name) or "").strip()
        if not value:
            raise ValueError(f"Vul {label} in.")
        if len(value) > limit:
            raise ValueError(f"{label.capitalize()} is te lang (max. {limit} tekens).")
        return value

    @router.post("/cases/{ref}/reply")
    async def reply(ref: str, request: Request) -> Response:
        async def act(session: Session, form: Form) -> str:
            text = text_field(form, "text", "het antwoord")
            channel = form.get("channel") or None
            if channel is not None and not KEY.match(channel):
                raise ValueError("Onbekend kanaal.")
            key = form.get("idempotency_key") or str(uuid.uuid4())
            done = await get_desk().reply(session.agent, ref, text, channel, key[:200])
            if done.get("callback"):
                return "Terugbelactie vastgelegd."
            return f"Antwoord verstuurd via {CHANNEL_WORDS.get(done['channel'], done['channel'])}."

        return await case_action(request, ref, act)

    @router.post("/cases/{ref}/notes")
    async def note(ref: str, request: Request) -> Response:
        async def act(session: Session, form: Form) -> str:
            text = text_field(form, "text", "de notitie", 10_000)
            await get_desk().dossier.note(session.agent.token, ref, text)
            return "Notitie toegevoegd."

        return await case_action(request, ref, act)

    @router.post("/cases/{ref}/transfer")
    async def transfer(ref: str, request: Request) -> Response:
        async def act(session: Session, form: Form) -> str:
            queue = form.get("queue") or ""
            if queue not in get_desk().work_queues:
                raise ValueError("Kies een werkbak.")
            reason = text_field(form, "reason", "de reden", 2000)
            await get_desk().dossier.transfer(session.agent.token, ref, queue, reason)
            return f"Zaak doorgezet naar {queue}: {ref}."

        return await case_action(request, ref, act)

    @router.post("/cases/{ref}/close")
    async def close(ref: str, request: Request) -> Response:
        async def act(session: Session, form: Form) -> str:
            outcome = (form.get("outcome") or "").strip()
            if not KEY.match(outcome):
                raise ValueError("Kies een resultaat.")
            await get_desk().dossier.close(session.agent.token, ref, outcome)
            return f"Zaak gesloten: {ref} ({outcome})."

        return await case_action(request, ref, act)

    return router
