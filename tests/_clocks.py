"""Time in tests: a clock that moves only when the test says so, and a bounded wait.

Components that expire or wait on time take a ``clock`` (a ``Callable[[], float]``); a test
passes a :class:`genai.testing.ManualClock` (the ``clock`` fixture of tests/conftest.py) and
moves it with :meth:`~genai.testing.ManualClock.advance` instead of sleeping, so what it
checks never depends on how fast the machine is.

:func:`wait_until` is the one place tests read the real clock: it polls for something that
happens at once (or soon, in another thread or process) and gives up after a generous
``timeout`` so that a hang fails the test instead of stalling it. Its bound is never what
a test checks: ``assert wait_until(lambda: rows() == 4)`` asserts the rows.

    from _clocks import ManualClock, wait_until   # tests/ is on sys.path under pytest
"""

from __future__ import annotations

import time
from collections.abc import Callable

from genai.testing import ManualClock

__all__ = ["ManualClock", "wait_until"]


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.01
) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
