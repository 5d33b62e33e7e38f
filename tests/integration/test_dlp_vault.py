"""The pseudonymisation vault on its real backends: the metadata store (SQLite and
PostgreSQL), Redis, and in-process. The contract (stable tokens, tenancy, TTL, concurrency:
``genai.testing.VaultSuite``) on each; encryption at rest, project deletion, the key file."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _clocks import ManualClock
from sqlalchemy import select, text

import genai
from genai.dlp import DlpKeys, MemoryVault, RedisVault, SqlVault, Vault, load_keys
from genai.errors import ConfigError
from genai.store import Store
from genai.store import schema as t
from genai.testing import VaultSuite

EMAIL, OTHER, CARD = "alice@example.com", "bob@example.org", "4111 1111 1111 1111"
KEYS = DlpKeys(b"a test key that is long enough!!")


@dataclass
class World:
    vault: Vault
    a: int  # project ids
    b: int
    dump: Callable[[], str]  # everything the backend holds, as text
    make: Callable[[DlpKeys], Vault]  # the same backend under other keys
    advance: Callable[[float], None]  # let this many seconds pass for the backend


def _projects(settings: genai.Settings) -> tuple[Store, int, int]:
    genai.init(settings, admin="admin")
    store = Store(settings.resolved_database_url)
    with genai.connect(settings, store=store) as client:
        client.projects.create("vault-a")
        client.projects.create("vault-b")
    with store.session() as s:
        ids = {name: id_ for name, id_ in s.execute(select(t.Project.name, t.Project.id))}
    return store, ids["vault-a"], ids["vault-b"]


def _sql_world(settings: genai.Settings, clock: ManualClock) -> Iterator[World]:
    store, a, b = _projects(settings)

    def dump() -> str:
        with store.session() as s:
            rows = s.execute(text("SELECT * FROM dlp_vault")).all()
        return "\n".join(repr(tuple(row)) for row in rows)

    try:
        vault = SqlVault(store, KEYS, clock=clock)
        yield World(vault, a, b, dump, lambda k: SqlVault(store, k, clock=clock), clock.advance)
    finally:
        store.dispose()


def _redis_world(url: str) -> Iterator[World]:
    prefix = f"genai-test-{secrets.token_hex(4)}:"
    vault = RedisVault(url, KEYS, prefix=prefix)
    client = vault._client

    def dump() -> str:
        return "\n".join(
            f"{key!r} {client.hgetall(key)!r}" for key in client.scan_iter(match=f"{prefix}*")
        )

    def advance(seconds: float) -> None:
        """Redis expires keys on its own clock: shorten what each key has left instead."""
        for key in client.scan_iter(match=f"{prefix}*"):
            left = int(client.pttl(key))
            if left > 0:
                if left <= seconds * 1000:
                    client.delete(key)
                else:
                    client.pexpire(key, left - round(seconds * 1000))

    try:
        yield World(vault, 1, 2, dump, lambda k: RedisVault(url, k, prefix=prefix), advance)
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        vault.close()


def _world(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    kind = request.param
    if kind == "memory":
        memory = MemoryVault(clock=clock)
        yield World(memory, 1, 2, lambda: "", lambda k: memory, clock.advance)
    elif kind == "redis":
        yield from _redis_world(request.getfixturevalue("redis_url"))
    else:
        url = (
            f"sqlite:///{tmp_path / 'genai.db'}"
            if kind == "sqlite"
            else str(request.getfixturevalue("pg_url"))
        )
        yield from _sql_world(
            genai.Settings(home=tmp_path / "home", database_url=url, user="admin"), clock
        )


_AT_REST = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "redis"]


@pytest.fixture(params=[*_AT_REST, "memory"])
def world(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    """Each vault backend: SQL on SQLite and PostgreSQL, Redis, in-process."""
    yield from _world(request, tmp_path, clock)


@pytest.fixture(params=_AT_REST)
def stored(request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock) -> Iterator[World]:
    """The backends that keep sessions at rest (and shared between processes)."""
    yield from _world(request, tmp_path, clock)


class TestVault(VaultSuite):
    """The Vault contract (``genai.testing.VaultSuite``) on each backend ``world`` gives."""

    @pytest.fixture
    def vault(self, world: World) -> Vault:
        return world.vault

    @pytest.fixture
    def projects(self, world: World) -> tuple[int, int]:
        return world.a, world.b

    @pytest.fixture
    def advance(self, world: World) -> Callable[[float], None]:
        return world.advance


def test_values_are_stored_encrypted_and_indexed_by_a_keyed_hash(stored: World) -> None:
    world = stored
    world.vault.assign(world.a, "s", [("EMAIL_ADDRESS", EMAIL), ("CREDIT_CARD", CARD)], ttl_s=60)
    held = world.dump()
    assert "EMAIL_ADDRESS_1" in held  # the tokens are there ...
    for raw in (EMAIL, CARD, "alice", "4111", CARD.replace(" ", "")):
        assert raw not in held  # ... the values are not, in any form
    import hashlib

    assert hashlib.sha256(EMAIL.encode()).hexdigest() not in held  # not an unkeyed hash


def test_another_key_cannot_read_the_vault(stored: World) -> None:
    world = stored
    world.vault.assign(world.a, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
    stranger = world.make(DlpKeys(b"some other key, also long enough"))
    with pytest.raises(ConfigError, match="GENAI_DLP_KEY") as caught:
        stranger.mapping(world.a, "s")
    assert EMAIL not in str(caught.value)


def test_purging_leaves_no_expired_value_at_rest(stored: World) -> None:
    world = stored
    world.vault.assign(world.a, "short", [("EMAIL_ADDRESS", EMAIL)], ttl_s=10)
    world.vault.assign(world.a, "long", [("EMAIL_ADDRESS", OTHER)], ttl_s=600)
    assert "short" in world.dump()
    world.advance(11)
    world.vault.purge_expired()
    held = world.dump()
    assert "short" not in held and "long" in held
    assert world.vault.mapping(world.a, "long") == {"EMAIL_ADDRESS_1": OTHER}


def test_deleting_a_project_deletes_its_vault(settings: genai.Settings) -> None:
    """(SQLite and PostgreSQL: the ``settings`` fixture runs on both.)"""
    store, a, _ = _projects(settings)
    try:
        SqlVault(store, KEYS).assign(a, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
        with genai.connect(settings, store=store) as client:
            client.projects.delete("vault-a")
        with store.session() as s:
            assert s.scalars(select(t.DlpVaultEntry)).all() == []
    finally:
        store.dispose()


# --------------------------------------------------------------------------- the key


def test_the_key_file_is_made_once_private_and_reused(tmp_path: Path) -> None:
    settings = genai.Settings(home=tmp_path / "home")
    first = load_keys(settings)
    path = tmp_path / "home" / "dlp.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keys(settings)
    assert first.mac("value", "x") == again.mac("value", "x")
    sealed = first.encrypt(EMAIL, 1, "s")
    assert again.decrypt(sealed, 1, "s") == EMAIL
    with pytest.raises(ConfigError):
        again.decrypt(sealed, 2, "s")  # bound to its context: not movable to another project


def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    settings = genai.Settings(home=tmp_path)
    load_keys(settings)
    os.chmod(tmp_path / "dlp.key", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keys(settings)


def test_the_configured_key_wins_and_must_be_long(tmp_path: Path) -> None:
    keyed = genai.Settings(home=tmp_path, dlp_key="x" * 32)
    assert load_keys(keyed).mac("value", "v") == DlpKeys(b"x" * 32).mac("value", "v")
    assert not (tmp_path / "dlp.key").exists()
    with pytest.raises(ConfigError, match="too short"):
        load_keys(genai.Settings(home=tmp_path, dlp_key="short"))
