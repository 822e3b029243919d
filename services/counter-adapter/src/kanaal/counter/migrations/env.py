"""Alembic's environment for the counter adapter: `VisitStore.upgrade` runs it at start.

Its version table is `counter_alembic_version` (kanaal.common.database.migrate).
"""

from kanaal.common.database import run_migrations
from kanaal.counter.store import metadata

run_migrations(metadata)
