"""A TTL cache that keeps the last good value of each key for when the store is down.

Prompts are read on every model call and change rarely, so a client keeps what it read for
a while (a label moved elsewhere takes effect within the TTL) and, past the TTL, serves the
last version it read when the metadata database cannot be reached: a notebook or a chatbot
keeps working through a database restart, with the prompt it was already using. Errors
that are answers (not found, forbidden) are never papered over.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import exc

from genai.errors import StoreUnavailable

__all__ = ["LastGoodCache", "is_unreachable"]

log = logging.getLogger("prompts")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


_UNREACHABLE = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.DisconnectionError,
    exc.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the store cannot be reached (not that the request was wrong)."""
    if isinstance(error, StoreUnavailable):
        return True
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, _UNREACHABLE)


class LastGoodCache(Generic[K, V]):
    """``get(key, load)``: the cached value while fresh, else ``load()``; when ``load``
    fails because the store is unreachable, the last value loaded for ``key`` (logged as a
    warning), or :class:`~genai.errors.StoreUnavailable` when there is none."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s < 0:
            raise ValueError("ttl_s must be at least 0")
        self.ttl_s = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}  # key → (loaded at, value)
        self._lock = threading.Lock()
        self.fallbacks = 0  # how many times a stale value stood in for the store

    def get(self, key: K, load: Callable[[], V], *, what: str = "") -> V:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and now - entry[0] < self.ttl_s:
            return entry[1]
        try:
            value = load()
        except Exception as error:
            if not is_unreachable(error):
                raise
            if entry is None:
                if isinstance(error, StoreUnavailable):
                    raise
                raise StoreUnavailable(
                    f"cannot reach the metadata database to read {what or key!r} ({error}), "
                    "and this process has no earlier copy of it: retry when the database is back"
                ) from error
            self.fallbacks += 1
            age = now - entry[0]
            log.warning(
                "the metadata database is unreachable (%s): using the copy of %s read %.0f s ago",
                str(error).splitlines()[0] if str(error) else type(error).__name__,
                what or key,
                age,
            )
            return entry[1]
        self.put(key, value)
        return value

    def peek(self, key: K) -> V | None:
        """The cached value while it is fresh, else None (no loading, no waiting)."""
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry[0] < self.ttl_s:
            return entry[1]
        return None

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if key not in self._entries and len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (self._clock(), value)

    def drop(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Forget entries (all, or those whose key matches): the next read goes to the store.
        A dropped entry is no longer a fallback either."""
        with self._lock:
            if predicate is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if predicate(k)]:
                    del self._entries[key]

    def expire(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Make entries stale (the next read goes to the store) but keep them as fallbacks."""
        with self._lock:
            for key, (_, value) in list(self._entries.items()):
                if predicate is None or predicate(key):
                    self._entries[key] = (float("-inf"), value)
