"""`kanaal new-adapter`: a new channel adapter whose tests pass as it is born."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kanaal.cli.main import build_app
from kanaal.cli.scaffold import render

REPO = Path(__file__).resolve().parents[3]


def test_the_scaffold_has_package_settings_normaliser_tests_and_readme() -> None:
    files = render("demo", 8090)
    assert set(files) == {
        "pyproject.toml",
        "README.md",
        "src/kanaal/demo/__init__.py",
        "src/kanaal/demo/__main__.py",
        "src/kanaal/demo/app.py",
        "src/kanaal/demo/normalise.py",
        "tests/test_normalise.py",
        "tests/test_contract.py",
    }
    assert 'demo = "kanaal.demo"' in files["pyproject.toml"]
    assert "demo_port: int = Field(8090" in files["src/kanaal/demo/app.py"]
    assert "contract_kit" in files["tests/test_contract.py"]


@pytest.mark.parametrize("name", ["Demo", "d", "de-mo", "9demo"])
def test_a_name_that_is_not_a_slug_is_refused(name: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(build_app(), ["new-adapter", name, "--root", str(tmp_path)])
    assert result.exit_code == 2
    assert not (tmp_path / "services").exists()


def _copy_workspace(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in listed:
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def test_a_fresh_scaffold_passes_its_tests_lint_and_types(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    _copy_workspace(workspace)
    result = CliRunner().invoke(build_app(), ["new-adapter", "demo", "--root", str(workspace)])
    assert result.exit_code == 0, result.output

    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = {
        k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")
    }

    def run(*args: str) -> None:
        done = subprocess.run(
            [uv, *args], cwd=workspace, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, f"uv {' '.join(args)}:\n{done.stdout}\n{done.stderr}"

    run("sync", "--quiet", "--offline")
    run("run", "ruff", "check", "services/demo-adapter")
    run("run", "ruff", "format", "--check", "services/demo-adapter")
    run("run", "mypy", "services/demo-adapter/src")
    run(
        "run",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "services/demo-adapter",
        "tests/test_deploy.py",
    )
