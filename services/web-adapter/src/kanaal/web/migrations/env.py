"""Alembic's environment for the web adapter: migrations run on a connection handed in.

`kanaal.web.store.WebStore.upgrade` opens the connection and puts it in
`config.attributes["connection"]`; there is no alembic.ini and no offline mode. The
version table has its own name, so the web adapter can share a database with others.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kanaal.web.store import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run the web adapter's migrations through WebStore.upgrade()")
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
