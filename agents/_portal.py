"""One event loop in a daemon thread: what the sync API of a runner runs its coroutines on.

``asyncio.run`` per call would make a new loop each time, with a new thread pool for
``asyncio.to_thread`` and a new connection to the gateway for each run; a portal keeps
one of each for the runner's life, as a client made once keeps its connections. A
notebook's cell calls it the same way: its own loop is never blocked on, since the
coroutine runs on the portal's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Portal"]

T = TypeVar("T")


class Portal:
    """Runs coroutines on its own loop, in a daemon thread started on first use."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """``make()``'s result, run on the portal's loop; the caller's thread waits. An
        interrupt of the waiting thread (Ctrl-C) cancels the coroutine."""
        future = asyncio.run_coroutine_threadsafe(make(), self._started())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self, cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
        """Run ``cleanup`` on the loop (closing what lives there), then stop the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        if cleanup is not None:
            asyncio.run_coroutine_threadsafe(cleanup(), loop).result()

        async def stop() -> None:
            await loop.shutdown_asyncgens()
            await loop.shutdown_default_executor()
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        thread.join()
        loop.close()
