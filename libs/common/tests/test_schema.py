"""The JSON Schemas committed under docs/schema/ are the ones the models produce today."""

from __future__ import annotations

from pathlib import Path

from kanaal.common.commands import schema_files

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_DIR = REPO_ROOT / "docs" / "schema"
HINT = "docs/schema/ is out of date with the contract models: run `uv run kanaal schema`"


def test_every_contract_model_has_its_schema_committed_and_nothing_else_is_there() -> None:
    committed = sorted(path.name for path in SCHEMA_DIR.glob("*.json"))
    assert committed == sorted(schema_files()), HINT


def test_the_committed_schemas_equal_what_the_models_produce() -> None:
    stale = [
        name
        for name, text in schema_files().items()
        if not (SCHEMA_DIR / name).is_file()
        or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"{HINT} (differs: {', '.join(stale)})"
