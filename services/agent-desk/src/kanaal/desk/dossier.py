"""The dossier's agent API as the desk calls it: always with the agent's own token.

The dossier decides what an agent may do (its roles, the atomic claim); the desk never
acts on a case in its own name. Errors come back as :class:`DossierError` with the
dossier's status and reason, so the desk and the CLI can say what went wrong.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class DossierError(Exception):
    """The dossier said no (status 4xx/5xx) or could not be reached (status 0)."""

    status: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class Stale:
    """A claim the dossier refused because the work item no longer stands for work."""

    reason: str
    holder: str | None


class DossierClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        token: str,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return await self._http.request(
                method,
                f"/api/v1{path}",
                json=json,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise DossierError(0, "unreachable", f"the dossier is unreachable: {exc}") from exc

    async def _json(self, method: str, path: str, token: str, **kwargs: Any) -> Any:
        response = await self._call(method, path, token, **kwargs)
        if response.is_success:
            return response.json()
        raise _error(response)

    async def claim(
        self, token: str, case_ref: str, contact_id: uuid.UUID, queue: str
    ) -> dict[str, Any] | Stale:
        """The claim's result, or :class:`Stale` (409 with a reason); other errors raise."""
        response = await self._call(
            "POST",
            f"/cases/{case_ref}/claim",
            token,
            json={"contact_id": str(contact_id), "queue": queue},
        )
        if response.status_code == 409:
            body = _body(response)
            if isinstance(body, dict) and body.get("stale"):
                return Stale(str(body.get("reason")), body.get("holder"))
        if response.status_code == 404:
            return Stale("unknown", None)
        if not response.is_success:
            raise _error(response)
        result: dict[str, Any] = response.json()
        return result

    async def held_cases(self, token: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/agents/me/cases", token)
        return result

    async def queues_waiting(self, token: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._json("GET", "/queues", token)
        return result

    async def case(self, token: str, case_ref: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/cases/{case_ref}", token)
        return result

    async def party(self, token: str, party_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", f"/parties/{party_id}", token)
        return result

    async def reply(
        self,
        token: str,
        case_ref: str,
        text: str,
        channel: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if channel:
            body["channel"] = channel
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        result: dict[str, Any] = await self._json(
            "POST", f"/cases/{case_ref}/reply", token, json=body, headers=headers
        )
        return result

    async def note(
        self, token: str, case_ref: str, text: str, *, callback: bool = False
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST", f"/cases/{case_ref}/notes", token, json={"text": text, "callback": callback}
        )
        return result

    async def transfer(self, token: str, case_ref: str, queue: str, reason: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST", f"/cases/{case_ref}/transfer", token, json={"queue": queue, "reason": reason}
        )
        return result

    async def close(self, token: str, case_ref: str, outcome: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "POST", f"/cases/{case_ref}/close", token, json={"outcome": outcome}
        )
        return result


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error(response: httpx.Response) -> DossierError:
    body = _body(response)
    detail: Any = body.get("detail") if isinstance(body, dict) else None
    reason = "error"
    if isinstance(detail, dict):
        reason = str(detail.get("reason") or reason)
        detail = detail.get("detail")
    elif isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    text = str(detail or response.reason_phrase)
    if response.status_code >= 500:
        text = f"the dossier answered {response.status_code}: {text}"
    return DossierError(response.status_code, reason, text)
