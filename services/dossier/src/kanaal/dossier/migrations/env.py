"""Alembic's environment for the dossier: migrations run on a connection handed in by the service.

`kanaal.dossier.database.upgrade` opens the connection (and its transaction) and puts
it in `config.attributes["connection"]`; there is no alembic.ini and no offline mode.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kanaal.dossier.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "run the dossier's migrations through kanaal.dossier.database.upgrade(engine)"
    )
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
