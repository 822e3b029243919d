"""The citizen's pages: the contact form at `/` and the status page at `/status/{token}`.

Plain HTML from Jinja2 templates (autoescaped: all text is shown as text), no script,
forms that work without JavaScript, labels and errors next to their fields. Every form
carries a CSRF token and a honeypot field.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from kanaal.common.contract import CaseStatus
from kanaal.common.logging import get_logger
from kanaal.common.settings import ServiceSettings
from kanaal.web.attachments import AttachmentRefused, Limits, Upload
from kanaal.web.intake import WebIntake
from kanaal.web.safety import CSRF_COOKIE, CSRF_FIELD, HONEYPOT_FIELD, CsrfSigner, retry_after
from kanaal.web.store import SubmissionConflict, Thread
from kanaal.web.submission import (
    ReplyMessage,
    UnknownSubject,
    WebChannelConfig,
    WebMessage,
    content_digest,
    form_errors,
)

log = get_logger(__name__)

TOKEN_PATTERN: Final = r"^[A-Za-z0-9_-]{20,100}$"  # noqa: S105 - a pattern, not a secret
FORM_FIELDS: Final = ("name", "email", "phone", "subject", "case_ref", "text")
MONTHS: Final = (
    *("januari", "februari", "maart", "april", "mei", "juni"),
    *("juli", "augustus", "september", "oktober", "november", "december"),
)
ZONE: Final = ZoneInfo("Europe/Amsterdam")
STATUS_LABELS: Final = {
    None: "Ontvangen",
    CaseStatus.OPEN: "Ontvangen, wacht op behandeling",
    CaseStatus.IN_PROGRESS: "In behandeling",
    CaseStatus.CLOSED: "Afgehandeld",
}

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(epoch: float) -> str:
    at = datetime.fromtimestamp(epoch, UTC).astimezone(ZONE)
    return f"{at.day} {MONTHS[at.month - 1]} {at.year} om {at:%H:%M}"


templates.env.filters["when"] = _when


class TooManyRequests(Exception):
    def __init__(self, wait: float) -> None:
        self.wait = wait


def too_many_handler(organisation: str) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TooManyRequests)
        return too_many(request, exc, organisation)

    return handle


def too_many(request: Request, exc: TooManyRequests, organisation: str) -> Response:
    """429 with Retry-After: JSON for the API, a page for people."""
    headers = {"Retry-After": retry_after(exc.wait)}
    minutes = max(1, round(exc.wait / 60))
    if request.url.path.startswith("/api/"):
        return JSONResponse(
            {"detail": f"too many messages from this client; retry in {headers['Retry-After']} s"},
            status_code=429,
            headers=headers,
        )
    return templates.TemplateResponse(
        request,
        "notice.html",
        {
            "organisation": organisation,
            "heading": "Even geduld",
            "message": f"U heeft in korte tijd veel berichten verstuurd. Probeer het over "
            f"{minutes} minuut{'en' if minutes != 1 else ''} opnieuw.",
            "back_href": "/",
            "back_label": "Terug naar het formulier",
        },
        status_code=429,
        headers=headers,
    )


def pages_router(
    intake: WebIntake,
    channel: WebChannelConfig,
    limits: Limits,
    rate_limit: Callable[[Request], Awaitable[None]],
    settings: ServiceSettings,
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    secure_cookie = str(getattr(settings, "web_public_url", "")).startswith("https://")
    accept = ",".join(limits.types)
    kinds = ", ".join(t.split("/")[1].upper() for t in limits.types)
    attachment_hint = (
        f"Ten hoogste {limits.max_count} bestanden van elk ten hoogste "
        f"{limits.max_bytes // 1_000_000} MB ({kinds})."
    )

    def signer() -> CsrfSigner:
        return CsrfSigner(intake.token_for("csrf").encode())

    def render(
        request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh = cookie is None or len(cookie) > 100
        if fresh:
            cookie = CsrfSigner.new_cookie()
        assert cookie is not None
        context = {
            "organisation": channel.organisation,
            "errors": {},
            "values": {},
            "csrf_token": signer().field_for(cookie),
            "submission_id": secrets.token_urlsafe(16),
            "accept": accept,
            "attachment_hint": attachment_hint,
            **context,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, cookie, httponly=True, samesite="strict", secure=secure_cookie
            )
        return response

    def notice(
        request: Request, status_code: int, heading: str, message: str, back: str = "/"
    ) -> Response:
        return render(
            request,
            "notice.html",
            {
                "heading": heading,
                "message": message,
                "back_href": back,
                "back_label": "Terug naar het formulier" if back == "/" else "Terug",
            },
            status_code,
        )

    async def read_form(request: Request) -> tuple[FormData | None, Response | None]:
        """The posted form when its CSRF token is right and its honeypot empty."""
        try:
            form = await request.form(
                max_files=limits.max_count + 1, max_fields=30, max_part_size=100_000
            )
        except HTTPException:
            return None, notice(
                request, 400, "Formulier niet leesbaar", "Het formulier kon niet worden gelezen."
            )
        field = form.get(CSRF_FIELD)
        if not signer().valid(
            request.cookies.get(CSRF_COOKIE), field if isinstance(field, str) else None
        ):
            return None, notice(
                request,
                403,
                "Formulier verlopen",
                "Dit formulier is verlopen of komt niet van onze website. Laad het formulier "
                "opnieuw en verstuur uw bericht nog eens. Zet cookies aan als dat niet helpt.",
            )
        honey = form.get(HONEYPOT_FIELD)
        if isinstance(honey, str) and honey.strip():
            await intake.adapter.reject(
                entry_point=channel.form_id,
                reason="the honeypot field was filled in (an automated submission)",
                kept_at="not kept: the form was answered with 400",
            )
            return None, notice(
                request,
                400,
                "Bericht niet verstuurd",
                "Uw bericht is niet verstuurd, omdat het veld 'Laat dit veld leeg' was ingevuld.",
            )
        return form, None

    async def uploads_of(form: FormData) -> list[Upload]:
        found = []
        for value in form.getlist("attachments"):
            if isinstance(value, UploadFile):
                data = await value.read()
                if value.filename or data:
                    found.append(Upload(value.filename or "bijlage", data))
        return found

    def text_fields(form: FormData, names: tuple[str, ...]) -> dict[str, str]:
        values = {}
        for name in names:
            value = form.get(name)
            if isinstance(value, str):
                values[name] = value
        return values

    @router.get("/", response_class=HTMLResponse)
    async def form_page(request: Request) -> Response:
        return render(request, "form.html", {"subjects": channel.subjects})

    @router.post("/", response_class=HTMLResponse)
    async def form_post(request: Request) -> Response:
        await rate_limit(request)
        form, refused = await read_form(request)
        if refused is not None:
            return refused
        assert form is not None
        values = text_fields(form, FORM_FIELDS)
        given = {k: v for k, v in values.items() if v.strip() or k in ("subject", "text")}
        submission_id = form.get("submission_id")
        errors: dict[str, str] = {}
        message: WebMessage | None = None
        try:
            message = WebMessage.model_validate(given)
        except ValidationError as exc:
            errors.update(form_errors(exc))
        if values.get("subject") not in channel.subjects:
            errors["subject"] = "Kies een onderwerp uit de lijst."
        errors = {name: errors[name] for name in (*FORM_FIELDS, "attachments") if name in errors}
        try:
            files = await intake.keep_files(await uploads_of(form))
        except AttachmentRefused as exc:
            errors["attachments"] = str(exc)
            files = []
        if errors or message is None:
            context = {"subjects": channel.subjects, "errors": errors, "values": values}
            return render(request, "form.html", context, 422)
        # A double click sends the same form twice: one contact. An edited form is another.
        key = None
        if isinstance(submission_id, str) and 0 < len(submission_id) <= 100:
            key = f"form:{submission_id}:{content_digest(message, files)}"
        try:
            submitted = await intake.submit(message, files, idempotency_key=key)
        except (UnknownSubject, SubmissionConflict):
            errors["subject"] = "Kies een onderwerp uit de lijst."
            context = {"subjects": channel.subjects, "errors": errors, "values": values}
            return render(request, "form.html", context, 422)
        return render(
            request,
            "sent.html",
            {"case_ref": submitted.case_ref, "status_path": f"/status/{submitted.token}"},
        )

    async def thread_or_404(request: Request, token: str) -> Thread | Response:
        thread = await intake.store.thread(token) if re.match(TOKEN_PATTERN, token) else None
        if thread is None:
            return notice(
                request,
                404,
                "Pagina niet gevonden",
                "Wij kennen deze statuspagina niet. Controleer of u de hele link heeft "
                "overgenomen.",
            )
        return thread

    async def status_page(
        request: Request,
        token: str,
        thread: Thread,
        *,
        errors: dict[str, str] | None = None,
        values: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        found = await intake.status(thread)
        has_answer = bool(found.answers)
        label = STATUS_LABELS[found.case_status]
        if has_answer and found.case_status is not CaseStatus.CLOSED:
            label = "Beantwoord"
        return render(
            request,
            "status.html",
            {
                "case_ref": found.case_ref,
                "status_label": label,
                "subject": thread.subject,
                "entries": thread.entries,
                "has_answer": has_answer,
                "status_path": f"/status/{token}",
                "replied": request.query_params.get("verstuurd") == "1",
                "errors": errors or {},
                "values": values or {},
            },
            status_code,
        )

    @router.get("/status/{token}", response_class=HTMLResponse)
    async def status_get(request: Request, token: str) -> Response:
        thread = await thread_or_404(request, token)
        if isinstance(thread, Response):
            return thread
        return await status_page(request, token, thread)

    @router.post("/status/{token}/reply", response_class=HTMLResponse)
    async def status_reply(request: Request, token: str) -> Response:
        await rate_limit(request)
        thread = await thread_or_404(request, token)
        if isinstance(thread, Response):
            return thread
        form, refused = await read_form(request)
        if refused is not None:
            return refused
        assert form is not None
        values = text_fields(form, ("text", "submission_id"))
        errors: dict[str, str] = {}
        reply: ReplyMessage | None = None
        try:
            reply = ReplyMessage.model_validate(values)
        except ValidationError as exc:
            errors.update(form_errors(exc))
        try:
            files = await intake.keep_files(await uploads_of(form))
        except AttachmentRefused as exc:
            errors["attachments"] = str(exc)
            files = []
        if errors or reply is None:
            return await status_page(
                request, token, thread, errors=errors, values=values, status_code=422
            )
        with contextlib.suppress(SubmissionConflict):  # the same reply twice: sent once
            await intake.reply(thread, reply, files)
        return RedirectResponse(f"/status/{token}?verstuurd=1#berichten", status_code=303)

    return router
