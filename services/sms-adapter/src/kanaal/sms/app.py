"""The SMS adapter's shell: the gateway webhook, and replies to the gateway's API."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from fastapi import FastAPI, HTTPException, Request, status
from pydantic import Field, HttpUrl, SecretStr, ValidationError

from kanaal.common.adapter import ChannelAdapter, PermanentFailure
from kanaal.common.config import CHANNELS_FILE, load_section
from kanaal.common.contract import ContactMessage
from kanaal.common.messaging import describe_validation_error
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.sms.gateway import (
    SIGNATURE_HEADER,
    InboundSms,
    SmsChannelConfig,
    gateway_request,
    signature_is_valid,
    to_contact,
)


class SmsSettings(ServiceSettings):
    sms_port: int = Field(SERVICE_PORTS["sms"], description="SMS adapter HTTP port")
    sms_webhook_secret: SecretStr | None = Field(
        None, description="HMAC key the gateway signs webhooks with; unset: webhooks refused"
    )
    sms_gateway_url: HttpUrl = Field(
        HttpUrl("http://127.0.0.1:9/messages"), description="the gateway's send endpoint"
    )
    sms_gateway_token: SecretStr | None = Field(None, description="bearer token for the gateway")


def create_app(settings: SmsSettings) -> FastAPI:
    config = load_section(settings.config_dir / CHANNELS_FILE, SmsChannelConfig, "channels", "sms")
    adapter = ChannelAdapter("sms", settings)
    gateway_headers = (
        {"Authorization": f"Bearer {settings.sms_gateway_token.get_secret_value()}"}
        if settings.sms_gateway_token
        else {}
    )

    async def send(reply: ContactMessage) -> str | None:
        try:
            request = gateway_request(reply)
        except ValueError as exc:
            raise PermanentFailure(str(exc)) from exc
        async with httpx.AsyncClient(timeout=10, headers=gateway_headers) as client:
            response = await client.post(str(settings.sms_gateway_url), json=request)
        if response.status_code in (status.HTTP_409_CONFLICT,):
            return None  # the gateway already has this reference: sent before a crash
        if 400 <= response.status_code < 500:
            raise PermanentFailure(f"gateway refused the message ({response.status_code})")
        response.raise_for_status()  # 5xx: temporary, tried again
        sent_id = response.json().get("id")
        return str(sent_id) if sent_id else None

    adapter.on_outbound(send)
    app = adapter.app(title="Open Kanaal SMS adapter")

    @app.post("/api/v1/sms/inbound", status_code=status.HTTP_202_ACCEPTED)
    async def inbound(request: Request) -> dict[str, str]:
        raw = await request.body()
        secret = settings.sms_webhook_secret
        if secret is None or not signature_is_valid(
            raw, request.headers.get(SIGNATURE_HEADER), secret.get_secret_value().encode()
        ):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid or missing signature")
        try:
            contact = to_contact(
                InboundSms.model_validate_json(raw), config, received_at=datetime.now(UTC)
            )
        except ValidationError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, describe_validation_error(exc)
            ) from exc
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        await adapter.accept(contact)
        return {"contact_id": str(contact.id)}

    return app
