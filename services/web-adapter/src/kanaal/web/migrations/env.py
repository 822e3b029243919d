"""Alembic's environment for the web adapter: `WebStore.upgrade` runs it at start.

Its version table is `web_alembic_version` (kanaal.common.database.migrate).
"""

from kanaal.common.database import run_migrations
from kanaal.web.store import metadata

run_migrations(metadata)
