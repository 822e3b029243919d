"""`kanaal schema` and `kanaal topology`, as an operator runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from kanaal.cli.main import build_app
from kanaal.common.commands import schema_files
from kanaal.common.config import load_topology

REPO_ROOT = Path(__file__).resolve().parents[3]
UNREACHABLE = "amqp://guest:secret-password@127.0.0.1:1/"


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(REPO_ROOT)
    for name in ("KANAAL_AMQP_URL", "KANAAL_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def test_topology_show_prints_every_queue_name_whole(runner: CliRunner) -> None:
    result = runner.invoke(build_app(), ["topology", "show", "--config-dir", "deploy/config"])
    assert result.exit_code == 0, result.output
    for queue in load_topology(REPO_ROOT / "deploy" / "config").queues:
        assert f" {queue.name} " in result.output
    assert "…" not in result.output  # nothing cropped when the output is not a terminal


def test_topology_show_prints_the_binding_keys(runner: CliRunner) -> None:
    result = runner.invoke(build_app(), ["topology", "show", "--config-dir", "deploy/config"])
    assert result.exit_code == 0, result.output
    assert "kanaal.events [contact.received.*]" in result.output
    assert "kanaal.events [contact.registered.*]" in result.output
    assert "kanaal.work [work.subject.parkeren]" in result.output
    assert "kanaal.outbound [email]" in result.output


def test_topology_show_with_a_bad_config_names_file_key_and_problem(
    runner: CliRunner, tmp_path: Path
) -> None:
    (tmp_path / "channels.yaml").write_text("channels:\n  E-Mail: {}\n", encoding="utf-8")
    (tmp_path / "routing.yaml").write_text("{}\n", encoding="utf-8")
    result = runner.invoke(build_app(), ["topology", "show", "--config-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "configuration error" in result.output
    assert str(tmp_path / "channels.yaml") in result.output
    assert "channels.E-Mail.[key]: String should match pattern '^[a-z][a-z0-9-]{1,31}$'" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_schema_writes_every_contract_schema(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = runner.invoke(build_app(), ["schema", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = {path.name: path.read_text(encoding="utf-8") for path in out.iterdir()}
    assert written == schema_files()
    assert {"contact.v1.json", "contact-registered.v1.json", "work-item.v1.json"} <= set(written)


def test_topology_apply_without_a_broker_says_so_in_one_line_and_exits_1(
    runner: CliRunner,
) -> None:
    result = runner.invoke(build_app(), ["topology", "apply"], env={"KANAAL_AMQP_URL": UNREACHABLE})
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("RabbitMQ is not reachable at amqp://guest:***@127.0.0.1:1/")
    assert "secret-password" not in result.output
    assert "Traceback" not in result.output
