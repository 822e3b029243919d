# Open Kanaal: `make run` runs the suite, `make test` passes the tests.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SOURCES := libs/common/src libs/cli/src $(wildcard services/*/src)

.PHONY: run test lint typecheck pytest sync uv dev-env topology schema

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

test: lint typecheck pytest
