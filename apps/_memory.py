"""Give the memory a long-running gateway freed back to the operating system.

glibc's allocator keeps freed memory in its arenas for reuse, and a gateway's threads
(the event loop, the CPU pool, SQLite and Chroma calls) leave those arenas fragmented: in
a soak of distinct requests the live heap stayed flat while RSS grew 17-37 KiB a request,
all of it free memory held by the allocator. ``malloc_trim(0)`` returns the free pages of
every arena; run every ``interval_s`` seconds it kept RSS within ~4 KiB a request of flat
in the same soak (bench/soak.py). A trim takes milliseconds; elsewhere than glibc
(macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import threading
from collections.abc import Callable

__all__ = ["start_malloc_trim"]

log = logging.getLogger("genai.gateway")

_threads: list[threading.Thread] = []  # the one trimmer of this process, once started
_lock = threading.Lock()


def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def start_malloc_trim(interval_s: float) -> bool:
    """Trim the allocator every ``interval_s`` seconds in a daemon thread (once per
    process; 0 turns it off). Whether a trimmer runs."""
    trim = _malloc_trim() if interval_s > 0 else None
    if trim is None:
        return False
    with _lock:
        if not _threads:
            thread = threading.Thread(
                target=_run, args=(trim, interval_s), name="genai-malloc-trim", daemon=True
            )
            thread.start()
            _threads.append(thread)
    return True


def _run(trim: Callable[[int], int], interval_s: float) -> None:
    pause = threading.Event()
    while not pause.wait(interval_s):
        try:
            trim(0)
        except Exception:  # a trimmer must never take the gateway down
            log.exception("malloc_trim failed; memory is no longer given back")
            return
