"""Shared fixtures: real SQLite and PostgreSQL stores, Redis, and a loopback-only network.

PostgreSQL (127.0.0.1:5432, database ``test``) and Redis (127.0.0.1:6379) tests skip when
the servers are missing on a developer's machine, and fail under ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("GENAI_TEST_PG", "postgresql://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("GENAI_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_LOOPBACK = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"}


def _guard_network() -> None:
    """Tests reach nothing but loopback: a connect elsewhere raises at once."""
    original = socket.socket.connect

    def connect(self: socket.socket, address: object) -> object:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host not in _LOOPBACK:
                raise ConnectionRefusedError(f"tests may only reach loopback, not {address!r}")
        return original(self, address)  # type: ignore[arg-type]

    socket.socket.connect = connect  # type: ignore[method-assign]


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
        try:
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that takes this runs on both SQLite and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'genai.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def redis_url() -> str:
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
    except Exception as error:
        _unreachable(f"Redis at {REDIS_URL}", error)
    return REDIS_URL


@pytest.fixture
def settings_factory(tmp_path: Path, db_url: str) -> Callable[..., object]:
    from genai import Settings

    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "home": tmp_path / "home",
            "database_url": db_url,
            "user": "admin",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(settings_factory: Callable[..., object]) -> object:
    return settings_factory()


@pytest.fixture
def platform(settings: object) -> Iterator[Callable[..., object]]:
    """An initialised platform whose first admin is ``admin``; call it to connect::

    admin = platform()              # the admin user
    alice = platform("alice")       # another user (must be known to the platform)
    bot = platform(api_key=key)     # an API key's principal
    """
    import genai
    from genai.store import Store

    genai.init(settings, admin="admin")  # type: ignore[arg-type]
    store = Store(settings.resolved_database_url)  # type: ignore[attr-defined]
    clients: list[genai.Client] = []

    def connect(user: str | None = None, *, api_key: str | None = None) -> genai.Client:
        client = genai.connect(
            settings,  # type: ignore[arg-type]
            user=None if api_key else (user or "admin"),
            api_key=api_key,
            store=store,
        )
        clients.append(client)
        return client

    yield connect
    store.dispose()
