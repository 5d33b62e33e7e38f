"""Shared fixtures: real SQLite and PostgreSQL stores, Redis, and a loopback-only network.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) tests skip when
the servers are missing on a developer's machine, and fail under ``CI=true``.

A test that takes ``db_url`` (or ``settings``, ``platform``) runs on SQLite and PostgreSQL;
a module whose behaviour does not depend on the database says
``pytestmark = pytest.mark.sqlite_only``. Time: ``clock`` is a ``ManualClock`` to inject
instead of sleeping, ``wait_until`` a bounded poll (tests/_clocks.py; no test asserts on
wall-clock time: tests/contracts/test_no_wall_clock.py). ``free_port`` and the helpers of
tests/_servers.py start servers on loopback. The gateway's fixtures (``gateway_server``,
``project``, ``model_server``, ``admin_world``, ``fake_upstream``) are in
tests/integration/conftest.py.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _clocks import ManualClock, wait_until
from _servers import free_port

if TYPE_CHECKING:
    from genai import Client, Settings

PG_ADMIN_URL = os.environ.get("GENAI_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GENAI_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"}


def _guard_network() -> None:
    """Tests reach nothing but loopback: a connect elsewhere raises at once."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host not in _LOOPBACK:
                raise ConnectionRefusedError(f"tests may only reach loopback, not {address!r}")
        return original(self, address)

    # A method patched on socket.socket, so `self` is one (the stub's slot is its base's,
    # _socket.socket's, hence the assignment code).
    socket.socket.connect = connect  # type: ignore[method-assign,assignment]


def pytest_configure(config: pytest.Config) -> None:
    _guard_network()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GENAI_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("GENAI_"):
            monkeypatch.delenv(name)


def _unreachable(what: str, error: Exception) -> None:
    message = f"{what} is unreachable ({error}); it is mandatory under CI=true"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A SQLAlchemy URL of a fresh, empty PostgreSQL schema, dropped afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as error:
        _unreachable(f"PostgreSQL at {PG_ADMIN_URL}", error)
    schema = f"genai_t_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        base = PG_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        try:  # the connections are named after the schema: closed with it, below
            yield f"{base}?options=-csearch_path%3D{schema}&application_name={schema}"
        finally:
            # a pool the test left open (an engine still referenced somewhere) would keep
            # its connections for the rest of the session: a worker running many
            # PostgreSQL tests then meets "too many clients"
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (schema,),
            )
            _drop_schema(admin, schema)


def _drop_schema(admin: Any, schema: str, attempts: int = 5) -> None:
    """DROP SCHEMA, again when PostgreSQL picks it as a deadlock's victim: a connection the
    test left to a background thread (a ledger or cache writer finishing its last write)
    may still hold a lock on one of the schema's tables when the test ends."""
    import psycopg

    for attempt in range(attempts):
        try:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``db_url`` runs on SQLite and on PostgreSQL, unless it (or its
    module: ``pytestmark = pytest.mark.sqlite_only``) is marked ``sqlite_only``, or it
    parametrizes ``db_url`` itself (``indirect=True``, with "sqlite" or "postgresql")."""
    if "db_url" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only") is not None:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
        if "db_url" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    metafunc.parametrize("db_url", DATABASES, indirect=True)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLAlchemy URL of an empty database: SQLite under the test's tmp_path, or a fresh
    PostgreSQL schema (see ``pytest_generate_tests`` for which a test gets)."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'genai.db'}"


@pytest.fixture
def redis_url() -> str:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as error:
        _unreachable(f"Redis at {REDIS_URL}", error)
    return REDIS_URL


@pytest.fixture(name="wait_until", scope="session")
def _wait_until() -> Callable[..., bool]:
    """The bounded polling helper of tests/_clocks.py (``from _clocks import wait_until``
    works too)."""
    return wait_until


@pytest.fixture(name="free_port", scope="session")
def _free_port() -> Callable[[], int]:
    """``free_port()``: a loopback port nothing listens on now (tests/_servers.py)."""
    return free_port


@pytest.fixture
def clock() -> ManualClock:
    """A clock that moves only by ``clock.advance(seconds)``: pass it as a component's
    ``clock`` instead of sleeping until something expires."""
    return ManualClock()


@pytest.fixture
def settings_factory(tmp_path: Path, db_url: str) -> Callable[..., Settings]:
    from genai import Settings

    def make(**overrides: object) -> Settings:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": db_url,
            "user": "admin",
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory()


@pytest.fixture
def platform(settings: Settings) -> Iterator[Callable[..., Client]]:
    """An initialised platform whose first admin is ``admin``; call it to connect::

    admin = platform()              # the admin user
    alice = platform("alice")       # another user (must be known to the platform)
    bot = platform(api_key=key)     # an API key's principal
    """
    import genai
    from genai.store import Store

    genai.init(settings, admin="admin")
    store = Store(settings.resolved_database_url)
    clients: list[genai.Client] = []

    def connect(user: str | None = None, *, api_key: str | None = None) -> genai.Client:
        client = genai.connect(
            settings,
            user=None if api_key else (user or "admin"),
            api_key=api_key,
            store=store,
        )
        clients.append(client)
        return client

    yield connect
    store.dispose()
