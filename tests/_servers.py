"""Ports and processes of the servers tests start on loopback.

    from _servers import free_port, closed_port_url, wait_for_health

(tests/ is on sys.path under pytest; the ``free_port`` fixture of tests/conftest.py gives
the same function.)
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _clocks import wait_until

__all__ = ["closed_port_url", "free_port", "wait_for_health"]


def free_port() -> int:
    """A loopback TCP port nothing listens on now (for a server a test is about to start)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port_url() -> str:
    """An OpenAI-style base URL on a loopback port nothing listens on (refused at once)."""
    return f"http://127.0.0.1:{free_port()}/v1"


def wait_for_health(
    url: str,
    process: subprocess.Popen[Any],
    *,
    timeout: float = 60.0,
    output: Callable[[], str] = lambda: "",
) -> None:
    """Return once ``GET url`` answers 200. Fail the test, with ``output()`` (the server's
    log), when the process exits first or nothing answers within ``timeout`` seconds (a
    bound against a hang, never a measure of speed)."""

    def settled() -> bool:
        if process.poll() is not None:
            return True
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1).status_code == 200
        return False

    answered = wait_until(settled, timeout=timeout, interval=0.05)
    if process.poll() is not None:
        pytest.fail(f"the server exited ({process.returncode}) before {url} answered:\n{output()}")
    if not answered:
        pytest.fail(f"nothing answered at {url} in {timeout:.0f} s:\n{output()}")
