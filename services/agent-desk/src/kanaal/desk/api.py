"""The desk's JSON API (`/api/v1`), what `kanaal agent` talks to: bearer = the agent's token.

No cookies here, so no CSRF: a browser never sends the bearer token by itself.
"""

# No `from __future__ import annotations`: FastAPI must see the dependency aliases as objects.
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, status
from pydantic import BaseModel, Field, StringConstraints

from kanaal.common.config import WorkQueueName
from kanaal.common.contract import MAX_TEXT_CHARS, ChannelSlug, Key
from kanaal.desk.actions import Agent, Desk
from kanaal.desk.dossier import DossierError

T = TypeVar("T")
CaseRef = Annotated[str, StringConstraints(pattern=r"^K-\d{4}-\d{6}$")]


class ReplyBody(BaseModel):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)] = Field(
        max_length=MAX_TEXT_CHARS
    )
    channel: ChannelSlug | None = Field(None, description="default: the customer's channel")


class TransferBody(BaseModel):
    queue: WorkQueueName
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class NoteBody(BaseModel):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class CloseBody(BaseModel):
    outcome: Key


def api_router(get_desk: Callable[[], Desk]) -> APIRouter:
    def agent(authorization: Annotated[str | None, Header()] = None) -> Agent:
        scheme, _, token = (authorization or "").partition(" ")
        found = get_desk().login(token.strip()) if scheme.lower() == "bearer" and token else None
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an agent's token is required (kanaal agent login)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return found

    Me = Annotated[Agent, Depends(agent)]
    router = APIRouter(prefix="/api/v1", tags=["desk"])

    @router.get("/me", summary="Who I am, what I serve, which cases I hold")
    async def me(who: Me) -> dict[str, Any]:
        return await guarded(get_desk().me(who))

    @router.get("/queues", summary="Per work queue: waiting, oldest, SLA breaches, agents")
    async def queues(who: Me) -> list[dict[str, Any]]:
        return await guarded(get_desk().overview(who))

    @router.post("/next", summary="Claim the next piece of work from my queues")
    async def take_next(who: Me) -> dict[str, Any]:
        result = await guarded(get_desk().next(who))
        return result.as_json()

    @router.get("/cases/{ref}", summary="The customer view of a case")
    async def show(ref: CaseRef, who: Me) -> dict[str, Any]:
        return await guarded(get_desk().case(who, ref))

    @router.post("/cases/{ref}/reply", summary="Answer the customer (phone: callback made)")
    async def reply(
        ref: CaseRef,
        body: ReplyBody,
        who: Me,
        idempotency_key: Annotated[
            str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")
        ] = None,
    ) -> dict[str, Any]:
        return await guarded(
            get_desk().reply(
                who, ref, body.text, body.channel, idempotency_key or str(uuid.uuid4())
            )
        )

    @router.post("/cases/{ref}/transfer", summary="Move the case to another work queue")
    async def transfer(ref: CaseRef, body: TransferBody, who: Me) -> dict[str, Any]:
        return await guarded(get_desk().dossier.transfer(who.token, ref, body.queue, body.reason))

    @router.post("/cases/{ref}/notes", summary="An internal note")
    async def note(ref: CaseRef, body: NoteBody, who: Me) -> dict[str, Any]:
        return await guarded(get_desk().dossier.note(who.token, ref, body.text))

    @router.post("/cases/{ref}/close", summary="Close the case with an outcome")
    async def close(ref: CaseRef, body: CloseBody, who: Me) -> dict[str, Any]:
        return await guarded(get_desk().dossier.close(who.token, ref, body.outcome))

    return router


async def guarded(operation: Awaitable[T]) -> T:
    """The dossier's refusal as the same status; unreachable or failing as 502."""
    try:
        return await operation
    except DossierError as exc:
        code = exc.status if 400 <= exc.status < 500 else status.HTTP_502_BAD_GATEWAY
        raise HTTPException(code, {"reason": exc.reason, "detail": exc.detail}) from exc
