"""`kanaal agent`: the agent desk from a terminal, over the desk's JSON API.

`login` checks the token with the desk and stores it (with the desk's URL) in
`~/.config/kanaal/agent.json`, readable by the user only; `KANAAL_AGENT_TOKEN` and
`KANAAL_DESK_URL` override what is stored. Exit codes a script can use:
0 done, 1 refused (invalid input), 2 wrong usage, 3 not logged in or token refused,
4 no work waiting, 5 at capacity, 6 conflict (another agent has the case, it is closed),
7 no such case, 8 desk or dossier unreachable.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

DEFAULT_URL = "http://127.0.0.1:8087"
EXIT_REFUSED, EXIT_LOGIN, EXIT_EMPTY, EXIT_CAPACITY, EXIT_CONFLICT = 1, 3, 4, 5, 6
EXIT_NOT_FOUND, EXIT_UNREACHABLE = 7, 8

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
agent_app = typer.Typer(
    help="Work as an agent: take the next case, read the customer, answer, transfer, close.",
    no_args_is_help=True,
)


def config_path() -> Path:
    configured = os.environ.get("KANAAL_AGENT_CONFIG")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kanaal" / "agent.json"


def stored() -> dict[str, str]:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def fail(message: str, code: int) -> NoReturn:
    errors.print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def credentials() -> tuple[str, str]:
    saved = stored()
    url = os.environ.get("KANAAL_DESK_URL") or saved.get("desk_url") or DEFAULT_URL
    token = os.environ.get("KANAAL_AGENT_TOKEN") or saved.get("token")
    if not token:
        fail("not logged in: run `kanaal agent login` (or set KANAAL_AGENT_TOKEN)", EXIT_LOGIN)
    return url, token


def call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the desk's API; every failure becomes a message and an exit code."""
    url, token = credentials()
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/api/v1{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"the desk at {url} is unreachable ({exc.__class__.__name__})", EXIT_UNREACHABLE)
    if response.is_success:
        return response.json()
    detail = _detail(response)
    code = {
        401: EXIT_LOGIN,
        403: EXIT_REFUSED,
        404: EXIT_NOT_FOUND,
        409: EXIT_CONFLICT,
        502: EXIT_UNREACHABLE,
        503: EXIT_UNREACHABLE,
    }.get(response.status_code, EXIT_REFUSED)
    fail(f"{detail} (HTTP {response.status_code})", code)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("detail") or detail)
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:])}: {e.get('msg')}" for e in detail
        )
    return str(detail)


@agent_app.command()
def login(
    token: Annotated[str, typer.Option(prompt=True, hide_input=True, help="your agent token")],
    desk_url: Annotated[str, typer.Option(help="the desk's address")] = DEFAULT_URL,
) -> None:
    """Check the token with the desk and store it for the other commands."""
    os.environ["KANAAL_AGENT_TOKEN"] = token.strip()
    os.environ["KANAAL_DESK_URL"] = desk_url
    me = call("GET", "/me")
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        json.dump({"desk_url": desk_url, "token": token.strip()}, file)
    console.print(
        f"logged in as [bold]{escape(me['name'])}[/] ({escape(me['id'])}); token stored in {path}"
    )


@agent_app.command()
def logout() -> None:
    """Forget the stored token."""
    config_path().unlink(missing_ok=True)
    console.print("logged out")


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@agent_app.command()
def queues(
    watch: Annotated[
        float, typer.Option(help="refresh every this many seconds (0: once)", min=0)
    ] = 0,
) -> None:
    """Per work queue: waiting, urgent, oldest waiting, SLA breaches and who serves it."""
    while True:
        rows = call("GET", "/queues")
        table = Table("queue", "waiting", "urgent", "oldest", "SLA breached", "agents")
        for row in rows:
            table.add_row(
                escape(row["queue"]),
                str(row["waiting"]),
                str(row["ready_urgent"]),
                _age(row["oldest_waiting_seconds"]),
                f"[red]{row['sla_breached']}[/]" if row["sla_breached"] else "0",
                escape(", ".join(row["agents"]) or "-"),
            )
        if watch:
            console.clear()
        console.print(table)
        if not watch:
            return
        time.sleep(watch)


@agent_app.command("next")
def take_next(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the case")] = False,
) -> None:
    """Claim the next piece of work from your queues (urgent first, then oldest)."""
    result = call("POST", "/next")
    skipped = sum(result["skipped"].values())
    note = f" ({skipped} stale items skipped)" if skipped else ""
    if result["status"] == "at_capacity":
        fail(
            f"at capacity: you hold {result['held']} of {result['capacity']} cases; "
            "close or transfer one first",
            EXIT_CAPACITY,
        )
    if result["status"] == "empty":
        if not quiet:
            console.print("no work waiting in your queues" + note)
        raise typer.Exit(EXIT_EMPTY)
    if quiet:
        console.print(result["case_ref"])
        return
    console.print(
        f"claimed [bold]{result['case_ref']}[/] from {escape(result['taken_from'])} "
        f"({result['channel']}){note}"
    )


@agent_app.command()
def show(case: Annotated[str, typer.Argument(help="the case, e.g. K-2026-000042")]) -> None:
    """The customer view: the case and its history, the customer's other cases and contacts."""
    view = call("GET", f"/cases/{case}")
    c, party = view["case"], view["party"]
    console.print(
        f"[bold]{c['ref']}[/]  {c['status']}  subject {escape(str(c['subject']))}  "
        f"queue {escape(str(c['queue']))}  agent {escape(str(c['agent']))}"
    )
    console.print(
        f"customer: {escape(party['name'] or 'unknown')}  "
        f"e-mail {escape(', '.join(party['emails']) or '-')}  "
        f"phone {escape(', '.join(party['phones']) or '-')}"
    )
    history = Table("when", "channel", "location", "dir", "text", title="this case")
    for contact in c["contacts"]:
        history.add_row(
            contact["occurred_at"][:16],
            contact["channel"],
            escape(contact.get("location") or "-"),
            "in" if contact["direction"] == "inbound" else "out",
            escape(contact["text"]),
        )
    console.print(history)
    events = Table("when", "what", "who", "detail", title="timeline")
    for event in c["timeline"]:
        data = event["data"]
        detail = data.get("text") or data.get("reason") or data.get("outcome") or data.get("queue")
        events.add_row(
            event["at"][:16],
            event["kind"],
            escape(event["actor"] or "-"),
            escape(str(detail or "")),
        )
    console.print(events)
    contacts = Table(
        "when", "channel", "location", "case", "dir", "text", title="all contacts, newest first"
    )
    for contact in party["contacts"]:
        contacts.add_row(
            contact["occurred_at"][:16],
            contact["channel"],
            escape(contact.get("location") or "-"),
            contact["case_ref"],
            "in" if contact["direction"] == "inbound" else "out",
            escape(contact["text"][:80]),
        )
    console.print(contacts)
    if view["other_cases"]:
        others = Table("case", "status", "subject", "location", "opened", title="other cases")
        for other in view["other_cases"]:
            others.add_row(
                other["ref"],
                other["status"],
                escape(str(other["subject"])),
                escape(str(other.get("location") or "-")),
                other["opened_at"][:10],
            )
        console.print(others)


@agent_app.command()
def reply(
    case: Annotated[str, typer.Argument(help="the case")],
    text: Annotated[str | None, typer.Option(help="the answer")] = None,
    file: Annotated[Path | None, typer.Option(help="read the answer from this file")] = None,
    channel: Annotated[
        str | None, typer.Option(help="default: the customer's channel (phone: a callback)")
    ] = None,
) -> None:
    """Answer the customer; on the phone, record the callback you made."""
    if (text is None) == (file is None):
        fail("give the answer with exactly one of --text and --file", 2)
    body = text if text is not None else Path(str(file)).read_text(encoding="utf-8")
    done = call("POST", f"/cases/{case}/reply", {"text": body, "channel": channel})
    if done.get("callback"):
        console.print(f"callback recorded on {case}")
    else:
        console.print(f"answer to {case} queued for {done['channel']} ({done['contact_id']})")


@agent_app.command()
def transfer(
    case: Annotated[str, typer.Argument(help="the case")],
    queue: Annotated[str, typer.Argument(help="the work queue, e.g. work.central")],
    reason: Annotated[str, typer.Option(help="why, for the next agent")],
) -> None:
    """Move the case to another work queue."""
    done = call("POST", f"/cases/{case}/transfer", {"queue": queue, "reason": reason})
    console.print(f"{case} transferred to {escape(done['queue'])}")


@agent_app.command()
def note(
    case: Annotated[str, typer.Argument(help="the case")],
    text: Annotated[str, typer.Option(help="the note (internal, never sent)")],
) -> None:
    """Add an internal note to the case's timeline."""
    call("POST", f"/cases/{case}/notes", {"text": text})
    console.print(f"note added to {case}")


@agent_app.command()
def close(
    case: Annotated[str, typer.Argument(help="the case")],
    outcome: Annotated[str, typer.Option(help="e.g. beantwoord, opgelost, doorverwezen")],
) -> None:
    """Close the case with an outcome."""
    call("POST", f"/cases/{case}/close", {"outcome": outcome})
    console.print(f"{case} closed: {escape(outcome)}")
