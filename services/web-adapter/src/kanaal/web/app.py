"""The web adapter's shell: the JSON API, the form and status pages, and answers from outbound.web.

Consumes `outbound.web` (answers for status pages); publishes `contact.received.web`,
`contact.sent.web`/`contact.failed.web`, rejected input on `dead.intake.web` and, when
`channels.web.notify` is set, answer notices on `kanaal.outbound` for the e-mail channel.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, HttpUrl, SecretStr, ValidationError
from starlette.datastructures import UploadFile

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.config import CHANNELS_FILE, ChannelsConfig, ConfigError, load_section
from kanaal.common.contract import CaseStatus
from kanaal.common.database import create_engine
from kanaal.common.logging import get_logger
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.web.attachments import AttachmentRefused, AttachmentStore, Limits, Upload
from kanaal.web.intake import Dossier, WebIntake
from kanaal.web.pages import TOKEN_PATTERN, TooManyRequests, pages_router, too_many_handler
from kanaal.web.safety import BodyLimit, RateLimiter, SecurityHeaders, client_key
from kanaal.web.store import SubmissionConflict, WebStore
from kanaal.web.submission import UnknownSubject, WebChannelConfig, WebMessage

log = get_logger(__name__)

MESSAGE_FIELDS = tuple(WebMessage.model_fields)


class WebSettings(ServiceSettings):
    web_port: int = Field(SERVICE_PORTS["web"], description="web adapter HTTP port")
    dossier_url: HttpUrl = Field(
        HttpUrl(f"http://127.0.0.1:{SERVICE_PORTS['dossier']}"), description="the dossier's API"
    )
    dossier_api_token: SecretStr | None = Field(None, description="bearer token for the dossier")
    web_registration_wait: float = Field(
        2.0, ge=0, le=10, description="seconds POST waits for the case reference"
    )
    web_max_body_bytes: int = Field(256_000, ge=1_000, description="largest accepted request")
    web_max_upload_bytes: int = Field(
        12_000_000, ge=10_000, description="largest request with attachments (multipart)"
    )
    web_max_attachment_bytes: int = Field(5_000_000, ge=1_000, description="largest attachment")
    web_max_attachments: int = Field(5, ge=0, le=20, description="most attachments per message")
    web_attachment_dir: Path = Field(Path("var/web-attachments"), description="attachment store")
    web_database_url: str = Field(
        "sqlite+aiosqlite:///var/web.db", description="status threads, answers (SQLite/PostgreSQL)"
    )
    web_rate_limit: int = Field(10, ge=1, description="messages per client per window")
    web_rate_window: float = Field(60.0, gt=0, description="seconds of the rate limit's window")
    web_public_url: HttpUrl = Field(
        HttpUrl(f"http://127.0.0.1:{SERVICE_PORTS['web']}"),
        description="where citizens reach this service (links in e-mail notices)",
    )
    web_secret_key: SecretStr | None = Field(
        None, description="key for status tokens and form tokens; made and kept in the database"
    )


class Accepted(BaseModel):
    contact_id: uuid.UUID
    case_ref: str | None = Field(None, description="set once the dossier registered the contact")
    status_url: str = Field(description="the status as JSON; its token is the only key to it")
    status_page_url: str = Field(description="the citizen's status page (HTML)")


class Answer(BaseModel):
    text: str
    answered_at: float = Field(description="Unix time")


class MessageStatus(BaseModel):
    status: Literal["received", "registered"] = Field(
        description="received (not yet in the dossier) or registered"
    )
    case_ref: str | None = None
    case_status: CaseStatus | None = None
    answers: list[Answer] = Field(default_factory=list)


def _request_body_doc() -> dict[str, Any]:
    schema = WebMessage.model_json_schema()
    multipart = {
        "type": "object",
        "required": schema.get("required", []),
        "properties": {
            **{name: {"type": "string"} for name in schema["properties"]},
            "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
        },
        "additionalProperties": False,
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schema},
                "multipart/form-data": {"schema": multipart},
            },
        }
    }


def invalid(field: str, message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"loc": ("body", field), "msg": message, "type": kind}])


def create_app(settings: WebSettings) -> FastAPI:
    path = settings.config_dir / CHANNELS_FILE
    channel = load_section(path, WebChannelConfig, "channels", "web")
    if channel.notify is not None:
        email = load_section(path, ChannelsConfig).channels.get("email")
        if email is None or not email.outbound:
            raise ConfigError(path, ["channels.web.notify: needs channels.email.outbound: true"])
    adapter = ChannelAdapter("web", settings)
    store = WebStore(create_engine(settings.web_database_url))
    limits = Limits(
        settings.web_max_attachment_bytes,
        settings.web_max_attachments,
        tuple(channel.attachment_types),
    )
    intake = WebIntake(
        channel,
        adapter,
        store,
        AttachmentStore(settings.web_attachment_dir),
        Dossier(
            str(settings.dossier_url), settings.dossier_api_token, settings.web_registration_wait
        ),
        limits,
        str(settings.web_public_url),
    )
    limiter = RateLimiter(store, settings.web_rate_limit, settings.web_rate_window)
    adapter.on_outbound(intake.deliver)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.upgrade()
        secret = settings.web_secret_key
        key = secret.get_secret_value().encode() if secret else await store.secret_key()
        intake.use_key(key)
        limiter.use_key(key)
        try:
            yield
        finally:
            await store.dispose()

    app = adapter.app(
        checks={"database": store.reachable},
        lifespan=lifespan,
        title="Open Kanaal web adapter",
        description="Send a message to the organisation, and follow it on a status page.",
        docs_url=None,  # Swagger UI needs inline script and a CDN: not under our CSP
        redoc_url=None,
    )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.web_max_body_bytes,
        max_upload_bytes=settings.web_max_upload_bytes,
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_exception_handler(TooManyRequests, too_many_handler(channel.organisation))

    async def rate_limit(request: Request) -> None:
        wait = await limiter.hit(client_key(request.client))
        if wait:
            raise TooManyRequests(wait)

    @app.post(
        "/api/v1/messages",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Send a message to the organisation (JSON, or multipart with attachments)",
        openapi_extra=_request_body_doc(),
        responses={
            409: {"description": "the Idempotency-Key was used for another message"},
            413: {"description": "the request is larger than allowed"},
            415: {"description": "neither JSON nor multipart/form-data"},
            422: {"description": "a field is invalid: `detail` names it and says why"},
            429: {"description": "too many messages from this client; see Retry-After"},
        },
    )
    async def post_message(
        request: Request,
        idempotency_key: Annotated[
            str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")
        ] = None,
    ) -> Accepted:
        await rate_limit(request)
        content_type = request.headers.get("content-type", "").lower()
        uploads: list[Upload] = []
        try:
            if content_type.startswith("application/json"):
                message = WebMessage.model_validate_json(await request.body())
            elif content_type.startswith("multipart/form-data"):
                fields, uploads = await read_multipart(request, settings.web_max_attachments)
                message = WebMessage.model_validate(fields)
            else:
                raise HTTPException(
                    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                    "send application/json, or multipart/form-data with attachments",
                )
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
        try:
            files = await intake.keep_files(uploads)
        except AttachmentRefused as exc:
            raise invalid("attachments", str(exc)) from exc
        try:
            submitted = await intake.submit(message, files, idempotency_key=idempotency_key)
        except UnknownSubject as exc:
            raise invalid("subject", str(exc)) from exc
        except SubmissionConflict as exc:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "this Idempotency-Key or submission_id was used before for another message",
            ) from exc
        return Accepted(
            contact_id=submitted.contact_id,
            case_ref=submitted.case_ref,
            status_url=f"/api/v1/status/{submitted.token}",
            status_page_url=f"/status/{submitted.token}",
        )

    @app.get(
        "/api/v1/status/{token}",
        response_model=MessageStatus,
        summary="Where the message is, and the answers sent through the web channel",
        responses={404: {"description": "no message with this status token"}},
    )
    async def message_status(
        token: Annotated[str, PathParam(pattern=TOKEN_PATTERN, max_length=100)],
    ) -> MessageStatus:
        thread = await store.thread(token)
        if thread is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no message with this status token")
        found = await intake.status(thread)
        return MessageStatus(
            status="registered" if found.registered else "received",
            case_ref=found.case_ref,
            case_status=found.case_status,
            answers=[Answer(text=text, answered_at=at) for at, text in found.answers],
        )

    app.include_router(pages_router(intake, channel, limits, rate_limit, settings))

    @app.exception_handler(RequestValidationError)
    async def validation_failed(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Say which field and why, without echoing the (personal) input back.
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    return app


async def read_multipart(request: Request, max_files: int) -> tuple[dict[str, str], list[Upload]]:
    """The text fields (known names only) and the files under `attachments`."""
    form = await request.form(max_files=max_files, max_fields=30, max_part_size=100_000)
    fields: dict[str, str] = {}
    uploads: list[Upload] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            if name != "attachments":
                raise invalid(name, "files go in the field 'attachments'")
            data = await value.read()
            if value.filename or data:
                uploads.append(Upload(value.filename or "bijlage", data))
        elif name in fields:
            raise invalid(name, "given more than once")
        else:
            fields[name] = value
    return fields, uploads
