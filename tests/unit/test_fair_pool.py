"""The fair CPU pool (genai.pool) and the gateway's admission rules (genai.gateway.
_admission): round-robin between owners, bounded queues that refuse at once, cancelled
jobs that never run. Orders are asserted from the recorded execution order, never timed:
a single worker is held by a job gated on a threading.Event while the queues fill."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future

import pytest

from genai.errors import ValidationError, error_body, http_status
from genai.gateway import GatewayOptions
from genai.gateway._admission import (
    Admission,
    check_embedding_tokens,
    check_size,
    estimate_prompt_tokens,
)
from genai.pool import FairPool, PoolOverloaded, QueueFull, offload, working_for
from genai.tenancy import QuotaLimits

WAIT_S = 10.0  # how long a test waits for a thread before it fails (never reached)


class Gate:
    """A job that holds the pool's one worker until the test opens the gate."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self) -> str:
        self.started.set()
        assert self.opened.wait(WAIT_S), "the test never opened the gate"
        return "gate"


@pytest.fixture
def pool() -> Iterator[FairPool]:
    made = FairPool(workers=1, max_queued_per_owner=100, max_queued=1000)
    yield made
    made.close(wait=True)


def hold(pool: FairPool, owner: str = "A") -> tuple[Gate, Future[str]]:
    """Occupy the single worker with ``owner``'s gate job; returns once it is running."""
    gate = Gate()
    future = pool.submit(owner, gate)
    assert gate.started.wait(WAIT_S)
    return gate, future


def recorder(order: list[str]) -> Callable[[str], str]:
    def job(name: str) -> str:
        order.append(name)
        return name

    return job


# ---------------------------------------------------------------- fairness


class Clock:
    """The pool's clock, advanced by the jobs themselves: a job "takes" its cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timed() -> Iterator[tuple[FairPool, Clock, list[str]]]:
    clock = Clock()
    order: list[str] = []
    made = FairPool(workers=1, max_queued_per_owner=100, max_queued=1000, clock=clock)
    yield made, clock, order
    made.close(wait=True)


def costly(clock: Clock, order: list[str]) -> Callable[[str, float], str]:
    def job(name: str, cost: float) -> str:
        order.append(name)
        clock.now += cost
        return name

    return job


def test_a_project_with_fifty_jobs_queued_delays_another_by_one_job(
    timed: tuple[FairPool, Clock, list[str]],
) -> None:
    pool, clock, order = timed
    run = costly(clock, order)
    gate, _ = hold(pool, "A")
    clock.now += 1.0  # the gate's time is A's
    flood = [pool.submit("A", run, f"A{i}", 1.0) for i in range(50)]
    late = pool.submit("B", run, "B0", 1.0)
    gate.opened.set()
    assert late.result(WAIT_S) == "B0"
    for future in flood:
        future.result(WAIT_S)
    assert order == ["B0"] + [f"A{i}" for i in range(50)]


def test_owners_that_used_the_same_time_take_turns(
    timed: tuple[FairPool, Clock, list[str]],
) -> None:
    pool, clock, order = timed
    run = costly(clock, order)
    gate, _ = hold(pool)
    clock.now += 1.0
    futures = [pool.submit("A", run, f"A{i}", 1.0) for i in range(4)]
    futures += [pool.submit("B", run, f"B{i}", 1.0) for i in range(4)]
    futures += [pool.submit("C", run, f"C{i}", 1.0) for i in range(2)]
    gate.opened.set()
    for future in futures:
        future.result(WAIT_S)
    # A used a second already (the gate): B and C first, then all three in turn
    assert order == ["B0", "C0", "A0", "B1", "C1", "A1", "B2", "A2", "B3", "A3"]


def test_owners_share_worker_time_not_job_counts(
    timed: tuple[FairPool, Clock, list[str]],
) -> None:
    pool, clock, order = timed
    run = costly(clock, order)
    gate, _ = hold(pool)
    futures = [pool.submit("A", run, f"A{i}", 0.5) for i in range(4)]
    futures += [pool.submit("B", run, f"B{i}", 0.1) for i in range(20)]
    gate.opened.set()
    for future in futures:
        future.result(WAIT_S)
    # while both have work, each A job of 0.5 s is matched by about five B jobs of 0.1 s
    assert [o for o in order[:12] if o.startswith("A")] == ["A0", "A1"]
    assert order.index("A2") >= 12


def test_an_owner_back_from_idle_has_not_saved_up_time(
    timed: tuple[FairPool, Clock, list[str]],
) -> None:
    pool, clock, order = timed
    run = costly(clock, order)
    for i in range(10):  # A works alone for 10 s; B was idle all along
        pool.submit("A", run, f"early{i}", 1.0).result(WAIT_S)
    gate, _ = hold(pool, "C")
    futures = [pool.submit("A", run, f"A{i}", 1.0) for i in range(3)]
    futures += [pool.submit("B", run, f"B{i}", 1.0) for i in range(3)]
    gate.opened.set()
    for future in futures:
        future.result(WAIT_S)
    # B starts level with the time of A's last job, not ten seconds of credit ahead of
    # it (which would run B's three jobs first): from there they alternate
    assert order[10:] == ["B0", "A0", "B1", "A1", "B2", "A2"]


def test_a_lone_owner_runs_in_submission_order(pool: FairPool) -> None:
    order: list[str] = []
    run = recorder(order)
    futures = [pool.submit("A", run, f"A{i}") for i in range(20)]
    for future in futures:
        future.result(WAIT_S)
    assert order == [f"A{i}" for i in range(20)]


# ---------------------------------------------------------------- bounds


def test_a_full_project_queue_refuses_at_once_with_429_and_retry_after() -> None:
    pool = FairPool(workers=1, max_queued_per_owner=3, max_queued=100)
    try:
        gate, _ = hold(pool, "A")
        queued = [pool.submit("A", str, i) for i in range(3)]
        with pytest.raises(QueueFull) as refused:
            pool.submit("A", str, 99)  # the gate still holds the worker: refused, not queued
        error = refused.value
        assert http_status(error) == 429
        assert error_body(error)["error"]["type"] == "rate_limit_error"
        assert error.retry_after is not None and 0 < error.retry_after <= 60
        assert "project 'A' has 3 jobs waiting" in error.message and "retry in" in error.message
        assert pool.stats().queued_by_owner == {"A": 3}  # the queue did not grow
        other = pool.submit("B", str, "b")  # another project still has its share
        gate.opened.set()
        assert other.result(WAIT_S) == "b"
        assert [f.result(WAIT_S) for f in queued] == ["0", "1", "2"]
        assert pool.stats().refused == 1
    finally:
        pool.close(wait=True)


def test_a_full_pool_refuses_with_503() -> None:
    pool = FairPool(workers=1, max_queued_per_owner=2, max_queued=3)
    try:
        gate, _ = hold(pool, "A")
        pool.submit("A", str, 1)
        pool.submit("B", str, 2)
        pool.submit("C", str, 3)
        with pytest.raises(PoolOverloaded) as refused:
            pool.submit("D", str, 4)
        assert refused.value.status == 503 and refused.value.retryable
        assert refused.value.retry_after is not None and refused.value.retry_after > 0
        gate.opened.set()
    finally:
        pool.close(wait=True)


def test_follow_up_jobs_of_admitted_work_are_never_refused() -> None:
    pool = FairPool(workers=1, max_queued_per_owner=1, max_queued=1)
    try:
        gate, _ = hold(pool, "A")
        first = pool.submit("A", str, 1)
        with pytest.raises(QueueFull):
            pool.submit("A", str, 2)
        follow = pool.submit("A", str, 3, bounded=False)
        gate.opened.set()
        assert (first.result(WAIT_S), follow.result(WAIT_S)) == ("1", "3")
    finally:
        pool.close(wait=True)


def test_the_retry_estimate_grows_with_the_queue_ahead() -> None:
    ticks = iter(range(10_000))
    pool = FairPool(workers=1, max_queued_per_owner=2, max_queued=100, clock=lambda: next(ticks))
    try:
        for _ in range(20):  # each job "takes" one tick of the injected clock
            pool.submit("A", str, 0).result(WAIT_S)
        assert pool.stats().service_s == pytest.approx(1.0, abs=0.02)
        gate, _ = hold(pool, "A")
        pool.submit("A", str, 1)
        pool.submit("A", str, 2)
        with pytest.raises(QueueFull) as alone:
            pool.submit("A", str, 3)
        pool.submit("B", str, 4)
        with pytest.raises(QueueFull) as shared:
            pool.submit("A", str, 5)
        # two queued of A's and the running one: ~3 jobs; with B taking turns, ~5
        assert alone.value.retry_after == pytest.approx(3.0, abs=0.1)
        assert shared.value.retry_after == pytest.approx(5.0, abs=0.1)
        gate.opened.set()
    finally:
        pool.close(wait=True)


# ---------------------------------------------------------------- cancellation


def test_a_cancelled_job_never_runs(pool: FairPool) -> None:
    order: list[str] = []
    run = recorder(order)
    gate, _ = hold(pool)
    keep = pool.submit("A", run, "kept")
    drop = pool.submit("A", run, "dropped")
    assert drop.cancel()
    assert pool.stats().queued == 1  # its place in the queue is free at once
    gate.opened.set()
    assert keep.result(WAIT_S) == "kept"
    with pytest.raises(CancelledError):
        drop.result(WAIT_S)
    pool.submit("A", run, "after").result(WAIT_S)
    assert order == ["kept", "after"]
    assert pool.stats().dropped == 1


def test_a_caller_that_leaves_drops_its_queued_job(pool: FairPool) -> None:
    order: list[str] = []
    run = recorder(order)

    async def scenario() -> None:
        gate, _ = hold(pool)
        waiting = asyncio.ensure_future(pool.run("B", run, "left"))
        for _ in range(100):
            await asyncio.sleep(0)
            if pool.stats().queued:
                break
        assert pool.stats().queued_by_owner == {"B": 1}
        waiting.cancel()  # the request's task is cancelled (its client left)
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.stats().queued == 0
        gate.opened.set()
        assert await pool.run("B", run, "next") == "next"

    asyncio.run(scenario())
    assert order == ["next"]
    assert pool.stats().dropped == 1


def test_a_job_error_reaches_its_caller_and_the_worker_carries_on(pool: FairPool) -> None:
    def boom() -> None:
        raise ValidationError("bad input")

    with pytest.raises(ValidationError, match="bad input"):
        pool.submit("A", boom).result(WAIT_S)
    assert pool.submit("A", str, 5).result(WAIT_S) == "5"


def test_closing_cancels_what_is_queued() -> None:
    pool = FairPool(workers=1)
    gate, _ = hold(pool)
    queued = pool.submit("A", str, 1)
    pool.close()
    assert queued.cancelled()
    gate.opened.set()
    with pytest.raises(Exception, match="shutting down"):
        pool.submit("A", str, 2)
    pool.close(wait=True)


# ---------------------------------------------------------------- offload


def test_offload_runs_in_the_bound_pool_as_its_owner(pool: FairPool) -> None:
    def where() -> str:
        return threading.current_thread().name

    async def scenario() -> tuple[str, str, str]:
        unbound = await offload(where)
        with working_for(pool, "A"):
            bound = await offload(where)
            # a task started inside the block keeps the binding
            inner = await asyncio.ensure_future(offload(where))
        return unbound, bound, inner

    unbound, bound, inner = asyncio.run(scenario())
    assert not unbound.startswith("genai-cpu")  # asyncio's default executor
    assert bound.startswith("genai-cpu") and inner.startswith("genai-cpu")
    assert pool.stats().done == 2


def test_offload_is_refused_when_its_owner_queue_is_full() -> None:
    pool = FairPool(workers=1, max_queued_per_owner=1, max_queued=10)

    async def scenario() -> None:
        gate, _ = hold(pool, "A")
        pool.submit("A", str, 1)
        with working_for(pool, "A"), pytest.raises(QueueFull):
            await offload(str, 2)
        gate.opened.set()

    try:
        asyncio.run(scenario())
    finally:
        pool.close(wait=True)


# ---------------------------------------------------------------- admission rules


def test_a_quota_may_lower_the_operators_in_flight_limit_but_not_raise_it() -> None:
    pool = FairPool()
    try:
        operator = Admission(GatewayOptions(max_in_flight_per_project=10), pool)
        assert operator.limit_for(QuotaLimits()) == 10
        assert operator.limit_for(QuotaLimits(max_in_flight=3)) == 3
        assert operator.limit_for(QuotaLimits(max_in_flight=50)) == 10
        unlimited = Admission(GatewayOptions(max_in_flight_per_project=None), pool)
        assert unlimited.limit_for(QuotaLimits()) is None
        assert unlimited.limit_for(QuotaLimits(max_in_flight=50)) == 50
    finally:
        pool.close()


def test_chat_requests_over_the_token_limit_are_refused() -> None:
    options = GatewayOptions(max_request_tokens=1000)
    body = {"model": "m", "messages": [{"role": "user", "content": "x" * 400}]}
    assert 100 <= estimate_prompt_tokens(body) <= 130  # 4 characters a token, JSON included
    check_size("chat", {**body, "max_tokens": 800}, options)
    with pytest.raises(ValidationError, match="over this gateway's limit of 1000") as refused:
        check_size("chat", {**body, "max_tokens": 450, "n": 2}, options)
    assert refused.value.field == "max_tokens"
    assert "GENAI_GATEWAY_MAX_REQUEST_TOKENS" in refused.value.message
    with pytest.raises(ValidationError) as long_prompt:
        check_size("completions", {"model": "m", "prompt": "y" * 8000}, options)
    assert long_prompt.value.field == "messages"


def test_embedding_limits_name_the_limit_the_value_and_the_fix() -> None:
    options = GatewayOptions(
        max_embedding_inputs=3, max_embedding_input_tokens=10, max_embedding_tokens=25
    )
    check_size("embeddings", {"input": ["a", "b", "c"]}, options)
    check_size("embeddings", {"input": "one text"}, options)
    with pytest.raises(ValidationError, match=r"'input' has 4 texts.*at most 3") as many:
        check_size("embeddings", {"input": ["a"] * 4}, options)
    assert "batches of 3 or fewer" in many.value.message
    check_embedding_tokens([10, 10, 5], options)
    with pytest.raises(ValidationError, match=r"input 1 has 11 tokens.*at most 10"):
        check_embedding_tokens([1, 11], options)
    with pytest.raises(ValidationError, match=r"have 30 tokens in all.*at most 25"):
        check_embedding_tokens([10, 10, 10], options)


def test_embedding_batches_keep_order_and_a_padded_token_budget() -> None:
    from genai.gateway._endpoints import batches

    assert batches([10] * 10, tokens=128, texts=32, longest=256) == [(0, 10)]  # 10 × 12
    # two 100-token texts do not fit 128 together; a text over the model's limit counts
    # only what the model reads, and alone it still makes a batch
    assert batches([100, 100, 5, 5, 5, 900, 1], tokens=128, texts=32, longest=256) == [
        (0, 1),
        (1, 2),
        (2, 5),
        (5, 6),
        (6, 7),
    ]
    assert batches([1] * 70, tokens=10_000, texts=32, longest=256) == [(0, 32), (32, 64), (64, 70)]
    assert batches([], tokens=128, texts=32, longest=256) == []
