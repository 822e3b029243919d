"""The HTTP face every service shows operators: /healthz, /readyz, /metrics, and the runner.

A service builds its FastAPI app with :func:`service_app`, passing its readiness
checks (broker reachable, database reachable, ...), and runs it with :func:`run`.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import uvicorn
from fastapi import APIRouter, FastAPI, Header, HTTPException, Response, status
from fastapi.responses import JSONResponse
from faststream.rabbit import RabbitBroker
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import SecretStr

from kanaal.common.config import load_topology
from kanaal.common.logging import configure_logging, get_logger
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import apply

ReadinessCheck = Callable[[], Awaitable[bool]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

log = get_logger(__name__)


def bearer_matches(authorization: str | None, expected: SecretStr | None) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header."""
    if expected is None or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.get_secret_value().encode()
    )


def broker_check(broker: RabbitBroker) -> ReadinessCheck:
    async def check() -> bool:
        return await broker.ping(timeout=2.0)

    return check


@asynccontextmanager
async def running_broker(broker: RabbitBroker, settings: ServiceSettings) -> AsyncIterator[None]:
    """Declare the topology from the config, start consuming, and drain on the way out."""
    await apply(settings.amqp_url.get_secret_value(), load_topology(settings.config_dir))
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


def operations_router(
    service: str, checks: Mapping[str, ReadinessCheck], metrics_token: SecretStr | None
) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process runs")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", summary="Readiness: broker (and database) reachable")
    async def readyz() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await asyncio.wait_for(check(), timeout=3.0)
            except Exception:  # a check that cannot answer is a failed check
                results[name] = False
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results},
            status_code=status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE,
        )

    @router.get("/metrics", summary="Prometheus metrics")
    async def metrics(authorization: str | None = Header(None)) -> Response:
        if metrics_token is not None and not bearer_matches(authorization, metrics_token):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a bearer token is required")
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router


def service_app(
    service: str,
    settings: ServiceSettings,
    *,
    checks: Mapping[str, ReadinessCheck],
    lifespan: Lifespan,
    **fastapi_args: Any,
) -> FastAPI:
    fastapi_args.setdefault("title", f"Open Kanaal {service}")
    app = FastAPI(lifespan=lifespan, **fastapi_args)
    app.include_router(operations_router(service, checks, settings.metrics_token))
    return app


def broker_service_app(
    service: str,
    settings: ServiceSettings,
    broker: RabbitBroker,
    *,
    checks: Mapping[str, ReadinessCheck] | None = None,
    lifespan: Lifespan | None = None,
    **fastapi_args: Any,
) -> FastAPI:
    """A service around its broker: topology, consume, drain on the way out.

    `lifespan`, when given, runs inside the broker's lifetime (a mailbox poller, a
    database): it starts after the broker and stops before it.
    """

    @asynccontextmanager
    async def broker_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_broker(broker, settings):
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield

    return service_app(
        service,
        settings,
        checks={"broker": broker_check(broker), **(checks or {})},
        lifespan=broker_lifespan,
        **fastapi_args,
    )


def run(service: str, app: FastAPI, settings: ServiceSettings, port: int) -> None:
    """Run a service in the foreground until SIGINT/SIGTERM, logging like everything else."""
    configure_logging(service, settings.log_level, settings.log_format)
    log.info("starting", host=settings.host, port=port)
    # uvicorn re-raises the signal that stopped it once it has shut down cleanly; with
    # these handlers in place that re-raise is a no-op and a clean stop exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.publish_timeout) + 5,
    )
