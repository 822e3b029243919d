"""The web adapter's shell: the JSON API that turns a submission into a published contact."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, HttpUrl, SecretStr

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.config import CHANNELS_FILE, load_section
from kanaal.common.logging import get_logger
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.web.submission import UnknownSubject, WebChannelConfig, WebMessage, to_contact

log = get_logger(__name__)


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


class Accepted(BaseModel):
    contact_id: uuid.UUID
    case_ref: str | None = Field(None, description="set once the dossier registered the contact")
    status_url: str


class Status(BaseModel):
    contact_id: uuid.UUID
    status: str = Field(description="received (not yet in the dossier) or registered")
    case_ref: str | None = None


def create_app(settings: WebSettings) -> FastAPI:
    channel = load_section(settings.config_dir / CHANNELS_FILE, WebChannelConfig, "channels", "web")
    adapter = ChannelAdapter("web", settings)
    app = adapter.app()
    dossier_headers = (
        {"Authorization": f"Bearer {settings.dossier_api_token.get_secret_value()}"}
        if settings.dossier_api_token
        else {}
    )

    async def registration(contact_id: uuid.UUID) -> dict[str, Any] | None:
        """The dossier's record of the contact, or None while it has not registered it."""
        url = f"{str(settings.dossier_url).rstrip('/')}/api/v1/contacts/{contact_id}"
        async with httpx.AsyncClient(timeout=3.0, headers=dossier_headers) as client:
            response = await client.get(url)
        if response.status_code == status.HTTP_404_NOT_FOUND:
            return None
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    async def wait_for_case_ref(contact_id: uuid.UUID) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.web_registration_wait
        while loop.time() < deadline:
            try:
                found = await registration(contact_id)
            except httpx.HTTPError:
                return None  # the status URL will tell later
            if found is not None:
                return str(found["case_ref"])
            await asyncio.sleep(0.1)
        return None

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.web_max_body_bytes:
            return JSONResponse(
                {"detail": f"request body larger than {settings.web_max_body_bytes} bytes"},
                status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            )
        return await call_next(request)

    @app.post(
        "/api/v1/messages",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        summary="Send a message to the organisation",
    )
    async def post_message(
        message: WebMessage,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Accepted:
        try:
            contact = to_contact(
                message, channel, received_at=datetime.now(UTC), idempotency_key=idempotency_key
            )
        except UnknownSubject as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "subject"], "msg": str(exc), "type": "value_error"}],
            ) from exc
        await adapter.accept(contact)
        return Accepted(
            contact_id=contact.id,
            case_ref=await wait_for_case_ref(contact.id),
            status_url=f"/api/v1/messages/{contact.id}",
        )

    @app.get("/api/v1/messages/{contact_id}", response_model=Status, summary="Where is my message")
    async def message_status(contact_id: uuid.UUID) -> Status:
        try:
            found = await registration(contact_id)
        except httpx.HTTPError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "the status is not available right now"
            ) from exc
        if found is None:
            return Status(contact_id=contact_id, status="received")
        return Status(contact_id=contact_id, status="registered", case_ref=found["case_ref"])

    return app
