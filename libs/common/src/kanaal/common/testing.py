"""Pytest fixtures that start and clean up the real parts: a RabbitMQ vhost, a PostgreSQL database.

Loaded as a pytest plugin (entry point `pytest11`), so every package's tests and the
cross-service tests share them. Each test gets its own vhost or database, so the
suite can run against a broker and a database server that other things use.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aio_pika
import pytest
import uvicorn

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from kanaal.common.contract import ContactMessage
    from kanaal.common.contract_kit import ContractKit

RABBIT_HOST = os.environ.get("KANAAL_TEST_RABBIT_HOST", "127.0.0.1")
RABBIT_PORT = int(os.environ.get("KANAAL_TEST_RABBIT_PORT", "5672"))
POSTGRES_ADMIN_URL = os.environ.get(
    "KANAAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


RABBIT_MANAGEMENT = os.environ.get("KANAAL_TEST_RABBIT_MANAGEMENT", "http://127.0.0.1:15672")


def _rabbitmqctl(*args: str) -> None:
    exe = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=120)


def _management(method: str, path: str, body: bytes | None = None) -> None:
    """One call to RabbitMQ's management API as guest; raises OSError when it is not there."""
    request = urllib.request.Request(  # noqa: S310 - a fixed http URL on this machine
        f"{RABBIT_MANAGEMENT}/api/{path}", data=body, method=method
    )
    request.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def _add_vhost(name: str) -> None:
    """Through the management API when it is enabled (fast), else with rabbitmqctl."""
    try:
        _management("PUT", f"vhosts/{quote(name, safe='')}")
        _management(
            "PUT",
            f"permissions/{quote(name, safe='')}/guest",
            b'{"configure": ".*", "write": ".*", "read": ".*"}',
        )
    except OSError:
        _rabbitmqctl("add_vhost", name)
        _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")


def _delete_vhost(name: str) -> None:
    try:
        _management("DELETE", f"vhosts/{quote(name, safe='')}")
    except OSError:
        _rabbitmqctl("delete_vhost", name)


@dataclass(frozen=True)
class RabbitVhost:
    """A throw-away vhost on the real broker and the URL that reaches it."""

    name: str
    url: str

    async def connect(self) -> aio_pika.abc.AbstractRobustConnection:
        return await aio_pika.connect_robust(self.url, timeout=10)

    async def get(self, queue: str, timeout: float = 10.0) -> aio_pika.abc.AbstractIncomingMessage:
        """Wait until `queue` holds a message, take it and ack it."""
        found = await self.wait_for(queue, 1, timeout)
        return found[0]

    async def wait_for(
        self, queue: str, count: int, timeout: float = 10.0, settle: float = 0.0
    ) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Take (and ack) messages from `queue` until `count` arrived or `timeout` passed.

        With `settle`, keep listening that long after `count` arrived, so that a
        test can see a duplicate that should not be there.
        """
        messages: list[aio_pika.abc.AbstractIncomingMessage] = []
        connection = await self.connect()
        async with connection:
            channel = await connection.channel()
            declared = await channel.get_queue(queue, ensure=True)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            settle_until: float | None = None
            while loop.time() < deadline:
                message = await declared.get(no_ack=False, fail=False)
                if message is None:
                    if settle_until is not None and loop.time() >= settle_until:
                        break
                    await asyncio.sleep(0.05)
                    continue
                await message.ack()
                messages.append(message)
                if len(messages) >= count and settle_until is None:
                    settle_until = loop.time() + settle
                    if settle == 0:
                        break
        return messages


@pytest.fixture
def rabbit_vhost() -> Iterator[RabbitVhost]:
    """A fresh vhost on the local RabbitMQ, deleted after the test."""
    name = f"kanaal-test-{uuid.uuid4().hex[:12]}"
    try:
        _add_vhost(name)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot create a RabbitMQ vhost: {exc}")
    url = f"amqp://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/{quote(name, safe='')}"
    yield RabbitVhost(name, url)
    _delete_vhost(name)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy asyncpg URL), dropped after the test."""
    asyncpg = pytest.importorskip("asyncpg")
    name = f"kanaal_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection: Any = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file (its folder not made yet) and on a fresh PostgreSQL
    database (:func:`postgres_url`)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'var' / 'state.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def amqp_channel(rabbit_vhost: RabbitVhost) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A publisher-confirming channel on the test vhost."""
    connection = await rabbit_vhost.connect()
    async with connection:
        yield await connection.channel(publisher_confirms=True)


_sample_refs = itertools.count(1)


def sample_contact(**fields: Any) -> ContactMessage:
    """A valid inbound web contact about parkeren; each call is a new source item unless
    `source_ref` is given. Any field can be set: `sample_contact(channel="email", ...)`."""
    from kanaal.common.contract import ContactMessage

    fields.setdefault("channel", "web")
    fields.setdefault("entry_point", "form-contact")
    fields.setdefault("source_ref", f"sample-{uuid.uuid4().hex[:8]}-{next(_sample_refs)}")
    fields.setdefault("received_at", datetime.now(UTC))
    fields.setdefault("subject", "parkeren")
    fields.setdefault("text", "Mijn parkeervergunning is verlopen.")
    return ContactMessage.new(**fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serve_app(app: ASGIApp) -> AsyncIterator[str]:
    """Serve an ASGI app (with its lifespan) on a free local port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:  # uvicorn offers no started event
                if task.done():
                    task.result()
                    raise RuntimeError("the app stopped while starting")
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class RunningService:
    """A service started as its own process, as `kanaal up` starts it, with its log in a file."""

    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for a clean exit; kill if it hangs. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_service(
    name: str,
    module: str,
    port: int,
    env: dict[str, str],
    log_dir: Path,
    ready_timeout: float = 40,
    *,
    wait_ready: bool = True,
) -> RunningService:
    """Start `python -m module` and wait until its /readyz answers 200.

    With `wait_ready=False`, only until it serves HTTP (/healthz answers): for a test of a
    service that must stay not ready.
    """
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    service = RunningService(name, port, log_path, process)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{service.log()[-8000:]}")
        try:
            probe = f"{service.url}/readyz" if wait_ready else f"{service.url}/healthz"
            with urllib.request.urlopen(probe, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return service
        except OSError:
            pass
        time.sleep(0.2)
    service.stop()
    raise RuntimeError(f"{name} not ready within {ready_timeout}s:\n{service.log()[-8000:]}")


@pytest.fixture
def contract_kit(rabbit_vhost: RabbitVhost) -> Callable[[str], Awaitable[ContractKit]]:
    """`await contract_kit("sms")`: the contract test kit for one channel on a fresh vhost.

    The topology (with `dead.intake.<channel>`) is declared before the kit is handed out.
    """
    from kanaal.common.contract_kit import ContractKit
    from kanaal.common.topology import Topology, apply

    async def make(channel: str) -> ContractKit:
        await apply(rabbit_vhost.url, Topology.build([channel], [], [channel]))
        return ContractKit(rabbit_vhost.url, channel)

    return make
