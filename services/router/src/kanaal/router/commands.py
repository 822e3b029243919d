"""`kanaal rules check` and `kanaal rules explain`: routing.yaml, for the people who write it.

Contributed to the `kanaal` command through the `kanaal.cli` entry-point group.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from kanaal.common.config import ROUTING_FILE, ConfigError
from kanaal.common.contract import CaseStatus, ContactMessage, RegisteredContact
from kanaal.common.settings import ServiceSettings
from kanaal.common.topology import urgent_queue_name
from kanaal.router.check import check_text
from kanaal.router.rules import RoutingRules
from kanaal.router.sla import due_at

rules_app = typer.Typer(help="Check routing.yaml and explain its decisions.", no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)

RulesFile = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="routing.yaml to read (default: KANAAL_CONFIG_DIR's)"),
]


def _rules_path(path: Path | None) -> Path:
    return path or ServiceSettings().config_dir / ROUTING_FILE


@rules_app.command("check")
def check_command(file: RulesFile = None) -> None:
    """Report every problem in routing.yaml with its line; exit 1 when there is one."""
    path = _rules_path(file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        console.print(f"[red]{escape(str(path))}: cannot read: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    config, problems = check_text(text)
    for problem in problems:
        key = f" {problem.key}:" if problem.key else ""
        console.print(f"{escape(str(path))}:{problem.line}:{escape(key)} {escape(problem.message)}")
    if config is None:
        console.print(f"[red]{len(problems)} problem(s)[/red]")
        raise typer.Exit(1)
    rules = RoutingRules(config)
    console.print(
        f"{escape(str(path))}: ok, strategy {config.strategy}, {len(config.rules)} rule(s), "
        f"{len(rules.queues)} work queue(s)"
    )


@rules_app.command("explain")
def explain_command(
    contact_json: Annotated[
        Path, typer.Argument(help="a contact (schema v1) or a registered contact, as JSON")
    ],
    file: RulesFile = None,
) -> None:
    """Print which queue a contact goes to, by which rule, and why earlier rules did not match."""
    path = _rules_path(file)
    try:
        rules = RoutingRules.load(path)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    try:
        registered = _registered(json.loads(contact_json.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError) as exc:
        console.print(f"[red]{escape(str(contact_json))}: not a contact: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc

    explanation = rules.explain(registered)
    for name, why in explanation.not_matched:
        console.print(f"  rule {escape(name)}: no ({escape(why)})")
    for note in explanation.notes:
        console.print(f"  {escape(note)}")
    decision = explanation.decision
    queue = urgent_queue_name(decision.queue) if decision.urgent else decision.queue
    console.print(f"decision: {queue} (rule {escape(decision.rule)}, priority {decision.priority})")
    if decision.sla is not None:
        when = due_at(registered.registered_at, decision.sla, rules.config.calendar)
        console.print(f"sla: {decision.sla}, due at {when.isoformat()}")
    steps = [f"{s.queue}" + (f" after {s.sla}" if s.sla else "") for s in decision.escalation]
    console.print("escalation: " + (" -> ".join(steps) if steps else "none"))
    if decision.agent:
        console.print(f"owning agent: {escape(decision.agent)}")


def _registered(data: Any) -> RegisteredContact:
    """A registered contact as the dossier publishes it, or a bare contact on a new case."""
    if isinstance(data, dict) and "contact" in data:
        return RegisteredContact.model_validate(data)
    contact = ContactMessage.model_validate(data)
    return RegisteredContact(
        contact=contact,
        party_id=uuid.UUID(int=0),
        case_ref="K-0000-000000",
        case_status=CaseStatus.OPEN,
        case_is_new=True,
        registered_at=datetime.now(UTC),
    )
