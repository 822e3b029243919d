"""The counter adapter's shell: kiosk check-ins become contacts, desk events become updates.

Kiosks and desks authenticate with their location's token (bearer); a token opens
only its own location's visits.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, status
from pydantic import BaseModel, Field, SecretStr

from kanaal.common.adapter import ChannelAdapter
from kanaal.common.config import CHANNELS_FILE, load_section
from kanaal.common.database import create_engine
from kanaal.common.locks import KeyedLocks
from kanaal.common.logging import get_logger
from kanaal.common.service import bearer_matches
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings
from kanaal.common.topology import Event
from kanaal.counter.config import CounterChannelConfig, secret_from_env
from kanaal.counter.store import VisitStore
from kanaal.counter.visits import (
    CheckIn,
    Conflict,
    DeskEvent,
    Visit,
    VisitError,
    VisitStatus,
    apply_event,
    update_id,
    visit_contact,
)

log = get_logger(__name__)

Clock = Callable[[], datetime]


class CounterSettings(ServiceSettings):
    counter_port: int = Field(SERVICE_PORTS["counter"], description="counter adapter HTTP port")
    counter_database_url: SecretStr = Field(
        SecretStr("sqlite+aiosqlite:///var/counter.db"),
        description="where visits and their state are kept",
    )


class VisitAnswer(BaseModel):
    visit_id: uuid.UUID = Field(description="the visit's id (also its contact id)")
    contact_id: uuid.UUID
    ticket: str
    location: str
    status: VisitStatus


class DeskAnswer(BaseModel):
    visit_id: uuid.UUID
    status: VisitStatus
    update_id: uuid.UUID = Field(description="the id of the contact.updated event")
    duplicate: bool = False


def _unprocessable(message: str, field: str | None) -> HTTPException:
    loc = ["body", field] if field else ["body"]
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, [{"loc": loc, "msg": message, "type": "value_error"}]
    )


def _location_of(authorization: str | None, tokens: Mapping[str, SecretStr | None]) -> str | None:
    """The location whose token this is; every token is compared, in constant time each."""
    found = None
    for location, token in tokens.items():
        if bearer_matches(authorization, token):
            found = location
    return found


def create_app(settings: CounterSettings, clock: Clock = lambda: datetime.now(UTC)) -> FastAPI:
    channel = load_section(
        settings.config_dir / CHANNELS_FILE, CounterChannelConfig, "channels", "counter"
    )
    kiosk_tokens = {k: secret_from_env(v.kiosk_token_env) for k, v in channel.locations.items()}
    desk_tokens = {k: secret_from_env(v.desk_token_env) for k, v in channel.locations.items()}
    for key, location in channel.locations.items():
        for env, token in (
            (location.kiosk_token_env, kiosk_tokens[key]),
            (location.desk_token_env, desk_tokens[key]),
        ):
            if token is None:
                log.warning("token not set: that location's kiosks or desks get 401", env=env)

    engine = create_engine(settings.counter_database_url.get_secret_value())
    store = VisitStore(engine)
    adapter = ChannelAdapter("counter", settings)
    # One lock per visit: a visit's desk events take turns, other visits go on.
    moving = KeyedLocks()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.upgrade()
        try:
            yield
        finally:
            await engine.dispose()

    app = adapter.app(
        checks={"database": store.reachable},
        lifespan=lifespan,
        title="Open Kanaal counter adapter",
        description="Kiosk check-ins and desk events of the counters (balies) per location.",
    )

    @app.post(
        "/api/v1/visits",
        status_code=status.HTTP_201_CREATED,
        response_model=VisitAnswer,
        summary="A visitor checks in at a kiosk",
        responses={401: {}, 403: {}, 503: {}},
    )
    async def check_in(
        body: CheckIn, authorization: Annotated[str | None, Header()] = None
    ) -> VisitAnswer:
        token_location = _location_of(authorization, kiosk_tokens)
        if token_location is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a kiosk's bearer token is required")
        now = clock()
        try:
            contact = visit_contact(body, channel, received_at=now)
        except VisitError as exc:
            raise _unprocessable(str(exc), exc.field) from exc
        if token_location != body.location:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this kiosk belongs to another location")
        visit = Visit(
            id=contact.id,
            location=body.location,
            ticket=body.ticket,
            subject=body.subject,
            status=VisitStatus.WAITING,
            checked_in_at=now,
        )
        try:
            await store.add(visit)
            await adapter.receive(contact)
        except Exception as exc:
            log.exception("check-in failed", contact_id=str(contact.id))
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the check-in could not be accepted right now; please try again",
                headers={"Retry-After": "5"},
            ) from exc
        current = await store.get(contact.id)
        return VisitAnswer(
            visit_id=contact.id,
            contact_id=contact.id,
            ticket=visit.ticket,
            location=visit.location,
            status=current.status if current else VisitStatus.WAITING,
        )

    @app.post(
        "/api/v1/visits/{visit_id}/events",
        response_model=DeskAnswer,
        summary="What happened at the desk: called, served, no_show",
        responses={401: {}, 403: {}, 404: {}, 409: {}, 503: {}},
    )
    async def desk_event(
        visit_id: uuid.UUID,
        body: DeskEvent,
        authorization: Annotated[str | None, Header()] = None,
    ) -> DeskAnswer:
        token_location = _location_of(authorization, desk_tokens)
        if token_location is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a desk's bearer token is required")
        async with moving.hold(str(visit_id)):
            visit = await store.get(visit_id)
            if visit is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, "no such visit")
            if visit.location != token_location:
                raise HTTPException(status.HTTP_403_FORBIDDEN, "the visit is at another location")
            update_key = update_id(visit.id, body)
            if await store.has_update(update_key):
                return DeskAnswer(
                    visit_id=visit.id, status=visit.status, update_id=update_key, duplicate=True
                )
            now = clock()
            try:
                moved, update = apply_event(visit, body, channel, at=now)
            except VisitError as exc:
                raise _unprocessable(str(exc), exc.field) from exc
            except Conflict as exc:
                raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
            try:
                await adapter.publisher.event(
                    Event.CONTACT_UPDATED, update, message_id=update_key, channel="counter"
                )
                await store.record(moved, update_key, body.event, now)
            except Exception as exc:
                log.exception("desk event failed", contact_id=str(visit.id))
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    "the event could not be recorded right now; please send it again",
                    headers={"Retry-After": "5"},
                ) from exc
        log.info("visit moved", contact_id=str(visit.id), status=moved.status.value)
        return DeskAnswer(visit_id=visit.id, status=moved.status, update_id=update_key)

    return app
