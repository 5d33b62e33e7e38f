"""Engines and sessions for the metadata store (SQLite embedded, PostgreSQL configured)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from genai.errors import ConfigError, ConflictError, StoreUnavailable
from genai.files import private_dir, private_file, tighten
from genai.store import schema as _schema

__all__ = ["Store", "mask_url"]

_IMMUTABLE = (
    _schema.Model,
    _schema.Dataset,
    _schema.Adapter,
    _schema.PromptVersion,
    _schema.Deployment,
)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for messages and logs)."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


class Store:
    """The metadata store: one engine, sessions that commit or roll back as a whole."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except exc.ArgumentError as error:
            raise ConfigError(
                f"GENAI_DATABASE_URL {mask_url(url)!r} is not a database URL: use "
                "'sqlite:///path/genai.db' or 'postgresql+psycopg://user@host:5432/db'"
            ) from error
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ConfigError(
                f"unsupported database {self.dialect!r} in {mask_url(url)!r}: "
                "use SQLite or PostgreSQL"
            )
        if self.dialect == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            self.engine: Engine = _make_engine(parsed, pool_size=pool_size)
        except (exc.NoSuchModuleError, ImportError) as error:
            raise ConfigError(
                f"cannot load the database driver {parsed.drivername!r} of {mask_url(url)!r}: "
                "use 'sqlite:///path/genai.db' or 'postgresql+psycopg://user@host:5432/db'"
            ) from error
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except exc.IntegrityError as error:
            raise ConflictError(_integrity_message(error)) from error
        except exc.OperationalError as error:
            if _is_connection_error(error):
                raise self._unavailable(error) from error
            raise

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except exc.OperationalError as error:
            raise self._unavailable(error) from error

    def table_names(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(inspect(conn).get_table_names())

    def dispose(self) -> None:
        self.engine.dispose()

    def _unavailable(self, error: exc.OperationalError) -> StoreUnavailable:
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return StoreUnavailable(
            f"cannot reach the metadata database at {mask_url(self.url)}: {reason}. "
            "Check that the server runs and that GENAI_DATABASE_URL is right"
        )


def _make_engine(url: Any, *, pool_size: int) -> Engine:
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_database(Path(database).expanduser())
        engine = create_engine(
            url, connect_args={"timeout": 30, "check_same_thread": False}, pool_pre_ping=False
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5},
        )
    return engine


def _private_database(path: Path) -> None:
    """The database file created 0600 before SQLite opens it (its ``-wal`` and ``-shm``
    take the file's mode), in directories made 0700; a file an older version left readable
    by others is tightened, with its journal."""
    private_dir(path.parent, tighten_existing=False)  # GENAI_HOME is tightened by genai.init
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the sqlite3 module so writers use BEGIN IMMEDIATE:
    # a deferred transaction that upgrades to a write lock fails at once with "database is
    # locked" under concurrency instead of waiting its turn.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


@event.listens_for(Session, "before_flush")
def _refuse_version_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, _IMMUTABLE) and session.is_modified(obj, include_collections=False):
            raise ConflictError(
                f"{type(obj).__tablename__} {obj.name} version {obj.version} is immutable: "
                "register a new version instead"
            )


def _is_connection_error(error: exc.OperationalError) -> bool:
    text = str(error.orig or error).lower()
    return any(
        marker in text
        for marker in ("connection", "could not connect", "unable to open", "timeout expired")
    )


def _integrity_message(error: exc.IntegrityError) -> str:
    text = str(error.orig or error).strip().splitlines()[0]
    return f"the change conflicts with existing data ({text})"
