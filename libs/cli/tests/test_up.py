"""`kanaal up`: one supervisor for every service, prefixed logs, Ctrl-C stops all cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kanaal.cli.main import build_app
from kanaal.cli.up import installed_services, read_env_file
from kanaal.common.testing import RabbitVhost, free_port

REPO = Path(__file__).resolve().parents[3]


def test_every_installed_service_is_found() -> None:
    names = {s.name for s in installed_services()}
    assert names >= {"web", "phone", "counter", "dossier", "email", "router", "sms"}


def test_the_kanaal_command_gathers_contributed_subcommands() -> None:
    commands = {c.name for c in build_app().registered_commands}
    groups = {g.name for g in build_app().registered_groups}
    assert {"up", "schema"} <= commands
    assert "topology" in groups


def test_env_file_lines_become_variables(tmp_path: Path) -> None:
    env = tmp_path / "dev.env"
    env.write_text("# comment\n\nKANAAL_X=1\nKANAAL_Y = 'two'\n", encoding="utf-8")
    assert read_env_file(env) == {"KANAAL_X": "1", "KANAAL_Y": "two"}


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def test_up_runs_services_with_prefixed_logs_and_ctrl_c_stops_them(
    rabbit_vhost: RabbitVhost, tmp_path: Path
) -> None:
    router_port, counter_port = free_port(), free_port()
    env = {
        **os.environ,
        "KANAAL_AMQP_URL": rabbit_vhost.url,
        "KANAAL_CONFIG_DIR": str(REPO / "deploy/config"),
        "KANAAL_ROUTER_PORT": str(router_port),
        "KANAAL_COUNTER_PORT": str(counter_port),
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kanaal.cli", "up", "--only", "router", "--only", "counter"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 40
        while not (_ready(router_port) and _ready(counter_port)):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=40) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = log.read_text()
    assert "router" in output
    assert "counter" in output
    assert any(line.startswith("router ") and "|" in line for line in output.splitlines())
    assert "all services stopped" in output
    assert not _ready(router_port)


def test_an_unknown_service_is_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kanaal.cli", "up", "--only", "fax"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown service" in result.stdout
