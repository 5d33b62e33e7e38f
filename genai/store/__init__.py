"""The metadata store: SQLAlchemy 2 tables, sessions and Alembic migrations.

SQLite (WAL, foreign keys on) under ``GENAI_HOME`` by default; PostgreSQL when
``GENAI_DATABASE_URL`` names one.

Its tables are in :mod:`genai.store.schema`.
"""

from genai.store import schema
from genai.store._engine import Store, mask_url
from genai.store._migrate import (
    SCHEMA_REVISION,
    check_schema,
    current_revision,
    head_revision,
    upgrade,
)

__all__ = [
    "SCHEMA_REVISION",
    "Store",
    "check_schema",
    "current_revision",
    "head_revision",
    "mask_url",
    "schema",
    "upgrade",
]
