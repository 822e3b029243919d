"""Alembic's environment for the phone adapter: `CallStore.upgrade` runs it at start.

Its version table is `phone_alembic_version` (kanaal.common.database.migrate).
"""

from kanaal.common.database import run_migrations
from kanaal.phone.store import metadata

run_migrations(metadata)
