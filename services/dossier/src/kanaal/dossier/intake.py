"""Intake in small batches: many deliveries, one transaction, so throughput holds under load.

Every delivery's handler hands its contact to one :class:`IntakeWriter` and waits for
its own result; the writer takes whatever has gathered (up to `batch_size`) and
registers it in one transaction. Nothing waits for a batch to fill: under light load a
batch is one contact, under heavy load the commits of one batch gather the next. When a
batch fails, its contacts are tried one by one, so one bad contact fails only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence

from kanaal.common.contract import ContactMessage, RegisteredContact
from kanaal.common.logging import get_logger

log = get_logger(__name__)

RegisterMany = Callable[[Sequence[ContactMessage]], Awaitable[list[RegisteredContact | None]]]
Pending = tuple[ContactMessage, asyncio.Future[RegisteredContact | None]]


class IntakeWriter:
    """Serialises intake into batches; `register(contact)` returns once it is committed."""

    def __init__(
        self,
        register_many: RegisterMany,
        batch_size: int,
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._register_many = register_many
        self._batch_size = batch_size
        self._on_committed = on_committed
        self._queue: asyncio.Queue[Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def register(self, contact: ContactMessage) -> RegisteredContact | None:
        if self._task is None or self._task.done():
            raise RuntimeError("the intake writer is not running")
        future: asyncio.Future[RegisteredContact | None] = (
            asyncio.get_running_loop().create_future()
        )
        await self._queue.put((contact, future))
        return await future

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dossier-intake-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.cancel()

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._batch_size and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            batch = [(c, f) for c, f in batch if not f.done()]  # a cancelled handler
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[Pending]) -> None:
        try:
            results = await self._register_many([contact for contact, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception:
            if len(batch) == 1:
                _, future = batch[0]
                log.exception("registering a contact failed")
                _settle(future, error=RuntimeError("registering the contact failed"))
                return
            log.warning("a batch failed; registering its contacts one by one", size=len(batch))
            for pending in batch:
                await self._write([pending])
            return
        self._on_committed()
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[RegisteredContact | None],
    *,
    result: RegisteredContact | None = None,
    error: BaseException | None = None,
) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
