"""Abuse and safety for a public form: rate limits, CSRF tokens, body limits, strict headers.

The rate limiter counts in the web store (shared by replicas); the CSRF signer is a plain
object (a key in, answers out); the two ASGI middlewares wrap every response and every
request body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE: Final = "kanaal_csrf"
CSRF_FIELD: Final = "csrf_token"
HONEYPOT_FIELD: Final = "website"

#: No script at all, no inline style, nothing from elsewhere; forms post only to us.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # The status page's URL holds its token: never hand it to another site.
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)


class HitCounter(Protocol):
    """Where rate-limit hits are counted (the web store: shared by every replica)."""

    async def count_hit(self, client: str, window: int) -> int: ...

    async def forget_hits(self, before_window: int) -> None: ...


class RateLimiter:
    """At most `limit` messages per client in each window of `window` seconds.

    Counted in the database, so every replica of the adapter shares one count per client
    (fixed windows: at a window's edge a client can send up to twice the limit in a short
    while). A client is known by an HMAC of its address under the adapter's key, never
    the address itself; the counts of past windows are dropped.
    """

    def __init__(
        self,
        counter: HitCounter,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.limit = limit
        self.window = window
        self._counter = counter
        self._clock = clock
        self._key: bytes | None = None
        self._forgot_before = 0

    def use_key(self, key: bytes) -> None:
        self._key = hmac.new(key, b"rate-limit", hashlib.sha256).digest()

    async def hit(self, client: str) -> float:
        """Count one hit; 0 when allowed, else the seconds until the client may try again."""
        if self._key is None:
            raise RuntimeError("the rate limiter has no key yet")
        now = self._clock()
        window = int(now // self.window)
        digest = hmac.new(self._key, client.encode(), hashlib.sha256).hexdigest()
        hits = await self._counter.count_hit(digest, window)
        if window > self._forgot_before:
            self._forgot_before = window  # once a window in each process
            await self._counter.forget_hits(window - 1)
        if hits > self.limit:
            return max((window + 1) * self.window - now, 0.001)
        return 0.0


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class CsrfSigner:
    """Double-submit tokens: a random cookie, and in the form its HMAC under our key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(32)

    def field_for(self, cookie: str) -> str:
        return hmac.new(self._key, f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()

    def valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field or len(cookie) > 100:
            return False
        return hmac.compare_digest(self.field_for(cookie).encode(), field.encode())


class SecurityHeaders:
    """Adds the strict headers to every response; pages also get `Cache-Control: no-store`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Refuses a request body over its limit with 413, whether it says its length or not.

    Multipart bodies (uploads) have their own, larger limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.max_upload_bytes if content_type.startswith("multipart/") else self.max_bytes
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, send, limit)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _too_large(scope, send, limit)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    path: str = scope.get("path", "")
    if path.startswith("/api/"):
        body = json.dumps(
            {
                "detail": [
                    {
                        "loc": ["body"],
                        "msg": f"request body larger than {limit} bytes",
                        "type": "too_large",
                    }
                ]
            }
        ).encode()
        content_type = b"application/json"
    else:
        body = (
            '<!doctype html><html lang="nl"><head><meta charset="utf-8">'
            "<title>Te groot - bericht niet verstuurd</title>"
            '<link rel="stylesheet" href="/static/kanaal.css"></head><body><main>'
            "<h1>Uw bericht is te groot</h1>"
            f"<p>Een bericht met bijlagen mag samen ten hoogste {limit // 1_000_000} MB zijn. "
            "Ga terug en verstuur minder of kleinere bijlagen.</p>"
            '<p><a href="/">Terug naar het formulier</a></p></main></body></html>'
        ).encode()
        content_type = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def client_key(scope_client: Any) -> str:
    """The rate limit's key: the client's address (uvicorn applies trusted proxy headers)."""
    return str(scope_client.host) if scope_client is not None else "unknown"
