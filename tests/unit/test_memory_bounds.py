"""Every structure a long-running gateway fills per request has a bound, and keeps it.

Each test fills a structure past its bound and checks its size and what it kept (the most
recent, or what an eviction policy says); clocks are injected where time matters.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import traceback

import pytest
from _clocks import ManualClock

from apps._cache import _MemoEmbedder
from cache._entries import MemoryEntries
from genai.dlp import MemoryVault
from genai.errors import AuthenticationError, ConfigError, ValidationError
from genai.gateway._cache import _TTLCache
from genai.testing import FakeEmbedder

# ---------------------------------------------------------------- the DLP vault in memory


def test_memory_vault_keeps_at_most_max_sessions_dropping_the_least_recently_used() -> None:
    vault = MemoryVault(max_sessions=3)
    for n in range(3):
        vault.assign(1, f"s{n}", [("EMAIL_ADDRESS", f"u{n}@example.com")], ttl_s=60)
    vault.assign(1, "s0", [], ttl_s=60)  # used again: now the most recent
    vault.assign(1, "s3", [("EMAIL_ADDRESS", "u3@example.com")], ttl_s=60)

    assert vault.session_count() == 3
    assert vault.mapping(1, "s1") == {}  # the least recently used went
    assert vault.mapping(1, "s0") == {"EMAIL_ADDRESS_1": "u0@example.com"}


def test_memory_vault_drops_expired_sessions_before_live_ones(clock: ManualClock) -> None:
    vault = MemoryVault(max_sessions=2, clock=clock)
    vault.assign(1, "old", [("EMAIL_ADDRESS", "a@example.com")], ttl_s=10)
    vault.assign(1, "live", [("EMAIL_ADDRESS", "b@example.com")], ttl_s=100)
    vault.assign(1, "live", [], ttl_s=100)
    vault.assign(1, "old", [], ttl_s=10)  # the most recently used, but it expires first
    clock.advance(50)
    vault.assign(1, "new", [("EMAIL_ADDRESS", "c@example.com")], ttl_s=100)

    assert vault.session_count() == 2
    assert vault.mapping(1, "live") == {"EMAIL_ADDRESS_1": "b@example.com"}


def test_memory_vault_refuses_a_session_past_max_values_and_keeps_what_it_had() -> None:
    vault = MemoryVault(max_values=3)
    vault.assign(1, "s", [("EMAIL_ADDRESS", f"u{n}@example.com") for n in range(3)], ttl_s=60)
    with pytest.raises(ValidationError, match="start a new session"):
        vault.assign(1, "s", [("EMAIL_ADDRESS", "u9@example.com")], ttl_s=60)
    # values it holds already are no new values
    again = vault.assign(1, "s", [("EMAIL_ADDRESS", "u1@example.com")], ttl_s=60)
    assert again.tokens == ["EMAIL_ADDRESS_2"]
    assert len(vault.mapping(1, "s")) == 3


# ---------------------------------------------------------------- cache entries in memory


def test_the_hit_log_of_memory_entries_keeps_the_latest_requests() -> None:
    entries = MemoryEntries(max_hit_log=5)
    for n in range(12):
        entries.record(1, "d", {"lookups": 1}, hit=(f"e{n}", f"r{n}"), at=float(n))
    assert len(entries._hits) == 5
    assert set(entries._hits) == {(1, f"r{n}") for n in range(7, 12)}
    assert entries.stats(1).lookups == 12  # counters are never dropped


# ---------------------------------------------------------------- the embedder's memo


def test_the_embedder_memo_keeps_the_most_recently_used_texts() -> None:
    inner = FakeEmbedder(4)
    memo = _MemoEmbedder(inner, size=4)
    for n in range(10):
        memo.embed([f"question {n}"])
    memo.embed(["question 6"])  # kept: answered from memory
    assert (len(memo._memo), len(inner.calls)) == (4, 10)
    memo.embed(["question 0"])  # dropped long ago: embedded again
    assert inner.calls[-1] == ["question 0"] and len(inner.calls) == 11


# ---------------------------------------------------------------- the gateway's TTL maps


def test_the_gateway_ttl_cache_keeps_at_most_its_bound() -> None:
    cache: _TTLCache[str, int] = _TTLCache(3)

    async def fill() -> None:
        for n in range(10):

            async def load(n: int = n) -> tuple[int, float]:
                return n, 60.0

            assert await cache.get(f"k{n}", load) == n

    asyncio.run(fill())
    assert len(cache) == 3


def test_a_ttl_cache_entry_lives_its_ttl_on_the_clock_then_loads_again(
    clock: ManualClock,
) -> None:
    cache: _TTLCache[str, int] = _TTLCache(10, clock=clock)
    loads: list[int] = []

    async def load() -> tuple[int, float]:
        loads.append(len(loads))
        return len(loads), 30.0

    async def ask() -> int:
        return await cache.get("k", load)

    assert asyncio.run(ask()) == 1
    clock.advance(29.9)
    assert asyncio.run(ask()) == 1 and len(loads) == 1  # still cached
    clock.advance(0.1)
    assert asyncio.run(ask()) == 2 and len(loads) == 2  # expired at ttl: loaded again


def test_a_full_ttl_cache_evicts_expired_entries_before_live_ones(clock: ManualClock) -> None:
    cache: _TTLCache[str, int] = _TTLCache(2, clock=clock)

    async def put(key: str, ttl: float) -> None:
        async def load() -> tuple[int, float]:
            return len(key), ttl

        await cache.get(key, load)

    asyncio.run(put("long", 60.0))
    asyncio.run(put("short", 5.0))
    clock.advance(10)
    asyncio.run(put("new", 60.0))  # full: the expired entry goes, not the oldest live one
    assert sorted(cache._entries) == ["long", "new"]


def test_a_remembered_refusal_does_not_grow_with_each_raise() -> None:
    cache: _TTLCache[str, int] = _TTLCache(10)
    refusal = AuthenticationError("unknown key")

    async def load() -> tuple[AuthenticationError, float]:
        return refusal, 60.0

    async def ask() -> int:
        try:
            await cache.get("bad", load)
        except AuthenticationError as error:
            return len(traceback.extract_tb(error.__traceback__))
        raise AssertionError("not refused")

    depths = [asyncio.run(ask()) for _ in range(5)]
    assert len(set(depths)) == 1, depths


# ---------------------------------------------------------------- spaCy's vocabulary


def test_detection_leaves_no_words_behind_in_the_nlp_vocabulary() -> None:
    """spaCy adds every new word of a text to its vocabulary for good (2 KiB a distinct
    text); the detector analyses inside a memory zone, which frees them."""
    pytest.importorskip("presidio_analyzer")
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    from genai.dlp import Detector

    detector = Detector()
    detector.warm()
    engine = detector._get_engine().nlp_engine
    assert isinstance(engine, SpacyNlpEngine)
    nlp = engine.nlp["en"]  # type: ignore[index]  # typed None by Presidio; a dict once loaded
    detector.analyze("warm-up: I am first@example.com")
    before = len(nlp.vocab.strings)
    for n in range(200):
        found = detector.analyze_batch([f"I am user{n}@example.com, ticket Zq{n}x{n * 7919}."])
        assert "EMAIL_ADDRESS" in {f.entity_type for f in found[0]}
        detector.analyze(f"call Wrenfold{n} about order {n * 104729}")
    assert len(nlp.vocab.strings) == before


# ---------------------------------------------------------------- the allocator


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_one_malloc_trimmer_runs_per_process() -> None:
    from apps._memory import start_malloc_trim

    assert start_malloc_trim(0) is False  # off
    assert start_malloc_trim(3600) and start_malloc_trim(3600)
    names = [t.name for t in threading.enumerate()]
    assert names.count("genai-malloc-trim") == 1


def test_a_bad_trim_interval_is_refused_with_the_variable_named() -> None:
    from apps.gateway import _seconds

    assert _seconds({}, "GENAI_GATEWAY_MALLOC_TRIM_S", 30.0) == 30.0
    assert _seconds({"GENAI_GATEWAY_MALLOC_TRIM_S": "0"}, "GENAI_GATEWAY_MALLOC_TRIM_S", 30) == 0
    with pytest.raises(ConfigError, match="GENAI_GATEWAY_MALLOC_TRIM_S is 'soon'"):
        _seconds({"GENAI_GATEWAY_MALLOC_TRIM_S": "soon"}, "GENAI_GATEWAY_MALLOC_TRIM_S", 30)


def test_the_cache_vectors_variable_names_its_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.gateway import _cache_vectors

    assert _cache_vectors() == "chroma"
    monkeypatch.setenv("GENAI_GATEWAY_CACHE_VECTORS", "Memory")
    assert _cache_vectors() == "memory"
    monkeypatch.setenv("GENAI_GATEWAY_CACHE_VECTORS", "faiss")
    with pytest.raises(ConfigError, match="GENAI_GATEWAY_CACHE_VECTORS is 'faiss': use chroma"):
        _cache_vectors()
