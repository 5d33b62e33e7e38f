"""A throw-away platform for the notebooks: `genai init` and `genai up` (what `make run`
runs) under a temporary GENAI_HOME, the gateway on a free loopback port.

    platform = LocalPlatform.start()   # prints its progress; ~1 minute on 2 cores
    platform.v1, platform.key          # the gateway's /v1 URL, the demo project's key
    platform.stop()

It sets GENAI_HOME, GENAI_DATABASE_URL and GENAI_USER in this process too, so
``genai.connect()`` in the notebook opens the same store as the gateway's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

__all__ = ["LocalPlatform"]

GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalPlatform:
    """`genai up` as a child process (see the module's docstring)."""

    def __init__(self, home: Path, port: int, env: dict[str, str], args: list[str]) -> None:
        self.home, self.port, self.env = home, port, env
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [GENAI, "up", "--port", str(port), *args],
            env=env | {"PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        out = self.process.stdout
        assert out is not None
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(out.readline, "")))
        self._reader.start()

    @classmethod
    def start(cls, *, docs: list[Path] | None = None, timeout_s: float = 300) -> LocalPlatform:
        """``docs``: what the demo's ``docs`` knowledge base indexes (default: this
        project's README, ~40 s to index on 2 cores)."""
        home = Path(tempfile.mkdtemp(prefix="genai-notebook-"))
        settings = {
            "GENAI_HOME": str(home / "home"),
            "GENAI_DATABASE_URL": f"sqlite:///{home / 'genai.db'}",
            "GENAI_USER": "admin",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")} | settings
        os.environ.update(settings)  # genai.connect() here: the same store
        subprocess.run([GENAI, "init"], env=env, check=True, capture_output=True, text=True)
        print(f"genai init: {home}")
        platform = cls(home, free_port(), env, [a for d in docs or [] for a in ("--docs", str(d))])
        platform._wait(timeout_s)
        print(f"genai up: the gateway serves {platform.v1} (project demo)")
        return platform

    @property
    def v1(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def key(self) -> str:
        """The developer key of the demo project that `genai up` printed (once)."""
        (key,) = [x.strip() for x in self.lines if x.startswith("gk_") and len(x.strip()) > 50]
        return key

    def wait_for_models(self, *names: str, key: str | None = None, timeout_s: float = 30) -> None:
        """Until the gateway serves ``names`` to ``key`` (default: the demo project's): it
        reads a project's deployments again a few seconds after a change (``genai deploy
        apply`` and ``apply_spec`` alike)."""
        deadline = time.monotonic() + timeout_s
        headers = {"Authorization": f"Bearer {key or self.key}"}
        while True:
            listed = httpx.get(f"{self.v1}/models", headers=headers, timeout=10).json()["data"]
            missing = set(names) - {m["id"] for m in listed}
            if not missing:
                print("the gateway serves", ", ".join(names))
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the gateway does not serve {sorted(missing)}")
            time.sleep(0.5)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, timeout_s: float) -> None:
        deadline, shown = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            for line in self.lines[shown:]:
                if line.startswith("✓"):
                    print("  " + line.rstrip())
            shown = len(self.lines)
            if self.process.poll() is not None:
                raise RuntimeError("genai up exited:\n" + "".join(self.lines))
            # healthy, and `genai up` has asked the bot and the assistant their first questions
            if self._healthy() and any("total: 4 requests" in x for x in self.lines):
                return
            time.sleep(0.5)
        self.stop()
        raise TimeoutError("genai up did not start serving:\n" + "".join(self.lines))

    def stop(self) -> None:
        """Ctrl-C to `genai up`; the temporary home is removed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reader.join(timeout=10)
        shutil.rmtree(self.home, ignore_errors=True)
        print("genai up stopped")
