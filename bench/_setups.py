"""Processes for the gateway benchmark: the stub upstream, LiteLLM's proxy, our gateway.

Each gateway setup is a context manager that starts the process (in its own session, logged
to a file), waits until a real chat completion answers 200, yields ``(url, key, model,
process)`` and always stops the process group on the way out. A setup that cannot be
installed or started raises ``SetupError`` with the reason and the log's tail.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PY = sys.executable
MASTER_KEY = "sk-bench-master-0123456789"
ANSWERED: collections.Counter[str] = collections.Counter()  # 200s seen by clients, per URL
CHAT = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 8}


class SetupError(RuntimeError):
    """A setup could not be installed or started: the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process in its own session, logged to a file, always stopped on exit."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None):
        self.name, self.log = name, log
        self._file = log.open("wb")
        self.popen = subprocess.Popen(
            cmd, stdout=self._file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    def tail(self) -> str:
        if not self._file.closed:
            self._file.flush()
        return self.log.read_text(errors="replace")[-4000:] or "(no output)"

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its children so far."""
        try:
            procs = [psutil.Process(self.popen.pid)]
            procs += procs[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0
        total = 0.0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = p.cpu_times()
                total += times.user + times.system
        return total

    def settle(self, timeout: float = 120.0) -> float:
        """Wait until the process is idle (under 10% of a CPU over half a second): done
        loading in the background, or done with abandoned requests. The seconds waited."""
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            cpu0 = self.cpu_seconds()
            time.sleep(0.5)
            if self.cpu_seconds() - cpu0 < 0.05:
                break
        return time.monotonic() - started

    def stop(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._file.close()


def wait_ready(proc: Proc, url: str, key: str, model: str, timeout: float = 120.0) -> None:
    """Poll with a real chat completion until it answers 200 with choices."""
    deadline, last = time.monotonic() + timeout, "no answer"
    headers = {"Authorization": f"Bearer {key}"}
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SetupError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        try:
            r = httpx.post(url, json={"model": model, **CHAT}, headers=headers, timeout=10)
            if r.status_code == 200 and "choices" in r.json():
                ANSWERED[url] += 1
                return
            last = f"HTTP {r.status_code}: {r.text[:300]}"
        except (httpx.HTTPError, ValueError) as error:
            last = repr(error)
        time.sleep(0.5)
    raise SetupError(f"{proc.name} did not answer within {timeout:.0f}s ({last}):\n{proc.tail()}")


# --- setups: each yields (url, key, model, process or None) -------------------------------


def ensure_litellm(venv: Path, spec: str) -> str:
    """Create the LiteLLM venv when missing; return litellm's version."""
    py = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        print(f"installing {spec} into {venv} (about a minute)...", file=sys.stderr)
        venv.parent.mkdir(parents=True, exist_ok=True)
        constraints = venv.parent / "constraints.txt"
        constraints.write_text("torch==2.13.0\n")  # never let anything pull a CUDA torch
        log = venv.parent / "litellm-install.log"
        with log.open("wb") as out:
            steps = [
                [sys.base_prefix + "/bin/python3", "-m", "venv", str(venv)],
                [str(py), "-m", "pip", "install", "-q", spec, "-c", str(constraints)],
            ]
            for step in steps:
                if subprocess.run(
                    step, check=False, stdout=out, stderr=subprocess.STDOUT
                ).returncode:
                    text = [
                        line for line in log.read_text().splitlines() if "WARNING: Loc" not in line
                    ]
                    shutil.rmtree(venv, ignore_errors=True)
                    raise SetupError(
                        f"installing {spec} failed ({' '.join(step[:4])}...); "
                        f"see {log}:\n" + "\n".join(text[-20:])
                    )
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=False,
        capture_output=True,
        text=True,
    )
    if out.returncode:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        raise SetupError(f"litellm is not installed in {venv} ({last}): delete it to reinstall")
    return out.stdout.strip()


@contextlib.contextmanager
def litellm_setup(
    work: Path, stub: str, venv: Path, access_log: bool = False
) -> Iterator[tuple[str, str, str, Proc]]:
    port = free_port()
    config = work / "litellm.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        model_list:
          - model_name: stub
            litellm_params:
              model: openai/stub-model
              api_base: {stub}/v1
              api_key: sk-upstream-unused
        general_settings:
          master_key: {MASTER_KEY}
        """)
    )
    env = os.environ | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no cost-map download at start
        "LITELLM_MODE": "PRODUCTION",  # no .env loading
        "DISABLE_ADMIN_UI": "True",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    if not access_log:  # uvicorn logs at ERROR: no line per request, LiteLLM's lightest
        env["LITELLM_LOG"] = "ERROR"
    env.pop("DATABASE_URL", None)  # no database: Prisma needs a binary download
    cmd = [str(venv / "bin" / "litellm"), "--config", str(config)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    proc = Proc("litellm", cmd, work / "litellm.log", env)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wait_ready(proc, url, MASTER_KEY, "stub")
        proc.settle()  # measure the steady state, not a start-up still finishing
        yield url, MASTER_KEY, "stub", proc
    finally:
        proc.stop()


PREPARE = """
import sys, genai
settings = genai.Settings(home=sys.argv[1], user="bench")
genai.init(settings)
with genai.connect(settings) as c:
    c.projects.create("bench")
    key = c.keys.create("bench", role="developer").secret
    c.quotas.set("bench", requests_per_minute=10_000_000, tokens_per_day=10**12)
    c.projects.set_option("bench", "cache", False)  # a proxy's overhead: LiteLLM caches nothing
    c.registry.deployments.create("bench", "stub", spec={"targets": [
        {"name": "stub", "url": sys.argv[2] + "/v1", "model": "stub-model"}]})
print(key)
"""


LEDGER = """
import json, sys, genai
settings = genai.Settings(home=sys.argv[1], user="bench")
with genai.connect(settings) as c:
    total = c.usage.report("bench").total
print(json.dumps({"requests": total.requests, "errors": total.errors,
                  "prompt_tokens": total.prompt_tokens,
                  "completion_tokens": total.completion_tokens}))
"""


def genai_ledger(work: Path) -> dict:
    """What the usage ledger holds for the benchmark's project (read after the gateway stops)."""
    env = os.environ | {"GENAI_HOME": str(work / "genai-home"), "GENAI_USER": "bench"}
    out = subprocess.run(
        [PY, "-c", LEDGER, str(work / "genai-home")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        return {"error": out.stderr.strip()[-500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def genai_setup(
    work: Path, stub: str, access_log: bool = False
) -> Iterator[tuple[str, str, str, Proc]]:
    genai_cli = str(Path(PY).parent / "genai")
    check = subprocess.run(
        [genai_cli, "gateway", "--help"], check=False, capture_output=True, text=True
    )
    if check.returncode:
        raise SetupError(f"`genai gateway` is not available: {check.stderr.strip()[-300:]}")
    home = work / "genai-home"
    env = os.environ | {"GENAI_HOME": str(home), "GENAI_USER": "bench"}
    for name in ("GENAI_DATABASE_URL", "GENAI_REDIS_URL"):
        env.pop(name, None)  # the embedded defaults: SQLite and in-process counters
    prep = subprocess.run(
        [PY, "-c", PREPARE, str(home), stub], check=False, capture_output=True, text=True, env=env
    )
    if prep.returncode:
        raise SetupError(f"preparing the platform failed:\n{prep.stderr[-3000:]}")
    key = prep.stdout.strip().splitlines()[-1]
    port = free_port()
    cmd = [genai_cli, "gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd.append("--access-log" if access_log else "--no-access-log")
    proc = Proc("genai gateway", cmd, work / "genai.log", env)
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        wait_ready(proc, url, key, "stub")
        proc.settle()  # the cache stage loads its embedding model in the background
        yield url, key, "stub", proc
    finally:
        proc.stop()
