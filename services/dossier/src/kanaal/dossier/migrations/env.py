"""Alembic's environment for the dossier: `kanaal.dossier.database.upgrade` runs it at start.

Its version table is `alembic_version` (kanaal.common.database.migrate).
"""

from kanaal.common.database import run_migrations
from kanaal.dossier.models import Base

run_migrations(Base.metadata)
