"""The ragas worker process, seen from the eval: which python runs it, its environment,
and its requests and responses (JSON lines, many in flight, matched by id).

The worker (``eval/_ragas_worker.py``) is started on the first request, on the running
event loop; a worker that dies fails the requests it had (each becomes a reason) and is
started again on the next request, at most ``max_restarts`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import deque
from pathlib import Path
from typing import Any

from eval._tool_python import tool_python

__all__ = ["PYTHON_ENV", "RagasWorker", "ragas_python"]

PYTHON_ENV = "GENAI_RAGAS_PYTHON"
WORKER = Path(__file__).with_name("_ragas_worker.py")
_TAIL = 20
_START_TIMEOUT_S = 180.0


def ragas_python(python: str | Path | None = None) -> Path:
    """The interpreter that runs ragas: ``python``, else ``GENAI_RAGAS_PYTHON``, else this
    one when ragas is installed here."""
    return tool_python(
        python,
        env_var=PYTHON_ENV,
        module="ragas",
        package="ragas",
        extra="ragas",
        purpose="the ragas_* metrics",
        where=f"{PYTHON_ENV} or the metric's python option",
    )


def worker_environment(gateway: str, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENAI_", "VIRTUAL_ENV"))}
    env.update(
        GENAI_RAGAS_GATEWAY=gateway.rstrip("/"),
        GENAI_RAGAS_API_KEY=api_key,  # the environment, never the command line
        RAGAS_DO_NOT_TRACK="true",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
    )
    return env


class _Dead(Exception):
    """The worker ended (or never started); the message says how."""


class RagasWorker:
    """One worker process shared by a run's ragas metrics; :meth:`request` never raises for
    a worker's trouble: it returns ``{"reason": ...}``."""

    def __init__(self, *, python: Path, gateway: str, api_key: str, max_restarts: int = 2) -> None:
        self.python, self.gateway, self.api_key = python, gateway, api_key
        self.max_restarts = max_restarts
        self.starts = 0
        self._process: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reader: asyncio.Task[None] | None = None
        self._drainer: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._lock: asyncio.Lock | None = None
        self._stderr: deque[str] = deque(maxlen=_TAIL)
        self._last_death = ""

    @property
    def pid(self) -> int | None:
        """The running worker's process id (None before the first request, or once it
        ended)."""
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    async def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            process = await self._running()
        except _Dead as dead:
            return {"reason": str(dead)}
        self._next_id += 1
        ident = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        if self._reader is None or self._reader.done():  # it ended before we asked
            self._waiting.pop(ident, None)
            return {"reason": f"the ragas worker ended ({self._last_death})"}
        try:
            assert process.stdin is not None
            process.stdin.write((json.dumps({**payload, "id": ident}) + "\n").encode())
            await process.stdin.drain()
            return await future
        except (ConnectionError, BrokenPipeError, RuntimeError) as error:
            return {"reason": f"the ragas worker ended: {error}"}
        finally:
            self._waiting.pop(ident, None)

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                with contextlib.suppress(Exception):
                    process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self._reader
            self._reader = None

    def kill_now(self) -> None:
        """Stop the worker without waiting (a finaliser's last resort)."""
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    async def _running(self) -> asyncio.subprocess.Process:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new run's loop: the old process cannot be awaited
            self.kill_now()
            self._process, self._loop, self._lock, self._reader = None, loop, None, None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            process = self._process
            if process is not None and process.returncode is None:
                return process
            if self.starts > self.max_restarts:
                raise _Dead(
                    f"the ragas worker ended {self.starts} times; not started again "
                    f"(last: {self._last_death})"
                )
            self._process = await self._start()
            return self._process

    async def _start(self) -> asyncio.subprocess.Process:
        self.starts += 1
        self._stderr.clear()
        try:
            process = await asyncio.create_subprocess_exec(
                str(self.python),
                str(WORKER),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=worker_environment(self.gateway, self.api_key),
                limit=16 * 1024 * 1024,
            )
        except OSError as error:
            self._last_death = f"cannot start {self.python}: {error}"
            raise _Dead(f"the ragas worker did not start: {self._last_death}") from error
        assert process.stdout is not None and process.stderr is not None
        self._drainer = asyncio.create_task(self._drain(process.stderr))
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), _START_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        if not ready.startswith(b'{"ready"'):
            if process.returncode is None:
                process.kill()
            await process.wait()
            await asyncio.sleep(0)  # let the stderr drain catch up
            self._last_death = f"exit status {process.returncode}: {self._tail()}"
            raise _Dead(f"the ragas worker did not start ({self._last_death})")
        self._reader = asyncio.create_task(self._read(process))
        return process

    async def _drain(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr.append(text[:300])

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        while line := await process.stdout.readline():
            with contextlib.suppress(ValueError):
                response = json.loads(line)
                future = self._waiting.get(response.pop("id", None))
                if future is not None and not future.done():
                    future.set_result(response)
        code = await process.wait()
        self._last_death = f"exit status {code}" + (f": {self._tail()}" if code else "")
        for future in list(self._waiting.values()):
            if not future.done():
                future.set_result({"reason": f"the ragas worker ended ({self._last_death})"})

    def _tail(self) -> str:
        lines = [line for line in self._stderr if line.strip()]
        return " | ".join(lines[-3:]) or "no output"
