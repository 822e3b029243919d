"""`kanaal up`: one supervisor that runs every installed service with prefixed logs.

Services are found through the `kanaal.services` entry-point group (name -> module)
and each runs as its own process (`python -m <module>`), as it would in production.
A service that exits on its own is restarted with backoff; Ctrl-C stops all of them
with SIGTERM so each drains in-flight messages before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from kanaal.common.settings import SERVICE_PORTS

console = Console(highlight=False)
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan")
STOP_TIMEOUT = 25.0
MAX_BACKOFF = 30.0


@dataclass(frozen=True)
class ServiceProcess:
    name: str
    module: str
    colour: str

    @property
    def port(self) -> int | None:
        return SERVICE_PORTS.get(self.name)


def installed_services() -> list[ServiceProcess]:
    found = sorted(entry_points(group="kanaal.services"), key=lambda ep: ep.name)
    return [
        ServiceProcess(ep.name, ep.value, COLOURS[i % len(COLOURS)]) for i, ep in enumerate(found)
    ]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks ignored), as `make run` writes var/dev.env."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


async def _pump(service: ServiceProcess, stream: asyncio.StreamReader) -> None:
    width = max(len(s) for s in SERVICE_PORTS) + 1
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        console.print(
            f"[{service.colour}]{service.name:<{width}}|[/] {escape(text)}", soft_wrap=True
        )


async def _supervise(service: ServiceProcess, env: dict[str, str], stop: asyncio.Event) -> None:
    backoff = 1.0
    while not stop.is_set():
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            service.module,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        pump = asyncio.create_task(_pump(service, process.stdout))
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set() and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(waiter, STOP_TIMEOUT)
            except TimeoutError:
                console.print(f"{service.name} did not stop in {STOP_TIMEOUT:.0f}s; killing it")
                process.kill()
                await waiter
        stopper.cancel()
        await pump
        if stop.is_set():
            return
        console.print(
            f"[red]{service.name} exited with {process.returncode}; "
            f"restarting in {backoff:.0f}s[/red]"
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        backoff = min(backoff * 2, MAX_BACKOFF)


async def _run_all(services: list[ServiceProcess], env: dict[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    for service in services:
        where = (
            f"http://{env.get('KANAAL_HOST', '127.0.0.1')}:{service.port}" if service.port else "-"
        )
        console.print(f"[{service.colour}]{service.name}[/] -> {where}  (healthz, readyz, metrics)")
    await asyncio.gather(*(_supervise(s, env, stop) for s in services))
    console.print("all services stopped")


def up(
    only: Annotated[
        list[str] | None, typer.Option("--only", help="run only these services (repeatable)")
    ] = None,
    env_file: Annotated[
        Path | None, typer.Option("--env-file", help="KEY=VALUE file added to the environment")
    ] = None,
) -> None:
    """Run every service in one terminal; Ctrl-C stops all of them cleanly."""
    services = installed_services()
    if only:
        unknown = set(only) - {s.name for s in services}
        if unknown:
            console.print(f"[red]unknown service(s): {', '.join(sorted(unknown))}[/red]")
            raise typer.Exit(2)
        services = [s for s in services if s.name in only]
    env = dict(os.environ)
    if env_file is not None:
        env.update(read_env_file(env_file))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # One terminal for people: readable lines unless JSON is asked for explicitly.
    env.setdefault("KANAAL_LOG_FORMAT", "console")
    asyncio.run(_run_all(services, env))
