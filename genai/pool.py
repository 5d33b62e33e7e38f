"""A bounded thread pool that shares its workers fairly between owners (AI Projects).

asyncio's default executor runs blocking calls first come, first served, for every caller
of the process, with no bound on what waits. When one project sends twenty thousand
texts to embed, every other project's cache lookup, DLP check and knowledge-bot answer
queues behind them for minutes. :class:`FairPool` is the alternative for CPU work:

- a fixed number of worker threads;
- one FIFO queue per owner, and fair queuing by worker time between owners with queued
  work (start-time fair queuing): the next job is the oldest of the owner that has used
  the least worker time, an owner coming back from idle starting level with the busiest
  rather than with credit saved up, and owners that used the same time taking turns.
  An owner with fifty long jobs queued delays another owner's next job by at most the
  jobs already running, and whatever the sizes of their jobs, owners with work waiting
  share the workers' time equally (counting jobs instead would give a project of 500 ms
  jobs twenty times the CPU of one of 25 ms jobs);
- bounded queues: past ``max_queued_per_owner`` jobs of one owner, :meth:`FairPool.submit`
  raises :class:`QueueFull` (a :class:`~genai.errors.QuotaExceeded`, HTTP 429: that owner
  is over its share); past ``max_queued`` jobs in all, :class:`PoolOverloaded` (a
  :class:`~genai.errors.BackendError` with status 503: the process is overloaded). Both
  at once, never after a wait, and with ``retry_after`` estimated from recent service
  times;
- a job whose caller left (its future cancelled, or the awaiting task cancelled) before a
  worker took it is dropped, never run;
- ``bounded=False`` submits the next step of work already admitted (the next sub-batch of
  an accepted request): it always queues, so admitted work is never cut off half-way; the
  gateway's in-flight limit per project bounds how much of it there can be.

Jobs should be short (tens of milliseconds): a worker is not preempted, so the wait of
another owner's job is at most the running jobs' remaining time. Split long work
(a large batch to embed) into several jobs submitted one after another.

:func:`offload` runs a blocking call in the pool and owner bound to the current context
(:func:`working_for`; the gateway binds each request to its project), or in asyncio's
default executor when nothing is bound: library code that has no notion of a project
(an in-process LLM backend) uses it, and becomes fair wherever a gateway runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from genai.errors import BackendError, QuotaExceeded

__all__ = [
    "FairPool",
    "PoolOverloaded",
    "PoolStats",
    "QueueFull",
    "offload",
    "working_for",
]

T = TypeVar("T")

_RETRY_MIN_S, _RETRY_MAX_S = 0.5, 60.0


class QueueFull(QuotaExceeded):
    """One owner has as many jobs queued as it may: it is over its share (HTTP 429)."""


class PoolOverloaded(BackendError):
    """Every queue together is full: the process cannot take more work now (HTTP 503)."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(
            message, backend="gateway", status=503, retryable=True, retry_after=retry_after
        )


@dataclass(frozen=True)
class PoolStats:
    workers: int
    running: int
    queued: int
    queued_by_owner: dict[Hashable, int]
    service_s: float  # the recent mean time of one job
    done: int
    dropped: int  # jobs cancelled before they started
    refused: int


@dataclass(eq=False)  # a job is itself: two equal calls are still two jobs
class _Job:
    owner: Hashable
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    future: Future[Any]
    charged: float = 0.0  # worker time charged to its owner when it started (an estimate)


class FairPool:
    """Worker threads shared fairly (by worker time) between owners, with bounded queues;
    see the module docstring. An owner is any hashable; the gateway's are project names."""

    def __init__(
        self,
        *,
        workers: int = 2,
        max_queued_per_owner: int = 32,
        max_queued: int = 256,
        name: str = "genai-cpu",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a pool needs at least one worker, not {workers}")
        if max_queued_per_owner < 1 or max_queued < max_queued_per_owner:
            raise ValueError(
                "the queue bounds must be at least 1, and the overall one at least the "
                f"per-owner one (got {max_queued_per_owner} per owner, {max_queued} in all)"
            )
        self.workers = workers
        self.max_queued_per_owner = max_queued_per_owner
        self.max_queued = max_queued
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queues: dict[Hashable, deque[_Job]] = {}
        self._turns: deque[Hashable] = deque()  # owners with queued jobs, longest waiting first
        self._used: dict[Hashable, float] = {}  # worker seconds each owner used (virtual time)
        self._cost: dict[Hashable, float] = {}  # each owner's recent mean job time
        self._virtual = 0.0  # the virtual time of the last job started
        self._queued = 0
        self._running = 0
        self._service_s = 0.05
        self._done = self._dropped = self._refused = 0
        self._threads: list[threading.Thread] = []
        self._closed = False

    # ------------------------------------------------------------ submitting

    def submit(
        self, owner: Hashable, fn: Callable[..., T], /, *args: Any, bounded: bool = True
    ) -> Future[T]:
        """Queue ``fn(*args)`` as ``owner``'s; its future. Raises :class:`QueueFull` or
        :class:`PoolOverloaded` at once when ``bounded`` and the queues are full."""
        future: Future[T] = Future()
        job = _Job(owner, fn, args, future)
        with self._lock:
            if self._closed:
                raise BackendError(
                    "the gateway is shutting down: retry on another instance",
                    backend="gateway",
                    status=503,
                    retryable=True,
                    retry_after=1.0,
                )
            if bounded:
                self._check_room(owner)
            queue = self._queues.get(owner)
            if queue is None:
                queue = self._queues[owner] = deque()
                self._turns.append(owner)
                self._activate(owner)
            queue.append(job)
            self._queued += 1
            self._start_workers()
            self._ready.notify()
        future.add_done_callback(lambda f: self._cancelled(job) if f.cancelled() else None)
        return future

    async def run(
        self, owner: Hashable, fn: Callable[..., T], /, *args: Any, bounded: bool = True
    ) -> T:
        """:meth:`submit`, awaited; cancelling the awaiting task drops a job not started."""
        return await asyncio.wrap_future(self.submit(owner, fn, *args, bounded=bounded))

    def _check_room(self, owner: Hashable) -> None:
        queue = self._queues.get(owner)
        mine = len(queue) if queue is not None else 0
        if mine >= self.max_queued_per_owner:
            self._refused += 1
            cost = self._cost.get(owner, self._service_s)
            wait = self._estimate(mine * max(1, len(self._turns)), cost)
            raise QueueFull(
                f"project {owner!r} has {mine} jobs waiting for the gateway's CPU workers, the "
                f"most one project may queue: retry in {wait:.1f} s, or send fewer requests "
                "at once",
                retry_after=wait,
            )
        if self._queued >= self.max_queued:
            self._refused += 1
            wait = self._estimate(self._queued, self._service_s)
            raise PoolOverloaded(
                f"the gateway's CPU workers have {self._queued} jobs waiting, as many as they "
                f"may queue: retry in {wait:.1f} s",
                retry_after=wait,
            )

    def _estimate(self, jobs_ahead: int, cost: float) -> float:
        """Seconds until ``jobs_ahead`` jobs of ``cost`` seconds (and the running ones) are done."""
        wait = (cost * jobs_ahead + self._service_s * self._running) / self.workers
        return min(_RETRY_MAX_S, max(_RETRY_MIN_S, wait))

    def _activate(self, owner: Hashable) -> None:
        """An owner with nothing queued has work again: it starts level with the virtual
        time, never behind it (time it did not use while idle is not saved up)."""
        self._used[owner] = max(self._used.get(owner, 0.0), self._virtual)
        if len(self._used) > 4096:  # forget idle owners level with the virtual time
            for idle in [o for o in self._used if o not in self._queues]:
                if self._used[idle] <= self._virtual:
                    del self._used[idle]
                    self._cost.pop(idle, None)

    def _cancelled(self, job: _Job) -> None:
        """A job's future was cancelled: take it out of its queue if no worker has it."""
        with self._lock:
            queue = self._queues.get(job.owner)
            if queue is None:
                return
            try:
                queue.remove(job)
            except ValueError:
                return  # a worker took it already
            self._queued -= 1
            self._dropped += 1
            if not queue:
                del self._queues[job.owner]
                self._turns.remove(job.owner)

    # ------------------------------------------------------------ working

    def _start_workers(self) -> None:
        while len(self._threads) < self.workers:
            thread = threading.Thread(
                target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    def _next(self) -> _Job | None:
        """The next job: the oldest of the owner that used the least worker time, the
        longest waiting of those that used the same (under the lock); None: closing."""
        while not self._turns:
            if self._closed:
                return None
            self._ready.wait()
        owner = min(self._turns, key=self._used.__getitem__)
        self._turns.remove(owner)
        queue = self._queues[owner]
        job = queue.popleft()
        if queue:
            self._turns.append(owner)
        else:
            del self._queues[owner]
        self._virtual = max(self._virtual, self._used[owner])
        job.charged = self._cost.get(owner, self._service_s)  # corrected when it ends
        self._used[owner] += job.charged
        self._queued -= 1
        self._running += 1
        return job

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._next()
            if job is None:
                return
            ran = job.future.set_running_or_notify_cancel()  # False: cancelled just now
            started = self._clock()
            if ran:
                try:
                    result = job.fn(*job.args)
                except BaseException as error:  # the caller sees it, whatever it is
                    job.future.set_exception(error)
                else:
                    job.future.set_result(result)
            elapsed = self._clock() - started if ran else 0.0
            with self._lock:
                self._running -= 1
                self._charge(job, elapsed, ran=ran)
                if ran:
                    self._done += 1
                    self._service_s += 0.2 * (elapsed - self._service_s)
                else:
                    self._dropped += 1

    def _charge(self, job: _Job, elapsed: float, *, ran: bool) -> None:
        """The owner's time: what the job took, not what was estimated when it started."""
        if job.owner in self._used:
            self._used[job.owner] += elapsed - job.charged
        if ran:
            cost = self._cost.get(job.owner, elapsed)
            self._cost[job.owner] = cost + 0.3 * (elapsed - cost)

    # ------------------------------------------------------------ state

    def stats(self) -> PoolStats:
        with self._lock:
            return PoolStats(
                workers=self.workers,
                running=self._running,
                queued=self._queued,
                queued_by_owner={o: len(q) for o, q in self._queues.items()},
                service_s=self._service_s,
                done=self._done,
                dropped=self._dropped,
                refused=self._refused,
            )

    def close(self, *, wait: bool = False) -> None:
        """Stop taking jobs, cancel the queued ones; running ones finish (``wait``: join)."""
        with self._lock:
            self._closed = True
            jobs = [job for queue in self._queues.values() for job in queue]
            self._queues.clear()
            self._turns.clear()
            self._queued = 0
            self._ready.notify_all()
        for job in jobs:
            job.future.cancel()
        if wait:
            for thread in self._threads:
                thread.join()


# ---------------------------------------------------------------- the context's pool

_BOUND: contextvars.ContextVar[tuple[FairPool, Hashable] | None] = contextvars.ContextVar(
    "genai_fair_pool", default=None
)


@contextlib.contextmanager
def working_for(pool: FairPool, owner: Hashable) -> Iterator[None]:
    """Within the block (and in tasks it starts), :func:`offload` runs in ``pool`` as
    ``owner``'s work."""
    token = _BOUND.set((pool, owner))
    try:
        yield
    finally:
        _BOUND.reset(token)


async def offload(fn: Callable[..., T], /, *args: Any) -> T:
    """Run a blocking call off the event loop: in the pool bound by :func:`working_for`
    (as its owner's job: it may raise :class:`QueueFull` or :class:`PoolOverloaded`), or
    in asyncio's default executor when none is bound."""
    bound = _BOUND.get()
    if bound is None:
        return await asyncio.to_thread(fn, *args)
    pool, owner = bound
    return await pool.run(owner, fn, *args)
