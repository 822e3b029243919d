"""`kanaal schema` and `kanaal topology`: the contract and the topology, for people.

Contributed to the `kanaal` command through the `kanaal.cli` entry-point group.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import aio_pika
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kanaal.common import topology as topo
from kanaal.common.config import ConfigError, load_topology
from kanaal.common.contract import SCHEMAS
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import Topology

SCHEMA_DIR = Path("docs/schema")

console = Console()
ConfigDir = Annotated[
    Path | None,
    typer.Option("--config-dir", help="folder with channels.yaml and routing.yaml"),
]


def schema_files() -> dict[str, str]:
    """Each contract model's JSON Schema, by file name, as committed under docs/schema/."""
    return {
        f"{name}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in SCHEMAS.items()
    }


def schema_command(
    out: Annotated[Path, typer.Option(help="folder to write the schemas to")] = SCHEMA_DIR,
) -> None:
    """Write the JSON Schema of every message to docs/schema/."""
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in schema_files().items():
        (out / filename).write_text(text, encoding="utf-8")
        console.print(f"wrote {out / filename}")


topology_app = typer.Typer(help="Show or declare the RabbitMQ topology.", no_args_is_help=True)


def _topology(config_dir: Path | None) -> Topology:
    settings = ServiceSettings()
    try:
        return load_topology(config_dir or settings.config_dir, router=True)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from exc


@topology_app.command("show")
def show(config_dir: ConfigDir = None) -> None:
    """Print exchanges, queues with their arguments, and bindings."""
    topology = _topology(config_dir)
    exchanges = Table("exchange", "type", title="Exchanges")
    for exchange in topology.exchanges:
        exchanges.add_row(exchange.name, exchange.type.value)
    queues = Table("queue", "type", "delivery limit", "dead letters to", "bound to", title="Queues")
    for queue in topology.queues:
        queues.add_row(
            queue.name,
            queue.queue_type.value,
            str(queue.delivery_limit or "-"),
            queue.dead_letter_key if queue.dead_letter else "-",
            "\n".join(escape(f"{ex.name} [{key}]") for ex, key in queue.bindings),
        )
    # A pipe or a CI log has no width: never crop a queue name to "work.subject.p…" there.
    out = console if console.is_terminal else Console(width=200)
    out.print(exchanges)
    out.print(queues)


@topology_app.command("apply")
def apply_command(config_dir: ConfigDir = None) -> None:
    """Declare the topology on the broker of KANAAL_AMQP_URL (idempotent)."""
    topology = _topology(config_dir)
    url = ServiceSettings().amqp_url.get_secret_value()
    # aiormq logs a failed connect itself, with the raw exception; say it once, plainly.
    aiormq_log = logging.getLogger("aiormq.connection")
    previous_level = aiormq_log.level
    aiormq_log.setLevel(logging.CRITICAL)
    try:
        asyncio.run(topo.apply(url, topology))
    except aio_pika.exceptions.ProbableAuthenticationError as exc:
        console.print(
            f"[red]RabbitMQ refused the login[/red] at {_safe_url(url)}: "
            "check the user and password in KANAAL_AMQP_URL.",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        console.print(
            f"[red]RabbitMQ refused a declaration[/red]: {escape(str(exc))}. An existing queue "
            "has other arguments than the configuration asks for; see the README on changing "
            "a queue's arguments.",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        console.print(
            f"[red]RabbitMQ is not reachable[/red] at {_safe_url(url)} ({type(exc).__name__}). "
            "Start one (e.g. `rabbitmq-server -detached`) or set KANAAL_AMQP_URL.",
            soft_wrap=True,
        )
        raise typer.Exit(1) from exc
    finally:
        aiormq_log.setLevel(previous_level)
    console.print(
        f"declared {len(topology.exchanges)} exchanges and {len(topology.queues)} queues "
        f"on {_safe_url(url)}"
    )


def _safe_url(url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url


DEFINITIONS_FILE = Path("deploy/rabbitmq/definitions.json")


@topology_app.command("definitions")
def definitions_command(
    config_dir: ConfigDir = None,
    out: Annotated[Path, typer.Option(help="file to write")] = DEFINITIONS_FILE,
) -> None:
    """Write the topology as RabbitMQ definitions (deploy/rabbitmq/definitions.json)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(definitions_text(_topology(config_dir)), encoding="utf-8")
    console.print(f"wrote {out}")


def definitions_text(topology: Topology) -> str:
    return json.dumps(topo.definitions(topology), indent=2) + "\n"


def deployment_definitions(config_dir: Path) -> str:
    """The definitions file for a deployment: everything, the router's own queues too."""
    return definitions_text(load_topology(config_dir, router=True))


ASYNCAPI_FILE = Path("docs/asyncapi.yaml")


def asyncapi_command(
    out: Annotated[Path, typer.Option(help="file to write")] = ASYNCAPI_FILE,
) -> None:
    """Write the suite's AsyncAPI document (docs/asyncapi.yaml), generated with FastStream."""
    from kanaal.common.asyncapi import asyncapi_yaml

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(asyncapi_yaml(version("kanaal-common")), encoding="utf-8")
    console.print(f"wrote {out}")
