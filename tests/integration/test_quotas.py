"""Quota accounting: shared counters under concurrency, the enforcer's windows, the API.

The counters' contract (``genai.testing.CountersSuite`` and ``AsyncCountersSuite``: exact
under concurrent threads or tasks) runs on every backend: SQLite and PostgreSQL
(``SqlCounters``), Redis, and in-process; the shared ones also race two processes started
with 'spawn' that each open their own connection from the URL.
"""

from __future__ import annotations

import multiprocessing
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from _clocks import ManualClock

from genai.errors import BackendError, Forbidden, QuotaExceeded, ValidationError
from genai.store import Store, upgrade
from genai.tenancy import (
    AsyncCounters,
    AsyncMemoryCounters,
    AsyncRedisCounters,
    Counters,
    MemoryCounters,
    QuotaEnforcer,
    QuotaLimits,
    RedisCounters,
    SqlCounters,
    UsageEvent,
)
from genai.testing import AsyncCountersSuite, CountersSuite

LIMIT = 100
ATTEMPTS = 160  # split evenly between the racers
PROCESSES = 2

Spec = tuple[str, str, str]  # (kind, url, redis key prefix)
Outcome = tuple[list[tuple[bool, int]], list[int]]  # limited adds' results, unconditional adds


def _counters(spec: Spec) -> Counters:
    kind, url, prefix = spec
    if kind == "redis":
        return RedisCounters(url, prefix=prefix)
    return SqlCounters(Store(url))


def _race(counters: Counters, barrier: Any, n: int, seed: int) -> Outcome:
    """``n`` adds of 1 against the limit, and ``n`` unconditional adds of 1 to 5."""
    barrier.wait(timeout=60)
    limited, summed = [], []
    for i in range(n):
        limited.append(counters.add("limited", 1, limit=LIMIT, ttl_s=600))
        amount = (seed + i) % 5 + 1
        added, _ = counters.add("summed", amount, limit=None, ttl_s=600)
        assert added
        summed.append(amount)
    return limited, summed


def _process_worker(spec: Spec, barrier: Any, n: int, seed: int, results: Any) -> None:
    try:
        results.put(_race(_counters(spec), barrier, n, seed))
    except Exception as error:  # reported to the test, which fails with it
        results.put(f"{type(error).__name__}: {error}")


def _with_processes(spec: Spec) -> list[Outcome]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    n = ATTEMPTS // PROCESSES
    workers = [
        ctx.Process(target=_process_worker, args=(spec, barrier, n, i, results))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    return outcomes


def _assert_exact(counters: Counters, outcomes: list[Outcome]) -> None:
    limited = [result for outcome in outcomes for result in outcome[0]]
    successes = sorted(value for added, value in limited if added)
    assert len(limited) == ATTEMPTS
    # Each successful add saw its own new value: none lost, none past the limit.
    assert successes == list(range(1, LIMIT + 1))
    assert all(value == LIMIT for added, value in limited if not added)
    assert counters.get("limited") == LIMIT
    assert counters.get("summed") == sum(amount for outcome in outcomes for amount in outcome[1])


@pytest.fixture
def sql_url(db_url: str) -> Iterator[str]:
    store = Store(db_url)
    upgrade(store)
    store.dispose()
    yield db_url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"genai-test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


class TestMemoryCounters(CountersSuite):
    @pytest.fixture
    def counters(self) -> Counters:
        return MemoryCounters()


class TestSqlCounters(CountersSuite):
    """SQLite and PostgreSQL (``db_url``'s params)."""

    @pytest.fixture
    def counters(self, sql_url: str) -> Iterator[Counters]:
        store = Store(sql_url)
        yield SqlCounters(store)
        store.dispose()


class TestRedisCounters(CountersSuite):
    pytestmark = pytest.mark.redis

    @pytest.fixture
    def counters(self, redis_url: str, redis_prefix: str) -> Iterator[Counters]:
        counters = RedisCounters(redis_url, prefix=redis_prefix)
        yield counters
        counters._client.close()


class TestAsyncMemoryCounters(AsyncCountersSuite):
    @pytest.fixture
    def counters(self) -> AsyncCounters:
        return AsyncMemoryCounters()


class TestAsyncRedisCounters(AsyncCountersSuite):
    pytestmark = [pytest.mark.anyio, pytest.mark.redis]

    @pytest.fixture
    async def counters(self, redis_url: str, redis_prefix: str) -> AsyncIterator[AsyncCounters]:
        counters = AsyncRedisCounters(redis_url, prefix=redis_prefix)
        yield counters
        await counters.close()


def test_sql_counters_are_exact_across_processes(sql_url: str) -> None:
    spec: Spec = ("sql", sql_url, "")
    _assert_exact(_counters(spec), _with_processes(spec))


def test_redis_counters_are_exact_across_processes(redis_url: str, redis_prefix: str) -> None:
    spec: Spec = ("redis", redis_url, redis_prefix)
    _assert_exact(_counters(spec), _with_processes(spec))


def test_redis_counters_expire_after_their_ttl(redis_url: str, redis_prefix: str) -> None:
    import redis

    counters = RedisCounters(redis_url, prefix=redis_prefix)
    counters.add("window", 1, limit=None, ttl_s=50)
    counters.add("window", 1, limit=None, ttl_s=500)  # the first add sets the expiry
    ttl = redis.Redis.from_url(redis_url).ttl(f"{redis_prefix}window")
    assert 0 < ttl <= 50


@pytest.mark.parametrize("call", ["add", "get"])
def test_unreachable_redis_is_a_retryable_backend_error_without_the_password(call: str) -> None:
    counters = RedisCounters("redis://:s3cret-pw@127.0.0.1:1/0")
    with pytest.raises(BackendError) as caught:
        counters.add("k", 1, limit=None, ttl_s=5) if call == "add" else counters.get("k")
    message = str(caught.value)
    assert "s3cret-pw" not in message
    assert "redis://:***@127.0.0.1:1/0" in message and "GENAI_REDIS_URL" in message
    error = caught.value
    assert (error.backend, error.retryable, error.status, error.retry_after) == (
        "redis",
        True,
        503,  # the platform's own store is down: a 503 that says when to retry
        1.0,
    )


def test_memory_counters_forget_an_expired_window(clock: ManualClock) -> None:
    counters = MemoryCounters(clock=clock)
    assert counters.add("gone", 5, limit=None, ttl_s=60) == (True, 5)
    clock.advance(59.9)
    assert counters.get("gone") == 5
    clock.advance(0.1)
    assert counters.get("gone") == 0
    assert counters.add("gone", 2, limit=3, ttl_s=60) == (True, 2)


# --------------------------------------------------------------------------- the enforcer

NOW = datetime(2026, 11, 24, 10, 31, 15, tzinfo=UTC)


def test_requests_per_minute_refuse_the_request_past_the_limit() -> None:
    enforcer = QuotaEnforcer(MemoryCounters())
    limits = QuotaLimits(requests_per_minute=3)
    for _ in range(3):
        enforcer.acquire_request(7, "demo", limits, now=NOW)

    with pytest.raises(QuotaExceeded, match="3 requests per minute") as caught:
        enforcer.acquire_request(7, "demo", limits, now=NOW)

    assert caught.value.retry_after == pytest.approx(45.0)
    enforcer.acquire_request(8, "other", limits, now=NOW)  # another project's own window


@pytest.mark.parametrize("second", [0, 15.5, 59.999])
def test_retry_after_is_the_rest_of_the_minute(second: float) -> None:
    now = NOW.replace(second=int(second), microsecond=round(second % 1 * 1e6))
    enforcer = QuotaEnforcer(MemoryCounters())
    limits = QuotaLimits(requests_per_minute=1)
    enforcer.acquire_request(7, "demo", limits, now=now)
    with pytest.raises(QuotaExceeded) as caught:
        enforcer.acquire_request(7, "demo", limits, now=now)
    retry = caught.value.retry_after
    assert retry is not None and 0 < retry <= 60
    assert retry == pytest.approx(60 - second)


def test_the_next_minute_opens_a_new_window() -> None:
    enforcer = QuotaEnforcer(MemoryCounters())
    limits = QuotaLimits(requests_per_minute=2)
    for _ in range(2):
        enforcer.acquire_request(7, "demo", limits, now=NOW)
    with pytest.raises(QuotaExceeded):
        enforcer.acquire_request(7, "demo", limits, now=NOW.replace(second=59))

    enforcer.acquire_request(7, "demo", limits, now=NOW.replace(minute=32, second=0))

    status = enforcer.status(7, limits, now=NOW.replace(minute=32))
    assert status.requests_this_minute == 1


def test_no_request_limit_counts_nothing() -> None:
    counters = MemoryCounters()
    enforcer = QuotaEnforcer(counters)
    for _ in range(50):
        enforcer.acquire_request(7, "demo", QuotaLimits(), now=NOW)
    assert enforcer.status(7, QuotaLimits(), now=NOW).requests_this_minute == 0


def test_tokens_per_day_refuse_until_the_next_utc_day() -> None:
    enforcer = QuotaEnforcer(MemoryCounters())
    limits = QuotaLimits(tokens_per_day=1000)
    evening = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    enforcer.record_spend(7, tokens=999, cost_usd=0, now=evening)
    enforcer.check_spend(7, "demo", limits, now=evening)
    enforcer.record_spend(7, tokens=1, cost_usd=0, now=evening)

    with pytest.raises(QuotaExceeded, match="1000 of its 1000 tokens") as caught:
        enforcer.check_spend(7, "demo", limits, now=evening)

    assert caught.value.retry_after == pytest.approx(6 * 3600)
    enforcer.check_spend(7, "demo", limits, now=evening + timedelta(hours=6))


@pytest.mark.parametrize(
    ("now", "to_next_month"),
    [
        (datetime(2026, 11, 30, 23, 0, tzinfo=UTC), 3600),
        (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), 12 * 3600),  # into a new year
        (datetime(2028, 2, 1, 0, 0, tzinfo=UTC), 29 * 86400),  # a leap February
    ],
)
def test_a_monthly_budget_refuses_until_the_next_month(now: datetime, to_next_month: int) -> None:
    enforcer = QuotaEnforcer(MemoryCounters())
    limits = QuotaLimits(budget_usd_per_month=5.0)
    enforcer.record_spend(7, tokens=0, cost_usd=4.999999, now=now)
    enforcer.check_spend(7, "demo", limits, now=now)
    enforcer.record_spend(7, tokens=0, cost_usd=0.000001, now=now)  # counted exactly

    with pytest.raises(QuotaExceeded, match=r"\$5.00 of its \$5.00 budget") as caught:
        enforcer.check_spend(7, "demo", limits, now=now)

    assert caught.value.retry_after == pytest.approx(to_next_month)
    enforcer.check_spend(7, "demo", limits, now=now + timedelta(seconds=to_next_month))


# --------------------------------------------------------------------------- the API


def _clear_of_the_minute_boundary() -> None:
    """Requests counted just before a minute ends would land in two windows."""
    second = datetime.now(UTC).second
    if second >= 57:
        time.sleep(61 - second)


def test_quota_set_changes_only_the_limits_named(platform: Callable[..., Any]) -> None:
    admin = platform()
    admin.projects.create("limited")
    quotas = admin.quotas

    assert quotas.set("limited", requests_per_minute=10) == QuotaLimits(requests_per_minute=10)
    both = quotas.set("limited", tokens_per_day=5000, budget_usd_per_month=25.5)
    assert both == QuotaLimits(
        requests_per_minute=10, tokens_per_day=5000, budget_usd_per_month=25.5
    )
    unlimited = quotas.set("limited", requests_per_minute=None)

    assert unlimited == QuotaLimits(tokens_per_day=5000, budget_usd_per_month=25.5)
    assert quotas.get("limited").limits == unlimited


@pytest.mark.parametrize(
    "change",
    [
        {"requests_per_minute": -1},
        {"requests_per_minute": 0},
        {"tokens_per_day": -5},
        {"budget_usd_per_month": -0.01},
        {"adapter_slots": -1},
    ],
)
def test_quota_set_refuses_invalid_limits(
    platform: Callable[..., Any], change: dict[str, Any]
) -> None:
    admin = platform()
    admin.projects.create("limited")
    admin.quotas.set("limited", requests_per_minute=10)

    with pytest.raises(ValidationError, match="invalid quota"):
        admin.quotas.set("limited", **change)

    assert admin.quotas.get("limited").limits == QuotaLimits(requests_per_minute=10)


def test_acquire_through_the_client_enforces_requests_per_minute(
    platform: Callable[..., Any],
) -> None:
    admin = platform()
    admin.projects.create("busy")
    admin.projects.add_member("busy", "dev", role="developer")
    admin.projects.add_member("busy", "viewer", role="viewer")
    admin.quotas.set("busy", requests_per_minute=3)
    dev = platform("dev")
    _clear_of_the_minute_boundary()

    for _ in range(3):
        dev.quotas.acquire("busy")
    with pytest.raises(QuotaExceeded) as caught:
        dev.quotas.acquire("busy")

    retry = caught.value.retry_after
    assert retry is not None and 0 < retry <= 60
    assert dev.quotas.get("busy").requests_this_minute == 3
    with pytest.raises(Forbidden):
        platform("viewer").quotas.acquire("busy")


def test_usage_counts_tokens_and_cost_but_not_cache_hits(platform: Callable[..., Any]) -> None:
    admin = platform()
    admin.projects.create("spender")
    admin.quotas.set("spender", tokens_per_day=100, budget_usd_per_month=10.0)
    admin.usage.record(
        "spender",
        [
            UsageEvent(model="m", prompt_tokens=50, completion_tokens=10, cost_usd=0.5),
            UsageEvent(
                model="m", prompt_tokens=900, completion_tokens=900, cost_usd=9.0, cache_hit=True
            ),
        ],
    )
    status = admin.quotas.get("spender")
    assert (status.tokens_today, status.spend_usd_this_month) == (60, pytest.approx(0.5))
    admin.quotas.acquire("spender")

    admin.usage.record("spender", UsageEvent(model="m", prompt_tokens=40, cost_usd=0.25))

    assert admin.quotas.get("spender").tokens_today == 100
    with pytest.raises(QuotaExceeded, match="tokens"):
        admin.quotas.acquire("spender")
