"""The `genai` command as users run it (a real process), for the e2e test modules:
``from _cli import Cli, GENAI``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"


class Cli:
    """Runs ``genai`` with its own home and database, as user ``admin``."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
        self.env |= {"GENAI_HOME": str(home), "GENAI_DATABASE_URL": db_url, "GENAI_USER": "admin"}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [GENAI, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert result.returncode == 0, f"genai {' '.join(args)} failed:\n{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """The one-line error of a command that must fail (exit status 1, no traceback)."""
        result = self(*args, ok=False)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]


class UpProcess:
    """``genai up --port PORT`` as a process (what `make run` runs), its output collected
    line by line; stopped with Ctrl-C when the ``with`` block ends."""

    def __init__(self, cli: Cli, port: int) -> None:
        self.port = port
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [GENAI, "up", "--port", str(port)],
            env=cli.env | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        stdout = self.process.stdout
        assert stdout is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(stdout.readline, "")))
        self._reader.start()

    @property
    def out(self) -> str:
        return "".join(self.lines)

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def key(self) -> str:
        """The developer key `genai up` printed (once)."""
        (key,) = [
            line for line in self.out.splitlines() if line.startswith("gk_") and len(line) > 50
        ]
        return key

    def wait_for(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "genai up exited:\n" + self.out
            if done():
                return
            time.sleep(0.2)
        raise AssertionError("genai up did not get there:\n" + self.out)

    def wait_until_serving(self) -> None:
        """Until the gateway is healthy and `genai up` has asked its own first questions."""

        def healthy() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
                )
            except httpx.HTTPError:
                return False

        self.wait_for(healthy)
        self.wait_for(lambda: "total: 4 requests" in self.out)  # the bot, the assistant: 1 + 3

    def __enter__(self) -> UpProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self._reader.join(timeout=10)
