"""The pseudonymisation vault on its real backends: the metadata store (SQLite and
PostgreSQL), Redis, and in-process. Stable tokens, encryption at rest, tenancy, TTL,
concurrency, and the key file."""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text

import genai
from genai.dlp import DlpKeys, MemoryVault, RedisVault, SqlVault, Vault, load_keys
from genai.errors import ConfigError
from genai.store import Store
from genai.store import _schema as t

EMAIL, OTHER, CARD = "alice@example.com", "bob@example.org", "4111 1111 1111 1111"
KEYS = DlpKeys(b"a test key that is long enough!!")


@dataclass
class World:
    vault: Vault
    a: int  # project ids
    b: int
    dump: Callable[[], str]  # everything the backend holds, as text
    make: Callable[[DlpKeys], Vault]  # the same backend under other keys


def _projects(settings: genai.Settings) -> tuple[Store, int, int]:
    genai.init(settings, admin="admin")
    store = Store(settings.resolved_database_url)
    with genai.connect(settings, store=store) as client:
        client.projects.create("vault-a")
        client.projects.create("vault-b")
    with store.session() as s:
        ids = {name: id_ for name, id_ in s.execute(select(t.Project.name, t.Project.id))}
    return store, ids["vault-a"], ids["vault-b"]


def _sql_world(settings: genai.Settings) -> Iterator[World]:
    store, a, b = _projects(settings)

    def dump() -> str:
        with store.session() as s:
            rows = s.execute(text("SELECT * FROM dlp_vault")).all()
        return "\n".join(repr(tuple(row)) for row in rows)

    try:
        yield World(SqlVault(store, KEYS), a, b, dump, lambda k: SqlVault(store, k))
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

    try:
        yield World(vault, 1, 2, dump, lambda k: RedisVault(url, k, prefix=prefix))
    finally:
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        vault.close()


def _world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    kind = request.param
    if kind == "memory":
        memory = MemoryVault()
        yield World(memory, 1, 2, lambda: "", lambda k: memory)
    elif kind == "redis":
        yield from _redis_world(request.getfixturevalue("redis_url"))
    else:
        url = (
            f"sqlite:///{tmp_path / 'genai.db'}"
            if kind == "sqlite"
            else str(request.getfixturevalue("pg_url"))
        )
        yield from _sql_world(
            genai.Settings(home=tmp_path / "home", database_url=url, user="admin")
        )


_AT_REST = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "redis"]


@pytest.fixture(params=[*_AT_REST, "memory"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """Each vault backend: SQL on SQLite and PostgreSQL, Redis, in-process."""
    yield from _world(request, tmp_path)


@pytest.fixture(params=_AT_REST)
def stored(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The backends that keep sessions at rest (and shared between processes)."""
    yield from _world(request, tmp_path)


def test_the_same_value_gets_the_same_token_in_every_turn(world: World) -> None:
    v = world.vault
    first = v.assign(world.a, "s1", [("EMAIL_ADDRESS", EMAIL), ("CREDIT_CARD", CARD)], ttl_s=60)
    assert first.tokens == ["EMAIL_ADDRESS_1", "CREDIT_CARD_1"]
    second = v.assign(world.a, "s1", [("EMAIL_ADDRESS", OTHER), ("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
    assert second.tokens == ["EMAIL_ADDRESS_2", "EMAIL_ADDRESS_1"]
    assert second.mapping == {
        "EMAIL_ADDRESS_1": EMAIL,
        "EMAIL_ADDRESS_2": OTHER,
        "CREDIT_CARD_1": CARD,
    }
    assert v.mapping(world.a, "s1") == second.mapping
    repeated = v.assign(world.a, "s1", [("EMAIL_ADDRESS", EMAIL)] * 3, ttl_s=60)
    assert repeated.tokens == ["EMAIL_ADDRESS_1"] * 3


def test_sessions_and_projects_never_share_tokens(world: World) -> None:
    v = world.vault
    v.assign(world.a, "shared-id", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
    other_session = v.assign(world.a, "another", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
    other_project = v.assign(world.b, "shared-id", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
    assert other_session.mapping == {"EMAIL_ADDRESS_1": OTHER}
    assert other_project.mapping == {"EMAIL_ADDRESS_1": OTHER}
    assert v.mapping(world.a, "shared-id") == {"EMAIL_ADDRESS_1": EMAIL}
    assert v.mapping(world.b, "never-used") == {}


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


def test_a_session_expires_after_its_ttl(world: World) -> None:
    v = world.vault
    v.assign(world.a, "short", [("EMAIL_ADDRESS", EMAIL)], ttl_s=1)
    v.assign(world.a, "long", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
    time.sleep(1.3)
    assert v.mapping(world.a, "short") == {}
    assert v.mapping(world.a, "long") == {"EMAIL_ADDRESS_1": EMAIL}
    again = v.assign(world.a, "short", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
    assert again.mapping == {"EMAIL_ADDRESS_1": OTHER}  # a new session, numbered afresh
    v.purge_expired()
    assert EMAIL not in world.dump()


def test_using_a_session_extends_its_life(world: World) -> None:
    v = world.vault
    v.assign(world.a, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=2)
    time.sleep(1.2)
    v.assign(world.a, "s", [("CREDIT_CARD", CARD)], ttl_s=2)
    time.sleep(1.2)  # 2.4 s after the first use, 1.2 s after the last
    assert v.mapping(world.a, "s") == {"EMAIL_ADDRESS_1": EMAIL, "CREDIT_CARD_1": CARD}


def test_concurrent_turns_of_one_session_agree(world: World) -> None:
    vault = world.make(KEYS) if not isinstance(world.vault, MemoryVault) else world.vault
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def turn(n: int) -> None:
        try:
            barrier.wait()
            items = [("EMAIL_ADDRESS", EMAIL), ("EMAIL_ADDRESS", f"user{n}@example.com")]
            got = vault.assign(world.a, "busy", items, ttl_s=60)
            results.append(dict(zip(got.tokens, (v for _, v in items), strict=True)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=turn, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    final = vault.mapping(world.a, "busy")
    assert len(final) == 7 and len(set(final.values())) == 7  # one token per value
    for seen in results:
        assert all(final[token] == value for token, value in seen.items())


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
