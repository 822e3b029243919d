"""`kanaal new-adapter <name>`: a new channel adapter that passes `make test` as it is born.

It writes `services/<name>-adapter/` (package, settings, a normaliser stub, tests wired to
the contract kit, a README), adds the member to the workspace, the channel to
channels.yaml, the service to the compose file and its settings to the README's table.
"""

from __future__ import annotations

import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template
from typing import Annotated

import typer
from rich.console import Console

from kanaal.common.commands import deployment_definitions

console = Console(highlight=False)

NAME = re.compile(r"^[a-z][a-z0-9]{1,20}$")

TEMPLATES = resources.files("kanaal.cli") / "templates" / "adapter"


def _templates(folder: Traversable = TEMPLATES, prefix: str = "") -> dict[str, str]:
    """Every template file under templates/adapter/, by its path there."""
    found: dict[str, str] = {}
    for entry in folder.iterdir():
        path = f"{prefix}{entry.name}"
        if entry.is_dir():
            found.update(_templates(entry, f"{path}/"))
        elif entry.name.endswith(".tmpl"):
            found[path.removesuffix(".tmpl")] = entry.read_text(encoding="utf-8")
    return found


def render(name: str, port: int) -> dict[str, str]:
    """The new adapter's files, by path relative to its folder."""
    values = {
        "name": name,
        "upper": name.upper(),
        "title": name.capitalize(),
        "cls": name.capitalize(),
        "port": str(port),
    }
    return {
        path.replace("NAME", name): Template(text).substitute(values)
        for path, text in _templates().items()
    }


def _insert_after_last(text: str, pattern: str, addition: str) -> str:
    matches = list(re.finditer(pattern, text, flags=re.MULTILINE))
    if not matches:
        raise ValueError(f"no line matches {pattern!r}")
    end = matches[-1].end()
    return text[:end] + addition + text[end:]


def register(root: Path, name: str, port: int) -> None:
    """Add the member to the workspace, the channel to channels.yaml, compose and README."""
    package = f"kanaal-{name}-adapter"
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    text = _insert_after_last(text, r'^    "kanaal-[a-z0-9-]+",$', f'\n    "{package}",')
    text = _insert_after_last(
        text,
        r"^kanaal-[a-z0-9-]+ = \{ workspace = true \}$",
        f"\n{package} = {{ workspace = true }}",
    )
    text = re.sub(
        r'^(mypy_path = ".*)"$',
        lambda m: f'{m.group(1)}:services/{name}-adapter/src"',
        text,
        flags=re.MULTILINE,
    )
    pyproject.write_text(text, encoding="utf-8")

    channels = root / "deploy/config/channels.yaml"
    channels.write_text(
        channels.read_text(encoding="utf-8").rstrip("\n") + f"\n  {name}:\n    outbound: false\n",
        encoding="utf-8",
    )

    compose = root / "deploy/compose.yaml"
    text = compose.read_text(encoding="utf-8")
    block = (
        f"  {name}:\n    <<: *kanaal\n"
        f'    command: ["python", "-m", "kanaal.{name}"]\n'
        f'    ports: ["{port}:{port}"]\n\n'
    )
    compose.write_text(text.replace("\nvolumes:\n", f"\n{block}volumes:\n", 1), encoding="utf-8")

    definitions = root / "deploy/rabbitmq/definitions.json"
    definitions.write_text(deployment_definitions(root / "deploy/config"), encoding="utf-8")

    readme = root / "README.md"
    rows = (
        f"\n| `KANAAL_{name.upper()}_PORT` | `{port}` | {name}-adapter | HTTP port |"
        f"\n| `KANAAL_{name.upper()}_TOKEN` | unset (inbound refused) | {name}-adapter | "
        "bearer token of the inbound endpoint |"
    )
    readme.write_text(
        _insert_after_last(readme.read_text(encoding="utf-8"), r"^\| `KANAAL_[A-Z_]+` \|.*$", rows),
        encoding="utf-8",
    )


def new_adapter(
    name: Annotated[str, typer.Argument(help="the channel's slug, e.g. sms, whatsapp, kiosk")],
    port: Annotated[int, typer.Option(help="the adapter's HTTP port")] = 8090,
    root: Annotated[Path, typer.Option(help="the workspace root")] = Path("."),
) -> None:
    """Scaffold services/<name>-adapter/: package, settings, normaliser, contract-kit tests."""
    if not NAME.match(name):
        console.print("[red]the name must be 2-21 lower-case letters or digits[/red]")
        raise typer.Exit(2)
    target = root / "services" / f"{name}-adapter"
    if target.exists():
        console.print(f"[red]{target} exists already[/red]")
        raise typer.Exit(2)
    for path, text in render(name, port).items():
        file = target / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    register(root, name, port)
    console.print(f"wrote {target}; run `uv sync` and `make test`, then read its README")
