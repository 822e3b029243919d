"""What operators read and import stays true to the code: definitions, compose file, README."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import yaml
from pydantic import SecretStr

from kanaal.common.commands import deployment_definitions
from kanaal.common.settings import SERVICE_PORTS, ServiceSettings

REPO = Path(__file__).resolve().parents[1]
SERVICES = {ep.name: ep.value for ep in entry_points(group="kanaal.services")}


def settings_classes() -> list[type[ServiceSettings]]:
    for module in SERVICES.values():
        importlib.import_module(f"{module}.app")
    return [ServiceSettings, *ServiceSettings.__subclasses__()]


BUILT_IN = {"web", "phone", "counter", "dossier", "email", "router", "sms"}


def settings_class(name: str) -> type[ServiceSettings]:
    """The settings of service `name`: the class with a `<name>_port` setting."""
    for cls in settings_classes():
        if f"{name}_port" in cls.model_fields:
            return cls
    raise AssertionError(f"{name} has no {name}_port setting")


def service_port(name: str) -> int:
    """The default of the service's `<name>_port` setting: the port it listens on."""
    return int(settings_class(name).model_fields[f"{name}_port"].default)


def test_every_built_in_service_is_installed_on_its_design_port() -> None:
    assert set(SERVICES) >= BUILT_IN
    for name in BUILT_IN:
        assert service_port(name) == SERVICE_PORTS[name]


def test_the_committed_rabbitmq_definitions_match_the_topology() -> None:
    committed = (REPO / "deploy/rabbitmq/definitions.json").read_text(encoding="utf-8")
    expected = deployment_definitions(REPO / "deploy/config")
    assert committed == expected, "run `uv run kanaal topology definitions` and commit the file"


def test_the_compose_file_runs_every_service_on_its_port() -> None:
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text(encoding="utf-8"))
    for name, module in SERVICES.items():
        service = compose["services"][name]
        assert service["command"] == ["python", "-m", module]
        port = service_port(name)
        assert f"{port}:{port}" in service["ports"]


def test_the_readme_documents_every_setting() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [
        f"KANAAL_{field.upper()}"
        for cls in settings_classes()
        for field in cls.model_fields
        if f"`KANAAL_{field.upper()}`" not in readme
    ]
    assert not missing, f"README.md's settings table lacks {missing}"


def test_the_compose_file_keeps_every_service_state_on_a_volume_or_in_postgresql() -> None:
    # A container made again (a new image, say) must lose nothing: every setting whose
    # default is a file under var/ (inside the container) is set to PostgreSQL or to a
    # path on a named volume of that service.
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text(encoding="utf-8"))
    for name in SERVICES:
        service = compose["services"][name]
        environment = service.get("environment", {})
        named_volumes = [
            mount.split(":")[1]
            for mount in service.get("volumes", [])
            if not mount.startswith((".", "/"))
        ]
        for field_name, field in settings_class(name).model_fields.items():
            default = field.default
            shown = default.get_secret_value() if isinstance(default, SecretStr) else str(default)
            if not (shown.startswith("var/") or ":///var/" in shown):
                continue
            key = f"KANAAL_{field_name.upper()}"
            value = str(environment.get(key, ""))
            assert value, f"{name}: {key} is not set, so its state stays in the container"
            on_volume = any(
                value == target or value.startswith(f"{target}/") for target in named_volumes
            )
            assert value.startswith("postgresql") or on_volume, f"{name}: {key}={value}"
