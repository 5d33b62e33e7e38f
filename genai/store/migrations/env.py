"""Alembic environment: migrations run on the connection genai.store hands over."""

from __future__ import annotations

from alembic import context

from genai.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached through `alembic` on the command line
    raise RuntimeError("run migrations through `genai init` (genai.store.upgrade)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
