"""The dossier's HTTP API for agents, supervisors and adapters (OpenAPI at /docs).

Every endpoint needs `Authorization: Bearer <token>`: an agent's token from agents.yaml
(roles `agent` and `supervisor`) or the service token `KANAAL_DOSSIER_API_TOKEN`
(role `service`: where a contact landed, a case). No token or an unknown one is 401,
a call beyond the caller's role is 403. BSNs are shown and searched only by callers
with the `read_bsn` permission (supervisors, and agents with `bsn: true`).
"""

# No `from __future__ import annotations` here: the endpoints' dependency aliases are local
# to `api_router`, and FastAPI must see them as objects, not as strings to resolve later.
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StringConstraints

from kanaal.common.contract import MAX_TEXT_CHARS, ChannelSlug, Key, Ref
from kanaal.common.identifiers import normalise_bsn, normalise_phone
from kanaal.dossier.agents import AgentDirectory, AgentId, Caller, Permission, Role
from kanaal.dossier.klantinteracties import render_case
from kanaal.dossier.store import Actor, Conflict, DossierStore, NotFound, Unprocessable
from kanaal.dossier.views import (
    CaseChanged,
    CaseSummary,
    CaseView,
    ClaimResult,
    ContactSummary,
    CustomerView,
    MergeResult,
    NoteAdded,
    PartySummary,
    QueueWaiting,
    ReplyAccepted,
    StaleItem,
)

QueueName = Annotated[str, StringConstraints(pattern=r"^work\.[a-z0-9._-]{1,190}$")]
T = TypeVar("T")
CaseRefPath = Annotated[str, StringConstraints(max_length=32)]


class ClaimRequest(BaseModel):
    """The work item an agent took from a work queue."""

    contact_id: uuid.UUID
    queue: QueueName


class ReplyRequest(BaseModel):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    channel: ChannelSlug | None = Field(None, description="default: the customer's channel")
    entry_point: Ref | None = Field(
        None, description="default: where the customer's last contact on that channel came in"
    )


class TransferRequest(BaseModel):
    queue: QueueName
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


class NoteRequest(BaseModel):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]
    callback: bool = Field(
        False, description="true: a phone callback was made; the text says what was agreed"
    )


class CloseRequest(BaseModel):
    outcome: Key = Field(description="how the case ended, e.g. beantwoord, doorverwezen")


class AssignRequest(BaseModel):
    agent: AgentId


class MergeRequest(BaseModel):
    party_id: uuid.UUID = Field(description="the party to merge into the one in the path")


def api_router(
    store: DossierStore,
    directory: AgentDirectory,
    *,
    work_queues: Iterable[str],
    outbound_channels: Iterable[str],
    agent_ids: Iterable[str] = (),
) -> APIRouter:
    known_queues = frozenset(work_queues)
    can_send = frozenset(outbound_channels)
    known_agents = frozenset(agent_ids)

    def authenticated(authorization: Annotated[str | None, Header()] = None) -> Caller:
        if directory.is_empty:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the dossier API is off: set KANAAL_DOSSIER_API_TOKEN or give agents tokens "
                "in agents.yaml",
            )
        caller = directory.caller(authorization)
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return caller

    def allowed(permission: Permission) -> Callable[[Caller], Caller]:
        def check(caller: Annotated[Caller, Depends(authenticated)]) -> Caller:
            if not caller.may(permission):
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN, f"the {caller.role.value} role may not do this"
                )
            return caller

        return check

    Reader = Annotated[Caller, Depends(allowed(Permission.READ_CASES))]
    PartyReader = Annotated[Caller, Depends(allowed(Permission.READ_PARTIES))]
    Worker = Annotated[Caller, Depends(allowed(Permission.WORK_CASES))]
    Supervisor = Annotated[Caller, Depends(allowed(Permission.SUPERVISE))]

    def actor(caller: Caller) -> Actor:
        return Actor(caller.id, supervisor=caller.role is Role.SUPERVISOR)

    router = APIRouter(prefix="/api/v1", tags=["dossier"], dependencies=[Depends(authenticated)])

    @router.get("/contacts/{contact_id}", summary="Where a contact landed")
    async def get_contact(contact_id: uuid.UUID, _: Reader) -> ContactSummary:
        found = await store.contact_summary(contact_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no contact with this id")
        return found

    @router.get("/cases/{ref}", summary="The case file: contacts, status history, timeline")
    async def get_case(ref: CaseRefPath, _: Reader) -> CaseView:
        found = await store.case_view(ref)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no case with this reference")
        return found

    @router.get("/parties", summary="Find parties by e-mail address, phone number or BSN")
    async def find_parties(
        caller: PartyReader,
        email: Annotated[str | None, Query(max_length=254)] = None,
        phone: Annotated[str | None, Query(max_length=40)] = None,
        bsn: Annotated[str | None, Query(max_length=12)] = None,
    ) -> list[PartySummary]:
        if not (email or phone or bsn):
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, "search by email, phone or bsn"
            )
        if bsn and not caller.may(Permission.READ_BSN):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this role may not search by BSN")
        try:
            phone = normalise_phone(phone) if phone else None
            bsn = normalise_bsn(bsn) if bsn else None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
        return await store.find_parties(email=email, phone=phone, bsn=bsn)

    @router.get("/parties/{party_id}", summary="The uniform customer view")
    async def get_party(party_id: uuid.UUID, caller: PartyReader) -> CustomerView:
        found = await store.customer_view(party_id, with_bsn=caller.may(Permission.READ_BSN))
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no party with this id")
        return found

    @router.post(
        "/parties/{party_id}/merge",
        summary="Merge another party into this one (supervisors)",
        responses={409: {"description": "the parties' strong identifiers conflict"}},
    )
    async def merge(party_id: uuid.UUID, body: MergeRequest, caller: Supervisor) -> MergeResult:
        return await _guarded(store.merge_parties(party_id, body.party_id, actor(caller)))

    @router.post(
        "/cases/{ref}/claim",
        summary="Claim a work item's case: exactly one agent wins",
        response_model=ClaimResult,
        responses={409: {"model": StaleItem, "description": "a stale work item, with why"}},
    )
    async def claim(ref: CaseRefPath, body: ClaimRequest, caller: Worker) -> Any:
        try:
            return await store.claim(ref, actor(caller), body.contact_id, body.queue)
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except Conflict as exc:
            if exc.stale is None:
                raise HTTPException(status.HTTP_409_CONFLICT, exc.detail) from exc
            return JSONResponse(exc.stale.model_dump(mode="json"), status.HTTP_409_CONFLICT)

    @router.post(
        "/cases/{ref}/reply",
        summary="Answer the customer (through kanaal.outbound)",
        status_code=status.HTTP_202_ACCEPTED,
    )
    async def reply(
        ref: CaseRefPath,
        body: ReplyRequest,
        caller: Worker,
        idempotency_key: Annotated[
            str | None, Header(max_length=200, pattern=r"^[\x21-\x7e]+$")
        ] = None,
    ) -> ReplyAccepted:
        return await _guarded(
            store.reply(
                ref,
                actor(caller),
                body.text,
                can_send,
                channel=body.channel,
                entry_point=body.entry_point,
                idempotency_key=idempotency_key,
            )
        )

    @router.post("/cases/{ref}/transfer", summary="Move the case to another work queue")
    async def transfer(ref: CaseRefPath, body: TransferRequest, caller: Worker) -> CaseChanged:
        if body.queue not in known_queues:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"unknown work queue {body.queue!r}; known: {', '.join(sorted(known_queues))}",
            )
        return await _guarded(store.transfer(ref, actor(caller), body.queue, body.reason))

    @router.post(
        "/cases/{ref}/notes",
        summary="An internal note on the timeline, or a phone callback marked done",
        status_code=status.HTTP_201_CREATED,
    )
    async def note(ref: CaseRefPath, body: NoteRequest, caller: Worker) -> NoteAdded:
        return await _guarded(store.note(ref, actor(caller), body.text, callback=body.callback))

    @router.get("/agents/me/cases", summary="The open cases the calling agent holds")
    async def my_cases(caller: Worker) -> list[CaseSummary]:
        return await store.held_cases(caller.id)

    @router.get("/queues", summary="Per work queue: unclaimed cases, oldest, SLA breaches")
    async def queues(_: Worker) -> list[QueueWaiting]:
        return await store.queues_waiting()

    @router.post("/cases/{ref}/close", summary="Close the case with an outcome")
    async def close(ref: CaseRefPath, body: CloseRequest, caller: Worker) -> CaseChanged:
        return await _guarded(store.close(ref, actor(caller), body.outcome))

    @router.post("/cases/{ref}/assign", summary="Give the case to an agent (supervisors)")
    async def assign(
        ref: CaseRefPath, caller: Supervisor, body: Annotated[AssignRequest, Body()]
    ) -> CaseChanged:
        if known_agents and body.agent not in known_agents:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "unknown agent")
        return await _guarded(store.assign(ref, actor(caller), body.agent))

    @router.get(
        "/cases/{ref}/klantinteracties",
        summary="The case's contacts as VNG Klantinteracties resources (for Open Klant)",
    )
    async def klantinteracties(ref: CaseRefPath, caller: PartyReader) -> dict[str, Any]:
        found = await store.case_contacts(ref)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no case with this reference")
        view, contacts = found
        party = await store.customer_view(view.party_id, with_bsn=caller.may(Permission.READ_BSN))
        agents = {c.id: c.agent for c in view.contacts if c.agent}
        return render_case(
            view.ref,
            view.party_id,
            party.name if party else None,
            party.identifiers if party else {},
            contacts,
            agents,
        )

    return router


async def _guarded(operation: Awaitable[T]) -> T:
    try:
        return await operation
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, {"reason": exc.reason, "detail": exc.detail}
        ) from exc
    except Unprocessable as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
