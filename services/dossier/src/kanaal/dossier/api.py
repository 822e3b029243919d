"""The dossier's HTTP API for agents and adapters: read a contact's landing place and a case.

Every endpoint needs `Authorization: Bearer <KANAAL_DOSSIER_API_TOKEN>`; without a
configured token the API is switched off and says so (503).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, status
from pydantic import SecretStr

from kanaal.common.service import bearer_matches
from kanaal.dossier.store import DossierStore
from kanaal.dossier.views import CaseView, ContactSummary


def api_router(store: DossierStore, token: SecretStr | None) -> APIRouter:
    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the dossier API is off: set KANAAL_DOSSIER_API_TOKEN to switch it on",
            )
        if not bearer_matches(authorization, token):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "a valid bearer token is required",
                headers={"WWW-Authenticate": "Bearer"},
            )

    router = APIRouter(prefix="/api/v1", tags=["dossier"], dependencies=[Depends(require_token)])

    @router.get("/contacts/{contact_id}", summary="Where a contact landed")
    async def get_contact(contact_id: uuid.UUID) -> ContactSummary:
        found = await store.contact_summary(contact_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no contact with this id")
        return found

    @router.get("/cases/{ref}", summary="A case with its contacts and timeline")
    async def get_case(ref: str) -> CaseView:
        found = await store.case_view(ref)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no case with this reference")
        return found

    return router
