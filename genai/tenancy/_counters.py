"""Shared counters for quota windows: in-process, in the metadata store, or in Redis.

Every implementation offers the same atomic step: add ``amount`` to a counter unless that
would take it past ``limit``. Keys carry their window (``q:7:rpm:202611241031``), so an old
window's counter is simply never read again and expires after ``ttl_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from genai.errors import BackendError
from genai.store import Store, mask_url
from genai.store import schema as t

__all__ = [
    "AsyncCounters",
    "AsyncMemoryCounters",
    "AsyncRedisCounters",
    "Counters",
    "MemoryCounters",
    "RedisCounters",
    "SqlCounters",
]


@runtime_checkable
class Counters(Protocol):
    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]:
        """Add ``amount`` unless the result would exceed ``limit``.

        Returns ``(added, value)``: the new value when added, else the current one.
        """
        ...

    def get(self, key: str) -> int: ...


@runtime_checkable
class AsyncCounters(Protocol):
    """:class:`Counters` for an event loop (the gateway's)."""

    async def add(
        self, key: str, amount: int, *, limit: int | None, ttl_s: int
    ) -> tuple[bool, int]: ...

    async def get(self, key: str) -> int: ...


class MemoryCounters:
    """Counters of one process (thread-safe). The gateway's default without Redis. Windows
    expire in seconds of ``clock`` (injectable for tests)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._values: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]:
        now = self._clock()
        with self._lock:
            value, expires = self._values.get(key, (0, now + ttl_s))
            if expires <= now:
                value, expires = 0, now + ttl_s
            if limit is not None and value + amount > limit:
                return False, value
            self._values[key] = (value + amount, expires)
            if len(self._values) > 10_000:
                self._values = {k: v for k, v in self._values.items() if v[1] > now}
            return True, value + amount

    def get(self, key: str) -> int:
        with self._lock:
            value, expires = self._values.get(key, (0, 0.0))
            return value if expires > self._clock() else 0


class SqlCounters:
    """Counters in the metadata store: exact across processes and machines.

    The check and the increment are one conditional ``UPDATE``, so concurrent callers
    never lose an update nor overshoot a limit (the row lock on PostgreSQL, the write lock
    on SQLite).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._insert: Any = postgresql.insert if store.dialect == "postgresql" else sqlite.insert
        self._calls = 0

    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]:
        expires = t.utcnow() + timedelta(seconds=ttl_s)
        with self._store.session() as session:
            session.execute(
                self._insert(t.Counter)
                .values(key=key, value=0, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            statement = update(t.Counter).where(t.Counter.key == key)
            if limit is not None:
                statement = statement.where(t.Counter.value + amount <= limit)
            new = session.execute(
                statement.values(value=t.Counter.value + amount).returning(t.Counter.value)
            ).scalar_one_or_none()
            if new is not None:
                added, value = True, int(new)
            else:
                added = False
                value = int(
                    session.scalar(select(t.Counter.value).where(t.Counter.key == key)) or 0
                )
        self._calls += 1
        if self._calls % 500 == 0:
            self.purge_expired()
        return added, value

    def get(self, key: str) -> int:
        with self._store.session() as session:
            value = session.scalar(
                select(t.Counter.value).where(
                    t.Counter.key == key, t.Counter.expires_at > t.utcnow()
                )
            )
        return int(value or 0)

    def purge_expired(self) -> int:
        with self._store.session() as session:
            result = session.execute(delete(t.Counter).where(t.Counter.expires_at <= t.utcnow()))
        return int(getattr(result, "rowcount", 0) or 0)


_LUA_ADD = """
local value = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if limit >= 0 and value + amount > limit then
  return {0, value}
end
value = redis.call('INCRBY', KEYS[1], amount)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]), 'NX')
return {1, value}
"""


class RedisCounters:
    """Counters in Redis (``GENAI_REDIS_URL``), shared by every gateway process."""

    def __init__(self, url: str, *, prefix: str = "genai:") -> None:
        import redis  # a core dependency, imported here to keep `import genai` light

        self._url = url
        self._prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_LUA_ADD)

    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]:
        try:
            added, value = self._script(
                keys=[self._prefix + key], args=[amount, -1 if limit is None else limit, ttl_s]
            )
        except Exception as error:  # redis raises many classes; all are upstream failures
            raise self._error(error) from error
        return bool(added), int(value)

    def get(self, key: str) -> int:
        try:
            value = self._client.get(self._prefix + key)
        except Exception as error:
            raise self._error(error) from error
        return int(value or 0)

    def _error(self, error: Exception) -> BackendError:
        return _redis_error(mask_url(self._url), error)


class AsyncMemoryCounters:
    """In-process counters for an event loop (no I/O: the calls never wait)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._counters = MemoryCounters(clock=clock)

    async def add(
        self, key: str, amount: int, *, limit: int | None, ttl_s: int
    ) -> tuple[bool, int]:
        return self._counters.add(key, amount, limit=limit, ttl_s=ttl_s)

    async def get(self, key: str) -> int:
        return self._counters.get(key)


class AsyncRedisCounters:
    """Counters in Redis through ``redis.asyncio``: shared by every gateway process.

    At most ``max_connections`` calls talk to Redis at once; more wait (up to 2 s) for a
    free connection rather than fail (redis-py's plain pool refuses the 101st).
    """

    def __init__(self, url: str, *, prefix: str = "genai:", max_connections: int = 100) -> None:
        from redis import asyncio as aioredis

        self._url = mask_url(url)
        self._prefix = prefix
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=2,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        self._client = aioredis.Redis.from_pool(pool)
        self._script = self._client.register_script(_LUA_ADD)

    async def add(
        self, key: str, amount: int, *, limit: int | None, ttl_s: int
    ) -> tuple[bool, int]:
        try:
            added, value = await self._script(
                keys=[self._prefix + key], args=[amount, -1 if limit is None else limit, ttl_s]
            )
        except Exception as error:
            raise _redis_error(self._url, error) from error
        return bool(added), int(value)

    async def get(self, key: str) -> int:
        try:
            value = await self._client.get(self._prefix + key)
        except Exception as error:
            raise _redis_error(self._url, error) from error
        return int(value or 0)

    async def close(self) -> None:
        await self._client.aclose()


def _redis_error(url: str, error: Exception) -> BackendError:
    return BackendError(
        f"Redis at {url} failed: {error}. Check that it runs and that GENAI_REDIS_URL is right",
        backend="redis",
        status=503,  # the platform's own store, not an upstream, is unavailable
        retryable=True,
        retry_after=1.0,
    )
