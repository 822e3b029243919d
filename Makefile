# Open Kanaal: `make run` runs the suite, `make test` passes the tests.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
SOURCES := libs/common/src libs/cli/src $(wildcard services/*/src)

.PHONY: run demo test lint typecheck packages pytest sync uv dev-env topology schema browser-deps

uv:
	@command -v $(UV) >/dev/null 2>&1 || { echo "uv not found: installing it with pip"; \
		python3 -m pip install --quiet --user uv; }

sync: uv
	@$(UV) sync --locked --quiet

# Development secrets, made once; services read them through `kanaal up --env-file`.
# Development secrets, made once; services read them through `kanaal up --env-file`. Every
# token the sample config names by environment variable gets one, plus the SMS webhook key.
DEV_SECRETS := KANAAL_DOSSIER_API_TOKEN KANAAL_METRICS_TOKEN KANAAL_SMS_WEBHOOK_SECRET \
	$(shell sed -n 's/^[^#]*_env: *\(KANAAL_[A-Z0-9_]*\).*/\1/p' deploy/config/*.yaml | sort -u)
var/dev.env:
	@mkdir -p var
	@python3 -c 'import secrets, sys; print("# development secrets made by make run; not for production"); [print(f"{name}={secrets.token_urlsafe(32)}") for name in sys.argv[1:]]' $(DEV_SECRETS) > $@
	@chmod 600 $@
	@echo "development secrets written to $@ (agents, kiosks, desks and the PBX use the tokens there)"

dev-env: var/dev.env

topology: sync
	@$(UV) run kanaal topology apply

run: sync dev-env topology
	@$(UV) run kanaal up --env-file var/dev.env

# The README's walk-through: sample contacts of every channel into the running suite.
demo: sync
	@$(UV) run kanaal demo

schema: sync
	@$(UV) run kanaal schema

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: sync
	$(UV) run mypy $(SOURCES)

# axe-core for the accessibility checks in the browser tests (Chromium itself is Debian's).
browser-deps: tests/browser/node_modules/axe-core/axe.min.js
tests/browser/node_modules/axe-core/axe.min.js: tests/browser/package.json tests/browser/package-lock.json
	@npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	@touch $@

pytest: sync browser-deps
	$(UV) run pytest

# Each member alone, with only what its own pyproject.toml declares: catches an import
# that works in the shared workspace venv only because another member brings it.
# kanaal.common.database needs the extra `kanaal-common[database]`: its users import it.
MEMBERS := $(wildcard libs/* services/*)
packages: sync
	@for dir in $(MEMBERS); do \
		name=$$(sed -n 's/^name = "\(.*\)"/\1/p' $$dir/pyproject.toml | head -1); \
		module=kanaal.$$(ls $$dir/src/kanaal); \
		$(UV) run --quiet --isolated --no-dev --package $$name python -c "import importlib, pkgutil, $$module as m; [importlib.import_module(i.name) for i in pkgutil.walk_packages(m.__path__, m.__name__ + '.') if not i.name.endswith(('.testing', '.testing_mail', '.testing_browser', '.migrations')) and i.name != 'kanaal.common.database' and '.migrations.' not in i.name]" \
			|| { echo "$$name does not import alone: declare its dependencies"; exit 1; }; \
		echo "$$name imports alone"; \
	done

test: lint typecheck packages pytest
