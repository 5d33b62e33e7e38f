"""``CountersSuite`` and ``AsyncCountersSuite``: the quota counters' contract, for any backend.

    class TestMyCounters(CountersSuite):
        @pytest.fixture
        def counters(self):
            return MyCounters(url, prefix=unique_prefix)

One atomic step: add ``amount`` to a counter unless that would take it past ``limit``;
``(added, value)`` says whether it did and what the counter holds. Keys are independent, a
refused add changes nothing, a key whose ``ttl_s`` has passed reads 0, and concurrent adds
(threads, or tasks on one event loop) never lose an update nor overshoot the limit. Each
test starts from a fresh, empty ``counters`` (give a shared server a fresh key prefix).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from genai.tenancy._counters import AsyncCounters, Counters

__all__ = ["AsyncCountersSuite", "CountersSuite"]

LIMIT = 100
ATTEMPTS = 160  # limited adds of 1, split between the racers
RACERS = 8


class CountersSuite:
    """Subclass it and provide the ``counters`` fixture: empty counters of the backend."""

    @pytest.fixture
    def counters(self) -> Counters:
        raise NotImplementedError("a subclass of CountersSuite provides the `counters` fixture")

    def test_it_keeps_the_protocol(self, counters: Counters) -> None:
        assert isinstance(counters, Counters)

    def test_adds_without_a_limit_sum_up(self, counters: Counters) -> None:
        assert counters.get("window") == 0
        assert counters.add("window", 5, limit=None, ttl_s=600) == (True, 5)
        assert counters.add("window", 2, limit=None, ttl_s=600) == (True, 7)
        assert counters.get("window") == 7

    def test_an_add_past_the_limit_is_refused_and_changes_nothing(self, counters: Counters) -> None:
        assert counters.add("window", 3, limit=5, ttl_s=600) == (True, 3)
        assert counters.add("window", 3, limit=5, ttl_s=600) == (False, 3)
        assert counters.get("window") == 3
        assert counters.add("window", 2, limit=5, ttl_s=600) == (True, 5)  # up to the limit
        assert counters.add("window", 1, limit=5, ttl_s=600) == (False, 5)
        assert counters.add("window", 1, limit=None, ttl_s=600) == (True, 6)

    def test_a_first_add_past_the_limit_is_refused(self, counters: Counters) -> None:
        assert counters.add("window", 11, limit=10, ttl_s=600) == (False, 0)
        assert counters.get("window") == 0

    def test_keys_are_independent(self, counters: Counters) -> None:
        counters.add("q:1:rpm:1", 4, limit=None, ttl_s=600)
        counters.add("q:2:rpm:1", 1, limit=None, ttl_s=600)
        assert counters.add("q:1:rpm:2", 1, limit=1, ttl_s=600) == (True, 1)
        assert [counters.get(k) for k in ("q:1:rpm:1", "q:2:rpm:1", "q:1:rpm:2")] == [4, 1, 1]

    def test_a_key_past_its_ttl_reads_zero(self, counters: Counters) -> None:
        counters.add("gone", 5, limit=None, ttl_s=0)
        assert counters.get("gone") == 0

    def test_concurrent_adds_are_exact(self, counters: Counters) -> None:
        barrier = threading.Barrier(RACERS)

        def race(seed: int) -> tuple[list[tuple[bool, int]], int]:
            barrier.wait(timeout=60)
            limited, summed = [], 0
            for i in range(ATTEMPTS // RACERS):
                limited.append(counters.add("limited", 1, limit=LIMIT, ttl_s=600))
                amount = (seed + i) % 5 + 1
                assert counters.add("summed", amount, limit=None, ttl_s=600)[0]
                summed += amount
            return limited, summed

        with ThreadPoolExecutor(RACERS) as pool:
            futures = [pool.submit(race, n) for n in range(RACERS)]
            outcomes = [f.result(timeout=120) for f in futures]
        _assert_exact([r for o in outcomes for r in o[0]], counters.get("limited"))
        assert counters.get("summed") == sum(o[1] for o in outcomes)


class AsyncCountersSuite:
    """Subclass it and provide the ``counters`` fixture: empty async counters of the
    backend (an async fixture may open and close them). The tests run on anyio's pytest
    plugin, on asyncio unless a subclass overrides ``anyio_backend``."""

    pytestmark: pytest.MarkDecorator | list[pytest.MarkDecorator] = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def counters(self) -> AsyncCounters:
        raise NotImplementedError(
            "a subclass of AsyncCountersSuite provides the `counters` fixture"
        )

    async def test_it_keeps_the_protocol(self, counters: AsyncCounters) -> None:
        assert isinstance(counters, AsyncCounters)

    async def test_adds_without_a_limit_sum_up(self, counters: AsyncCounters) -> None:
        assert await counters.get("window") == 0
        assert await counters.add("window", 5, limit=None, ttl_s=600) == (True, 5)
        assert await counters.add("window", 2, limit=None, ttl_s=600) == (True, 7)
        assert await counters.get("window") == 7

    async def test_an_add_past_the_limit_is_refused_and_changes_nothing(
        self, counters: AsyncCounters
    ) -> None:
        assert await counters.add("window", 3, limit=5, ttl_s=600) == (True, 3)
        assert await counters.add("window", 3, limit=5, ttl_s=600) == (False, 3)
        assert await counters.get("window") == 3
        assert await counters.add("window", 2, limit=5, ttl_s=600) == (True, 5)
        assert await counters.add("window", 1, limit=5, ttl_s=600) == (False, 5)
        assert await counters.add("window", 1, limit=None, ttl_s=600) == (True, 6)

    async def test_keys_are_independent(self, counters: AsyncCounters) -> None:
        await counters.add("q:1:rpm:1", 4, limit=None, ttl_s=600)
        await counters.add("q:2:rpm:1", 1, limit=None, ttl_s=600)
        assert await counters.add("q:1:rpm:2", 1, limit=1, ttl_s=600) == (True, 1)
        assert await counters.get("q:1:rpm:1") == 4
        assert await counters.get("q:2:rpm:1") == 1

    async def test_a_key_past_its_ttl_reads_zero(self, counters: AsyncCounters) -> None:
        await counters.add("gone", 5, limit=None, ttl_s=0)
        assert await counters.get("gone") == 0

    async def test_concurrent_adds_are_exact(self, counters: AsyncCounters) -> None:
        limited = await asyncio.gather(
            *(counters.add("limited", 1, limit=LIMIT, ttl_s=600) for _ in range(ATTEMPTS))
        )
        amounts = [i % 5 + 1 for i in range(ATTEMPTS)]
        summed = await asyncio.gather(
            *(counters.add("summed", a, limit=None, ttl_s=600) for a in amounts)
        )
        assert all(added for added, _ in summed)
        _assert_exact(list(limited), await counters.get("limited"))
        assert await counters.get("summed") == sum(amounts)


def _assert_exact(limited: list[tuple[bool, int]], final: int) -> None:
    """Each successful add saw its own new value: none lost, none past the limit."""
    assert len(limited) == ATTEMPTS
    assert sorted(value for added, value in limited if added) == list(range(1, LIMIT + 1))
    assert all(value == LIMIT for added, value in limited if not added)
    assert final == LIMIT
