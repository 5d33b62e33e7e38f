"""Alembic migrations, run from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import exc, text

from genai.errors import ConfigError
from genai.store._engine import Store, mask_url

__all__ = [
    "SCHEMA_REVISION",
    "check_schema",
    "current_revision",
    "head_revision",
    "lock_schema",
    "upgrade",
]

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

# Alembic is imported where used: every CLI call checks the schema, few migrate it.
_SCRIPTS = Path(__file__).with_name("migrations")
#: The newest migration; a contract test keeps it equal to the scripts' head, so checking
#: the schema on every connect needs no Alembic import.
SCHEMA_REVISION = "0014"
_LOCK_ID = 0x67656E6169  # "genai": serialises concurrent upgrades on PostgreSQL


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(store: Store) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with store.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except exc.OperationalError as error:
        raise store._unavailable(error) from error


def upgrade(store: Store, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to run twice and from two processes at once."""
    from alembic import command

    store.ping()
    config = _config()
    with store.engine.begin() as conn:
        lock_schema(store, conn)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def lock_schema(store: Store, conn: Connection | Session) -> None:
    """Hold the platform's set-up lock until ``conn``'s transaction ends, so that two
    ``genai init`` at once take turns (PostgreSQL; SQLite writers take turns already)."""
    if store.dialect == "postgresql":
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_ID})"))


def check_schema(store: Store) -> None:
    """Raise :class:`ConfigError` unless the database is at the newest migration."""
    try:
        with store.engine.connect() as conn:
            current = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except exc.OperationalError as error:
        if store.dialect == "sqlite" and "no such table" in str(error):
            current = None
        else:
            raise store._unavailable(error) from error
    except exc.ProgrammingError:  # PostgreSQL: relation "alembic_version" does not exist
        current = None
    if current != SCHEMA_REVISION:
        state = "empty" if current is None else f"at revision {current}"
        raise ConfigError(
            f"the metadata database {mask_url(store.url)} is {state}, but this version "
            f"of genai-platform needs revision {SCHEMA_REVISION}: run `genai init` to create "
            "or upgrade it"
        )
