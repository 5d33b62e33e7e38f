"""``VaultSuite``: the pseudonymisation :class:`~genai.dlp.Vault` contract, for any backend.

    class TestMyVault(VaultSuite):
        @pytest.fixture
        def vault(self, clock):
            return MyVault(keys, clock=clock)

        @pytest.fixture
        def advance(self, clock):
            return clock.advance

Stable typed tokens per session (the same value keeps its token in every turn, new values
are numbered per entity type), sessions and projects that never share a token, sessions
that expire ``ttl_s`` after their last use, ``drop`` and ``purge_expired``, and concurrent
turns of one session that agree.

Fixtures besides ``vault``:

- ``advance`` (required): a function that lets that many seconds pass for the vault. A vault
  with an injectable clock moves its clock; one whose server expires keys itself (Redis)
  shortens what each key has left. (``time.sleep`` works too, but makes the expiry tests
  wait for minutes.)
- ``projects`` (optional): two project ids the vault may hold sessions of (``(1, 2)``); a
  vault whose rows reference real projects gives the ids of projects it created.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from genai.dlp._vault import Vault

__all__ = ["VaultSuite"]

EMAIL, OTHER, CARD = "alice@example.com", "bob@example.org", "4111 1111 1111 1111"

#: Moves the vault's clock forward by that many seconds.
Advance = Callable[[float], None]


class VaultSuite:
    """Subclass it and provide the ``vault`` fixture: an empty vault of the backend."""

    @pytest.fixture
    def vault(self) -> Vault:
        raise NotImplementedError("a subclass of VaultSuite provides the `vault` fixture")

    @pytest.fixture
    def projects(self) -> tuple[int, int]:
        """Two project ids (override for a vault that needs real projects)."""
        return 1, 2

    @pytest.fixture
    def advance(self) -> Advance:
        """Lets that many seconds pass for the vault (see the module's docstring)."""
        raise NotImplementedError("a subclass of VaultSuite provides the `advance` fixture")

    def test_it_keeps_the_protocol(self, vault: Vault) -> None:
        assert isinstance(vault, Vault)

    def test_the_same_value_gets_the_same_token_in_every_turn(
        self, vault: Vault, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        first = vault.assign(a, "s1", [("EMAIL_ADDRESS", EMAIL), ("CREDIT_CARD", CARD)], ttl_s=60)
        assert first.tokens == ["EMAIL_ADDRESS_1", "CREDIT_CARD_1"]
        assert first.mapping == {"EMAIL_ADDRESS_1": EMAIL, "CREDIT_CARD_1": CARD}
        second = vault.assign(
            a, "s1", [("EMAIL_ADDRESS", OTHER), ("EMAIL_ADDRESS", EMAIL)], ttl_s=60
        )
        assert second.tokens == ["EMAIL_ADDRESS_2", "EMAIL_ADDRESS_1"]
        assert second.mapping == {
            "EMAIL_ADDRESS_1": EMAIL,
            "EMAIL_ADDRESS_2": OTHER,
            "CREDIT_CARD_1": CARD,
        }
        assert vault.mapping(a, "s1") == second.mapping
        repeated = vault.assign(a, "s1", [("EMAIL_ADDRESS", EMAIL)] * 3, ttl_s=60)
        assert repeated.tokens == ["EMAIL_ADDRESS_1"] * 3

    def test_one_value_of_two_entity_types_gets_two_tokens(
        self, vault: Vault, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        got = vault.assign(a, "s", [("PERSON", "Jordan"), ("LOCATION", "Jordan")], ttl_s=60)
        assert got.tokens == ["PERSON_1", "LOCATION_1"]
        assert got.mapping == {"PERSON_1": "Jordan", "LOCATION_1": "Jordan"}

    def test_an_empty_turn_changes_nothing(self, vault: Vault, projects: tuple[int, int]) -> None:
        a, _ = projects
        vault.assign(a, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
        empty = vault.assign(a, "s", [], ttl_s=60)
        assert empty.tokens == [] and empty.mapping == {"EMAIL_ADDRESS_1": EMAIL}

    def test_sessions_and_projects_never_share_tokens(
        self, vault: Vault, projects: tuple[int, int]
    ) -> None:
        a, b = projects
        vault.assign(a, "shared-id", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
        other_session = vault.assign(a, "another", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
        other_project = vault.assign(b, "shared-id", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
        assert other_session.mapping == {"EMAIL_ADDRESS_1": OTHER}
        assert other_project.mapping == {"EMAIL_ADDRESS_1": OTHER}
        assert vault.mapping(a, "shared-id") == {"EMAIL_ADDRESS_1": EMAIL}
        assert vault.mapping(b, "shared-id") == {"EMAIL_ADDRESS_1": OTHER}
        assert vault.mapping(b, "never-used") == {}

    def test_drop_forgets_one_session_only(self, vault: Vault, projects: tuple[int, int]) -> None:
        a, b = projects
        vault.assign(a, "s", [("EMAIL_ADDRESS", EMAIL), ("CREDIT_CARD", CARD)], ttl_s=60)
        vault.assign(b, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=60)
        vault.drop(a, "s")
        assert vault.mapping(a, "s") == {}
        assert vault.mapping(b, "s") == {"EMAIL_ADDRESS_1": EMAIL}
        again = vault.assign(a, "s", [("CREDIT_CARD", OTHER)], ttl_s=60)
        assert again.mapping == {"CREDIT_CARD_1": OTHER}  # numbered afresh
        vault.drop(a, "never-used")

    def test_a_session_expires_after_its_ttl(
        self, vault: Vault, projects: tuple[int, int], advance: Advance
    ) -> None:
        a, _ = projects
        vault.assign(a, "short", [("EMAIL_ADDRESS", EMAIL)], ttl_s=10)
        vault.assign(a, "long", [("EMAIL_ADDRESS", EMAIL)], ttl_s=600)
        advance(11)
        assert vault.mapping(a, "short") == {}
        assert vault.mapping(a, "long") == {"EMAIL_ADDRESS_1": EMAIL}
        again = vault.assign(a, "short", [("EMAIL_ADDRESS", OTHER)], ttl_s=60)
        assert again.mapping == {"EMAIL_ADDRESS_1": OTHER}  # a new session, numbered afresh
        assert vault.purge_expired() >= 0
        assert vault.mapping(a, "long") == {"EMAIL_ADDRESS_1": EMAIL}

    def test_using_a_session_extends_its_life(
        self, vault: Vault, projects: tuple[int, int], advance: Advance
    ) -> None:
        a, _ = projects
        vault.assign(a, "s", [("EMAIL_ADDRESS", EMAIL)], ttl_s=100)
        advance(60)
        vault.assign(a, "s", [("CREDIT_CARD", CARD)], ttl_s=100)
        advance(60)  # 120 s after the first use, 60 s after the last
        assert vault.mapping(a, "s") == {"EMAIL_ADDRESS_1": EMAIL, "CREDIT_CARD_1": CARD}
        advance(41)  # 101 s after the last
        assert vault.mapping(a, "s") == {}

    def test_concurrent_turns_of_one_session_agree(
        self, vault: Vault, projects: tuple[int, int]
    ) -> None:
        a, _ = projects
        results: list[dict[str, str]] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(6)

        def turn(n: int) -> None:
            try:
                barrier.wait(timeout=60)
                items = [("EMAIL_ADDRESS", EMAIL), ("EMAIL_ADDRESS", f"user{n}@example.com")]
                got = vault.assign(a, "busy", items, ttl_s=60)
                results.append(dict(zip(got.tokens, (v for _, v in items), strict=True)))
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=turn, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        final = vault.mapping(a, "busy")
        assert len(final) == 7 and len(set(final.values())) == 7  # one token per value
        assert len(results) == 6
        for seen in results:
            assert all(final[token] == value for token, value in seen.items())
