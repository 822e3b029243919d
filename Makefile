# Open Kanaal: `make run` runs the suite, `make test` passes the tests.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SOURCES := libs/common/src libs/cli/src $(wildcard services/*/src)

.PHONY: run test lint typecheck packages pytest sync uv dev-env topology schema

uv:
	@command -v $(UV) >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; \
		python3 -m pip install --quiet --user uv; }

sync: uv
	@$(UV) sync --locked --quiet

# Development secrets, made once; services read them through `kanaal up --env-file`.
var/dev.env:
	@mkdir -p var
	@python3 -c 'import secrets; print("# development secrets made by make run; not for production"); print("KANAAL_DOSSIER_API_TOKEN=" + secrets.token_urlsafe(32)); print("KANAAL_METRICS_TOKEN=" + secrets.token_urlsafe(32))' > $@
	@chmod 600 $@
	@echo "development secrets written to $@"

dev-env: var/dev.env

topology: sync
	@$(UV) run kanaal topology apply

run: sync dev-env topology
	@$(UV) run kanaal up --env-file var/dev.env

schema: sync
	@$(UV) run kanaal schema

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: sync
	$(UV) run mypy $(SOURCES)

pytest: sync
	$(UV) run pytest

# Each member alone, with only what its own pyproject.toml declares: catches an import
# that works in the shared workspace venv only because another member brings it.
MEMBERS := $(wildcard libs/* services/*)
packages: sync
	@for dir in $(MEMBERS); do \
		name=$$(sed -n 's/^name = "\(.*\)"/\1/p' $$dir/pyproject.toml | head -1); \
		module=kanaal.$$(ls $$dir/src/kanaal); \
		$(UV) run --quiet --isolated --no-dev --package $$name python -c "import importlib, pkgutil, $$module as m; [importlib.import_module(i.name) for i in pkgutil.walk_packages(m.__path__, m.__name__ + '.') if not i.name.endswith(('.testing', '.testing_mail', '.migrations')) and '.migrations.' not in i.name]" \
			|| { echo "$$name does not import alone: declare its dependencies"; exit 1; }; \
		echo "$$name imports alone"; \
	done

test: lint typecheck packages pytest
