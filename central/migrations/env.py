"""Alembic environment: runs revisions on the connection `central.pg.migrate` hands in."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `central.pg.migrate` runs these revisions
    raise RuntimeError("run migrations through central.pg.migrate(dsn)")
context.configure(connection=connection, target_metadata=None, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
