"""``ManualClock``: time that passes only when a test says so.

Components that expire, wait or count on time take their clock as a parameter: a
``Callable[[], float]`` of seconds (``time.monotonic`` or ``time.time`` by default), a
``Callable[[], datetime]`` for UTC timestamps (quota windows), an async ``sleep`` (the
gateway's retry backoff). One :class:`ManualClock` stands in for all three, consistently::

    clock = ManualClock()
    cache = CallerCache(store, ttl_s=10, clock=clock)           # seconds
    quota = AsyncQuotaEnforcer(counters, now=clock.now)         # datetimes
    gateway = Gateway(store, quota, clock=clock, sleep=clock.sleep)
    clock.advance(11)                                           # the entries expire
    assert clock.slept == [0.5, 1.0]                            # the backoff it waited

Nothing it serves depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

__all__ = ["ManualClock"]


class ManualClock:
    """Seconds that pass only on :meth:`advance` (or an awaited :meth:`sleep`); thread-safe.

    It starts at the current wall-clock time (``time.time()``) unless told otherwise, so it
    can stand in for ``time.time`` (timestamps stored in a database) as well as
    ``time.monotonic``.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()
        self.slept: list[float] = []  # every sleep awaited, in order

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def now(self) -> datetime:
        """The clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self(), UTC)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, not by {seconds} s")
        with self._lock:
            self._now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock by it at once (other tasks still get a turn)."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock({self():.3f})"
