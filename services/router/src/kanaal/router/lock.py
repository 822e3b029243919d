"""One router per vhost, held with an exclusive queue.

A router knows which work was claimed from what it consumes on `router.events`. Two
routers on one vhost would share that queue, each would see only part of the claims,
and either could escalate work the other saw claimed. So a running router holds
`router.lock`: an exclusive queue, which only one connection can declare and which
RabbitMQ deletes when that connection ends. A second router cannot take it and refuses
to start; a router that crashed frees it at once (its connection dies with it).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import aio_pika
import aio_pika.abc
import aiormq.exceptions

from kanaal.common.logging import get_logger

log = get_logger(__name__)

LOCK_QUEUE: Final = "router.lock"
RETRY_SECONDS: Final = 0.5


class AnotherRouterRuns(RuntimeError):
    """`router.lock` is held by another connection: a router already runs on this vhost."""


class RouterLock:
    """`acquire()` before routing, `release()` after; `lost` is set if the lock goes."""

    def __init__(self, url: str, wait: float) -> None:
        self._url = url
        self._wait = wait
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._releasing = False
        self.lost = asyncio.Event()

    @property
    def held(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def acquire(self) -> None:
        """Take the lock, waiting up to `wait` seconds for a holder that is going away."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        while True:
            connection = await aio_pika.connect(self._url, timeout=10)
            try:
                channel = await connection.channel()
                await channel.declare_queue(
                    LOCK_QUEUE,
                    exclusive=True,
                    durable=False,
                    # An exclusive queue is a classic queue: it holds no messages, only
                    # the lock, and goes with the connection.
                    arguments={"x-queue-type": "classic"},
                )
            except aiormq.exceptions.ChannelLockedResource:
                await connection.close()
                if loop.time() >= deadline:
                    raise AnotherRouterRuns(
                        f"another router holds {LOCK_QUEUE} on this vhost: run exactly one "
                        "router per vhost (two would each see only part of the claims)"
                    ) from None
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except BaseException:
                await connection.close()
                raise
            self._releasing = False
            self.lost.clear()
            self._connection = connection
            connection.close_callbacks.add(self._closed)
            log.info("router lock taken", queue=LOCK_QUEUE)
            return

    def _closed(self, _: Any, exc: BaseException | None = None) -> None:
        if not self._releasing:
            log.error("the router lost its lock (broker connection gone)", error=repr(exc))
            self.lost.set()

    async def release(self) -> None:
        self._releasing = True
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, OSError, TimeoutError):
                await asyncio.wait_for(connection.close(), 10)
