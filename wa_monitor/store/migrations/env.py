"""Alembic environment: runs on the connection WA Monitor hands it (see store.upgrade)."""

from __future__ import annotations

from alembic import context

from wa_monitor.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
