"""The phone adapter's shell: CTI webhooks and callback requests in, one contact per call out.

Every CTI event is kept in the call store before the exchange gets its 200; a call is
published once its outcome is known (see `call.py`), by the request that completes it
or by the sweeper, which also publishes what a crash or a broker outage left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request, status
from pydantic import BaseModel, Field, SecretStr

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.config import CHANNELS_FILE, load_section
from kanaal.common.database import create_engine
from kanaal.common.locks import KeyedLocks
from kanaal.common.logging import get_logger
from kanaal.common.service import bearer_matches
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.phone.call import fold, is_due, to_contact
from kanaal.phone.callbacks import CallbackRequest, UnknownSubject, callback_contact
from kanaal.phone.config import PhoneChannelConfig, secret_from_env
from kanaal.phone.cti import (
    MalformedEvent,
    openapi_body,
    parse_body,
    parse_event,
    signature_matches,
)
from kanaal.phone.store import CallStore

log = get_logger(__name__)

MAX_BODY_BYTES = 64_000
Clock = Callable[[], datetime]


class PhoneSettings(ServiceSettings):
    phone_port: int = Field(SERVICE_PORTS["phone"], description="phone adapter HTTP port")
    phone_database_url: SecretStr = Field(
        SecretStr("sqlite+aiosqlite:///var/phone.db"),
        description="where call events are kept until the call is published",
    )
    phone_hangup_settle: float = Field(
        3.0, ge=0, description="seconds after a hangup to wait for late events of the call"
    )
    phone_call_timeout: float = Field(
        14_400, gt=0, description="seconds after which a call without hangup is published"
    )
    phone_sweep_interval: float = Field(
        2.0, gt=0, description="seconds between passes that publish due calls"
    )
    phone_retention_days: float = Field(
        7, gt=0, description="days call events are kept after the call was published"
    )


class CtiAnswer(BaseModel):
    status: str = Field(description="recorded, or duplicate for an event seen before")
    call: str = Field(description="open, or published once the call's contact is out")


class CallbackAccepted(BaseModel):
    contact_id: uuid.UUID


def create_app(settings: PhoneSettings, clock: Clock = lambda: datetime.now(UTC)) -> FastAPI:
    channel = load_section(
        settings.config_dir / CHANNELS_FILE, PhoneChannelConfig, "channels", "phone"
    )
    cti_token = secret_from_env(channel.cti.token_env)
    hmac_key = secret_from_env(channel.cti.hmac_key_env)
    callback_token = secret_from_env(channel.callbacks.token_env)
    if channel.cti.hmac_key_env and hmac_key is None:
        raise SystemExit(f"{channel.cti.hmac_key_env} is named in channels.yaml but not set")
    for name, secret in (
        (channel.cti.token_env, cti_token),
        (channel.callbacks.token_env, callback_token),
    ):
        if secret is None:
            log.warning("token not set: its endpoint answers 503", env=name)

    engine = create_engine(settings.phone_database_url.get_secret_value())
    store = CallStore(engine)
    adapter = ChannelAdapter("phone", settings)
    settle = timedelta(seconds=settings.phone_hangup_settle)
    timeout = timedelta(seconds=settings.phone_call_timeout)
    # One lock per call: a call's events and the sweeper take turns, other calls go on.
    locks = KeyedLocks()

    async def publish_if_due(call_id: str) -> bool:
        """Publish the call's contact when its outcome is known; True once it is out."""
        async with locks.hold(call_id):
            if await store.is_published(call_id):
                return True
            call = fold(await store.events(call_id))
            now = clock()
            if not is_due(call, now, settle=settle, timeout=timeout):
                return False
            contact = to_contact(call, channel, received_at=now)
            await adapter.receive(contact)
            await store.mark_published(call_id, str(contact.id), now)
            log.info(
                "call published",
                contact_id=str(contact.id),
                outcome=contact.channel_data.get("outcome"),
                callback=contact.channel_data.get("callback"),
            )
            return True

    async def sweep_once() -> None:
        now = clock()
        for call_id in await store.candidates(now - settle, now - timeout):
            try:
                await publish_if_due(call_id)
            except Exception:
                log.exception("publishing a call failed; the next pass tries again")
        await store.purge(now - timedelta(days=settings.phone_retention_days))

    async def sweep_forever() -> None:
        while True:
            try:
                await sweep_once()
            except Exception:
                log.exception("sweep failed; trying again")
            await asyncio.sleep(settings.phone_sweep_interval)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.upgrade()
        sweeper = asyncio.create_task(sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await engine.dispose()

    app = adapter.app(
        checks={"database": store.reachable},
        lifespan=lifespan,
        title="Open Kanaal phone adapter",
        description="Generic CTI (Zammad-compatible) call events and callback requests.",
    )

    @app.post(
        "/api/v1/cti/{token}",
        response_model=CtiAnswer,
        summary="A call event from the telephone exchange (Generic CTI)",
        responses={401: {"description": "unknown token or bad signature"}, 422: {}},
        openapi_extra={"requestBody": openapi_body()},
    )
    async def cti_event(
        token: str,
        request: Request,
        content_type: Annotated[str | None, Header()] = None,
    ) -> CtiAnswer:
        if cti_token is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "CTI is not configured")
        if not hmac.compare_digest(token.encode(), cti_token.get_secret_value().encode()):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token")
        raw = await _body(request)
        if hmac_key is not None and not signature_matches(
            raw,
            request.headers.get(channel.cti.signature_header),
            hmac_key.get_secret_value().encode(),
        ):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid signature")
        try:
            event = parse_event(
                parse_body(raw, content_type),
                received_at=clock(),
                ivr_field=channel.cti.ivr_field,
                region=channel.region,
            )
        except MalformedEvent as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        try:
            fresh = await store.add(event)
        except Exception as exc:
            log.exception("keeping a call event failed")
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "the event could not be kept; send it again"
            ) from exc
        log.info("call event kept", kind=event.kind.value, fresh=fresh)
        try:
            published = await publish_if_due(event.call_id)
        except Exception:
            # The event is kept: the sweeper publishes the call once the broker is back.
            log.exception("publishing the call failed; the sweeper will retry")
            published = False
        return CtiAnswer(
            status="recorded" if fresh else "duplicate", call="published" if published else "open"
        )

    @app.post(
        "/api/v1/callbacks",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=CallbackAccepted,
        summary="Ask to be called back (website, IVR)",
        responses={401: {"description": "a bearer token is required"}},
    )
    async def request_callback(
        body: CallbackRequest, authorization: Annotated[str | None, Header()] = None
    ) -> CallbackAccepted:
        if callback_token is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "callbacks are not configured")
        if not bearer_matches(authorization, callback_token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid bearer token is required")
        try:
            contact = callback_contact(body, channel, received_at=clock())
        except UnknownSubject as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                [{"loc": ["body", "subject"], "msg": str(exc), "type": "value_error"}],
            ) from exc
        await adapter.accept(contact)
        return CallbackAccepted(contact_id=contact.id)

    app.state.sweep_once = sweep_once
    return app


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "request body too large")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "request body too large")
    return raw
