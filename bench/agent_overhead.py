"""Agent overhead: what an agent framework adds per step over a bare loop, through our gateway.

    .venv/bin/python bench/agent_overhead.py [--runs 30] [--steps 5] [--warmup 3] [--postgres]

One scripted task, S steps: S-1 calls of a tool ``add(a, b)`` and then a final answer, made
by the ``fake`` backend (scripted replies, no model) of a deployment served by a real
`genai gateway` process (its own process, SQLite under a fresh GENAI_HOME, a developer key,
quotas checked, the usage ledger on, the response cache off). Every contender gets its own
deployment, whose script holds the replies for all its runs, so the scripts never
interleave. Contenders:

- floor: a bare loop over the openai SDK (sync ``openai.OpenAI``, made once): a chat
  completion with the tool's spec, run the tool, append the messages, until a text answer;
- ours: ``agents.AgentRunner(...).run(agent, question)``: a durable run (LangGraph, the
  run, its checkpoints and trace in the platform's store; SQLite, and with --postgres also
  a second platform and gateway on PostgreSQL, measured against a floor through that
  gateway); and the same with ``durability="exit"`` (a checkpoint only when the run stops);
- openai-agents (``Runner.run`` with ``OpenAIChatCompletionsModel``, tracing off) and
  pydantic-ai (``Agent`` with ``OpenAIChatModel``), both pointed at the same gateway. They
  are installed in their own venv, bench/.venvs/agent-peers (created when missing: the
  openai-agents package is imported as ``agents``, which is our package's name), and run in
  one driver process there, on one event loop; with them runs "floor (peers' venv)", the
  same bare loop on that venv's openai SDK, as a control.

Runs are interleaved (one run of every contender per round, the order rotated each round)
so that drift on a shared machine hits all contenders alike. A run's wall time / S is its
per-step time; a contender's overhead is the median over rounds of (its per-step time minus
the floor's in the same round), with a bootstrap 95% confidence interval. Client CPU per
step (the contender's process, threads included) is reported too: it is what the overhead
is made of and is less disturbed by other load. Every run must end with the script's final
answer for that run (so each made exactly S model calls), and after the gateway stops its
usage ledger must hold S rows per run for every deployment.

``--profile FILE`` runs ours alone (SQLite) under cProfile and prints where its time goes
(on the thread of the runner's own loop, where ``AgentRunner.run`` runs; ``asyncio.to_thread``
runs inline then, so that the store's work is profiled too); ``--profile-durability exit``
profiles that mode.

Writes bench/results/agent_overhead.json and .md (not with --profile) and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _provenance import machine, ours_version, version
from _setups import BENCH, PY, Proc, SetupError, free_port, wait_ready
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

RESULTS = BENCH / "results"
PEERS_VENV = BENCH / ".venvs" / "agent-peers"
PEERS_SPEC = ["openai-agents", "pydantic-ai-slim[openai]"]
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
PROJECT = "bench"
INSTRUCTIONS = "Answer the question. Use the add tool for every sum."
QUESTION = "Add up the numbers, one step at a time."
console = Console(stderr=True)

FLOOR, OURS = "floor (bare openai SDK loop)", "ours (agents.AgentRunner, SQLite)"
OURS_EXIT = "ours, durability=exit (SQLite)"
FLOOR_PG, OURS_PG = "floor via the PostgreSQL gateway", "ours (agents.AgentRunner, PostgreSQL)"
PEER_FLOOR, OPENAI_AGENTS, PYDANTIC_AI = "floor (peers' venv)", "openai-agents", "pydantic-ai"


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


TOOL_SPEC = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


# --- the script ----------------------------------------------------------------------------


def final_answer(run: int, steps: int) -> str:
    return f"Run {run}: the sums are done, the last one is {add(steps - 1, run)}."


def script(runs: int, steps: int) -> list[Any]:
    """The fake backend's replies for ``runs`` runs: per run, S-1 tool calls (distinct
    arguments, so no loop detection fires) and then the run's own final answer."""
    replies: list[Any] = []
    for run in range(runs):
        for step in range(1, steps):
            arguments = json.dumps({"a": step, "b": run})
            call = {"id": f"call_{run}_{step}", "function": {"name": "add", "arguments": arguments}}
            replies.append({"tool_calls": [call]})
        replies.append(final_answer(run, steps))
    return replies


# --- the platform and its gateway ----------------------------------------------------------


@dataclass
class Platform:
    name: str
    settings: Any
    env: dict[str, str]
    key: str = ""
    url: str = ""  # the gateway's /v1
    proc: Proc | None = None
    deployments: dict[str, str] = field(default_factory=dict)  # contender → deployment


def prepare(platform: Platform, contenders: list[str], replies: list[Any]) -> None:
    """The platform's store, project, developer key and one fake deployment per contender
    (plus ``probe``, which answers the readiness checks from its default reply)."""
    import genai

    genai.init(platform.settings, admin="admin")
    with genai.connect(platform.settings, user="admin") as c:
        c.projects.create(PROJECT)
        platform.key = c.keys.create(PROJECT, role="developer").secret
        c.quotas.set(PROJECT, requests_per_minute=10_000_000, tokens_per_day=10**12)
        c.projects.set_option(PROJECT, "cache", False)  # every call must reach the script
        spec = {"name": "m", "backend": "fake", "options": {"replies": [], "default": "pong"}}
        c.registry.deployments.create(PROJECT, "probe", spec={"targets": [spec]})
        for number, contender in enumerate(contenders):
            name = f"task-{number}"
            # a model_id of its own: deployments with the same spec may share one backend
            options = {"replies": replies, "model_id": f"fake-{name}"}
            spec = {"name": "m", "backend": "fake", "options": options}
            c.registry.deployments.create(PROJECT, name, spec={"targets": [spec]})
            platform.deployments[contender] = name


@contextlib.contextmanager
def gateway(platform: Platform, work: Path) -> Iterator[None]:
    genai_cli = str(Path(PY).parent / "genai")
    port = free_port()
    cmd = [genai_cli, "gateway", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--no-access-log"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")} | platform.env
    platform.proc = Proc(
        f"genai gateway ({platform.name})", cmd, work / f"{platform.name}.log", env
    )
    try:
        platform.url = f"http://127.0.0.1:{port}/v1"
        wait_ready(platform.proc, platform.url + "/chat/completions", platform.key, "probe")
        platform.proc.settle()
        yield
    finally:
        platform.proc.stop()


def ledger(platform: Platform) -> dict[str, int]:
    """Usage rows with status ok per deployment (read after the gateway stopped)."""
    from sqlalchemy import func, select

    import genai
    from genai.store import schema as t

    with genai.connect(platform.settings, user="admin") as c, c.store.session() as s:
        query = (
            select(t.UsageRecord.model, func.count())
            .where(t.UsageRecord.status == "ok")
            .group_by(t.UsageRecord.model)
        )
        return {str(model): int(n) for model, n in s.execute(query)}


@contextlib.contextmanager
def pg_schema(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL schema of our own (dropped afterwards), as a SQLAlchemy URL."""
    import psycopg

    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except Exception as error:
        raise SetupError(f"PostgreSQL at {admin_url} is unreachable: {error}") from None
    schema = f"genai_bench_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')
        base = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
        try:
            yield f"{base}?options=-csearch_path%3D{schema}"
        finally:
            for attempt in range(5):
                try:
                    admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
                    break
                except psycopg.errors.DeadlockDetected:
                    time.sleep(0.2 * (attempt + 1))


# --- the contenders in this process ---------------------------------------------------------

Outcome = tuple[float, float, str]  # wall seconds, client CPU seconds, the final answer


def floor_loop(client: Any, model: str, max_turns: int) -> str:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": QUESTION},
    ]
    for _ in range(max_turns):
        reply = client.chat.completions.create(model=model, messages=messages, tools=[TOOL_SPEC])
        message = reply.choices[0].message
        if not message.tool_calls:
            return str(message.content)
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = add(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
    raise RuntimeError(f"no answer after {max_turns} model calls")


class Floor:
    def __init__(self, platform: Platform, contender: str, steps: int) -> None:
        import openai

        self.client = openai.OpenAI(base_url=platform.url, api_key=platform.key)
        self.model, self.steps = platform.deployments[contender], steps

    def __call__(self) -> Outcome:
        c0, t0 = time.process_time(), time.perf_counter()
        answer = floor_loop(self.client, self.model, self.steps + 2)
        return time.perf_counter() - t0, time.process_time() - c0, answer

    def close(self) -> None:
        self.client.close()


class Ours:
    def __init__(
        self, platform: Platform, contender: str, steps: int, durability: str = "sync"
    ) -> None:
        import agents
        import genai

        self.client = genai.connect(platform.settings, api_key=platform.key)
        self.runner = agents.AgentRunner(
            self.client,
            PROJECT,
            gateway=platform.url,
            api_key=platform.key,
            durability=durability,  # type: ignore[arg-type]
        )
        self.agent = agents.Agent(
            name="adder",
            model=platform.deployments[contender],
            instructions=INSTRUCTIONS,
            tools=[agents.tool(add)],
            budget=agents.Budget(max_steps=steps + 2),
        )
        self.steps = steps

    def __call__(self) -> Outcome:
        c0, t0 = time.process_time(), time.perf_counter()
        run = self.runner.run(self.agent, QUESTION)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if run.status != "completed" or run.steps != self.steps:
            raise RuntimeError(f"our run {run.run_id}: {run.status} after {run.steps} steps")
        return wall, cpu, str(run.output)

    def on_runner_loop(self, func: Callable[[], None]) -> None:
        """``func()`` on the thread of the runner's own loop, where the sync API runs."""

        async def call() -> None:
            func()

        self.runner._portal.call(call)  # the bench's profiler only: a private attribute

    def close(self) -> None:
        self.runner.close()
        self.client.close()


# --- the peers, in their own venv -----------------------------------------------------------

PEER_DRIVER = r'''
"""Runs openai-agents, pydantic-ai and a bare loop on this venv's openai SDK, one run per
request line on stdin ({"contender", "model", "max_turns"}); answers "@@" + JSON lines."""
import asyncio, importlib.metadata as md, json, sys, time

BASE_URL, KEY, INSTRUCTIONS, QUESTION = sys.argv[1:5]
TOOL_SPEC = json.loads(sys.argv[5])


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


def say(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
made = {}


def openai_agents(model, max_turns):
    import agents as oa
    from openai import AsyncOpenAI

    oa.set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=BASE_URL, api_key=KEY)
    agent = oa.Agent(
        name="adder",
        instructions=INSTRUCTIONS,
        model=oa.OpenAIChatCompletionsModel(model=model, openai_client=client),
        tools=[oa.function_tool(add)],
    )

    async def run():
        result = await oa.Runner.run(agent, QUESTION, max_turns=max_turns)
        return str(result.final_output)

    return run


def pydantic_ai(model, max_turns):
    from pydantic_ai import Agent
    from pydantic_ai.providers.openai import OpenAIProvider

    try:
        from pydantic_ai.models.openai import OpenAIChatModel as Model
    except ImportError:  # before 1.0
        from pydantic_ai.models.openai import OpenAIModel as Model
    chat = Model(model, provider=OpenAIProvider(base_url=BASE_URL, api_key=KEY))
    agent = Agent(chat, instructions=INSTRUCTIONS, tools=[add])

    async def run():
        result = await agent.run(QUESTION)
        return str(getattr(result, "output", None) or getattr(result, "data", ""))

    return run


def floor(model, max_turns):
    from openai import OpenAI

    client = OpenAI(base_url=BASE_URL, api_key=KEY)

    async def run():
        messages = [
            {"role": "system", "content": INSTRUCTIONS},
            {"role": "user", "content": QUESTION},
        ]
        for _ in range(max_turns):
            reply = client.chat.completions.create(
                model=model, messages=messages, tools=[TOOL_SPEC]
            )
            message = reply.choices[0].message
            if not message.tool_calls:
                return str(message.content)
            messages.append(message.model_dump(exclude_none=True))
            for call in message.tool_calls:
                result = add(**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
        raise RuntimeError("no answer")

    return run


MAKERS = {"openai-agents": openai_agents, "pydantic-ai": pydantic_ai, "floor": floor}
versions = {}
for dist in ("openai-agents", "pydantic-ai-slim", "openai"):
    try:
        versions[dist] = md.version(dist)
    except md.PackageNotFoundError:
        versions[dist] = None
say({"ready": True, "versions": versions, "python": sys.version.split()[0]})
for line in sys.stdin:
    ask = json.loads(line)
    key = (ask["contender"], ask["model"])
    try:
        if key not in made:
            made[key] = MAKERS[ask["contender"]](ask["model"], ask["max_turns"])
        c0, t0 = time.process_time(), time.perf_counter()
        answer = loop.run_until_complete(made[key]())
        say({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "answer": answer})
    except Exception as error:
        say({"error": f"{type(error).__name__}: {error}"})
'''


def ensure_peers(venv: Path) -> dict[str, str | None]:
    """Create the peers' venv when missing; return their versions (from the driver)."""
    py = venv / "bin" / "python"
    probe = "import agents, pydantic_ai.models.openai"
    if py.exists() and not subprocess.run([str(py), "-I", "-c", probe], check=False).returncode:
        return {}
    console.print(f"installing {' '.join(PEERS_SPEC)} into {venv} (about a minute)...")
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / "agent-peers-install.log"
    with log.open("wb") as out:
        for step in (
            [sys.base_prefix + "/bin/python3", "-m", "venv", "--clear", str(venv)],
            [str(py), "-m", "pip", "install", "-q", *PEERS_SPEC],
        ):
            if subprocess.run(step, check=False, stdout=out, stderr=subprocess.STDOUT).returncode:
                shutil.rmtree(venv, ignore_errors=True)
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
                raise SetupError(f"installing the peers failed; see {log}:\n{tail}")
    return {}


class PeerDriver:
    """The driver process in the peers' venv (``-I``, in a temp dir: our ``agents`` package
    must not shadow openai-agents')."""

    def __init__(self, venv: Path, platform: Platform, work: Path) -> None:
        path = work / "agent_peers_driver.py"
        path.write_text(PEER_DRIVER)
        cmd = [str(venv / "bin" / "python"), "-I", str(path), platform.url, platform.key]
        cmd += [INSTRUCTIONS, QUESTION, json.dumps(TOOL_SPEC)]
        self.log = (work / "peers.log").open("wb")
        self.popen = subprocess.Popen(
            cmd,
            cwd=work,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            start_new_session=True,
        )
        self.work = work
        hello = self._read()
        self.versions: dict[str, Any] = hello["versions"] | {"python": hello["python"]}

    def _read(self) -> dict[str, Any]:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            if line.startswith("@@"):
                return dict(json.loads(line[2:]))
        self.log.flush()
        tail = (self.work / "peers.log").read_text(errors="replace")[-3000:]
        raise SetupError(f"the peers' driver exited ({self.popen.poll()}):\n{tail}")

    def run(self, contender: str, model: str, max_turns: int) -> Outcome:
        assert self.popen.stdin is not None
        ask = {"contender": contender, "model": model, "max_turns": max_turns}
        self.popen.stdin.write(json.dumps(ask) + "\n")
        self.popen.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"{contender}: {answer['error']}")
        return float(answer["wall"]), float(answer["cpu"]), str(answer["answer"])

    def close(self) -> None:
        if self.popen.stdin:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)
        self.log.close()


def peer_runner(driver: PeerDriver, kind: str, model: str, turns: int) -> Callable[[], Outcome]:
    return lambda: driver.run(kind, model, turns)


# --- other load on the machine ----------------------------------------------------------------


class LoadMeter:
    """CPUs kept busy by processes outside the benchmark (this process, its gateways and
    the peers' driver) between two readings."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self.pids = pids
        self.last = self._read()

    def _read(self) -> tuple[float, float, float]:
        import psutil  # type: ignore[import-untyped, unused-ignore]

        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
        busy = sum(t) - idle - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        ours = 0.0
        for pid in [os.getpid(), *self.pids()]:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                for p in [process, *process.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        times = p.cpu_times()
                        ours += times.user + times.system
        return busy, ours, time.monotonic()

    def other(self) -> float:
        """Other processes' CPUs since the last call."""
        now = self._read()
        (busy0, ours0, t0), (busy1, ours1, t1) = self.last, now
        self.last = now
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / max(t1 - t0, 1e-9)


# --- statistics and the report ---------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def bootstrap_median(values: list[float], rounds: int = 4000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def summarize(
    times: dict[str, list[Outcome]], floors: dict[str, str], steps: int
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for name, outcomes in times.items():
        per_step = [wall * 1000 / steps for wall, _, _ in outcomes]
        cpu = [c * 1000 / steps for _, c, _ in outcomes]
        row: dict[str, Any] = {
            "runs": len(outcomes),
            "per_step_ms": {
                "median": statistics.median(per_step),
                "p10": quantile(per_step, 0.1),
                "p90": quantile(per_step, 0.9),
                "mean": statistics.fmean(per_step),
            },
            "client_cpu_per_step_ms": {"median": statistics.median(cpu)},
            "floor": floors.get(name),
        }
        base = floors.get(name)
        if base:
            paired = [
                (a[0] - b[0]) * 1000 / steps for a, b in zip(outcomes, times[base], strict=True)
            ]
            low, high = bootstrap_median(paired)
            row["overhead_ms"] = {
                "median": statistics.median(paired),
                "ci95": [low, high],
                "p90": quantile(paired, 0.9),
            }
            base_cpu = statistics.median(c * 1000 / steps for _, c, _ in times[base])
            row["client_cpu_over_floor_ms"] = statistics.median(cpu) - base_cpu
        rows[name] = row
    return rows


def goals(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    ours = rows.get(OURS, {}).get("overhead_ms")
    if not ours:
        return {}
    out: dict[str, Any] = {"ours_overhead_ms": ours["median"], "at_most_2ms": ours["median"] <= 2}
    for peer in (OPENAI_AGENTS, PYDANTIC_AI):
        theirs = rows.get(peer, {}).get("overhead_ms")
        if theirs:
            out[f"below_{peer}"] = ours["median"] < theirs["median"]
    return out


def table(rows: dict[str, dict[str, Any]], steps: int) -> Table:
    t = Table(title=f"Per step ({steps} model calls per run), through the gateway")
    for col in ("contender", "runs", "median", "p90", "overhead (median, 95% CI)", "client CPU"):
        t.add_column(col, justify="left" if col == "contender" else "right")
    for name, r in rows.items():
        s, o = r["per_step_ms"], r.get("overhead_ms")
        over = "-" if not o else f"{o['median']:+.2f} [{o['ci95'][0]:+.2f}, {o['ci95'][1]:+.2f}]"
        cpu = f"{r['client_cpu_per_step_ms']['median']:.2f} ms"
        t.add_row(name, str(r["runs"]), f"{s['median']:.2f}", f"{s['p90']:.2f}", over, cpu)
    return t


def markdown(report: dict[str, Any]) -> str:
    rows = report["results"]
    lines = [
        "| contender | runs | per step, median | p10 | p90 | added per step over its floor "
        "(median of paired rounds, 95% CI) | client CPU per step | client CPU over floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        s, o = r["per_step_ms"], r.get("overhead_ms")
        over = (
            "- (floor)"
            if not o
            else f"{o['median']:+.2f} ms [{o['ci95'][0]:+.2f}, {o['ci95'][1]:+.2f}]"
        )
        cpu_over = r.get("client_cpu_over_floor_ms")
        lines.append(
            f"| {name} | {r['runs']} | {s['median']:.2f} ms | {s['p10']:.2f} ms | "
            f"{s['p90']:.2f} ms | {over} | {r['client_cpu_per_step_ms']['median']:.2f} ms | "
            + ("-" if cpu_over is None else f"{cpu_over:+.2f} ms")
            + " |"
        )
    for name, why in report["not_run"].items():
        lines.append(f"| {name} | not run: {why.splitlines()[0][:150]} |")
    g = report["goals"]
    lines.append("")
    if g:
        peers = [p for p in (OPENAI_AGENTS, PYDANTIC_AI) if f"below_{p}" in g]
        lines.append(
            f"Goal: at most 2 ms added per step over the floor, and less than each peer adds. "
            f"Ours adds {g['ours_overhead_ms']:+.2f} ms per step "
            f"({'met' if g['at_most_2ms'] else 'NOT met'}: <= 2 ms"
            + "".join(
                f"; {'below' if g[f'below_{p}'] else 'NOT below'} {p}'s "
                f"{rows[p]['overhead_ms']['median']:+.2f} ms"
                for p in peers
            )
            + ")."
        )
    lines += ["", *report["notes"], "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


# --- profiling ours --------------------------------------------------------------------------


@contextlib.contextmanager
def inline_threads() -> Iterator[None]:
    """``asyncio.to_thread`` runs its function inline, so cProfile (this thread only) sees it."""
    original = asyncio.to_thread

    async def inline(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    asyncio.to_thread = inline
    try:
        yield
    finally:
        asyncio.to_thread = original


def profile_summary(stats_path: Path, calls: int, top: int = 40) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=stream)
    stats.sort_stats("cumulative")
    stream.write(f"(per step = cumulative / {calls} model calls)\n")
    for pattern in (r"/agents/", r"/langgraph/", r"/sqlalchemy/", r"/openai/|/httpx/|/httpcore/"):
        stream.write(f"\n==== top cumulative entries matching {pattern}\n")
        stats.print_stats(pattern, top)
    return stream.getvalue()


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="measured runs per contender")
    parser.add_argument("--steps", type=int, default=5, help="model calls per run (S)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs first, each")
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=PG_DEFAULT,
        default=None,
        metavar="URL",
        help=f"also run ours on PostgreSQL (a fresh schema there; default {PG_DEFAULT})",
    )
    parser.add_argument("--no-peers", action="store_true", help="floor and ours only")
    parser.add_argument("--peers-venv", type=Path, default=PEERS_VENV)
    parser.add_argument(
        "--profile", type=Path, metavar="FILE", help="profile ours alone into FILE; no report"
    )
    parser.add_argument(
        "--profile-durability",
        choices=("sync", "exit"),
        default="sync",
        help="with --profile: the durability of the profiled runs",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the temp dir and logs")
    args = parser.parse_args()
    if args.steps < 1 or args.runs < 2:
        parser.error("--steps must be at least 1 and --runs at least 2")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks

    for name in ("GENAI_DATABASE_URL", "GENAI_REDIS_URL", "GENAI_HOME"):
        os.environ.pop(name, None)  # each platform is configured here, not by the caller's
    import genai

    work = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    total = args.warmup + args.runs
    replies = script(total, args.steps)
    sqlite_names = [FLOOR, OURS, OURS_EXIT]
    peers = not args.no_peers and not args.profile
    if peers:
        sqlite_names += [PEER_FLOOR, OPENAI_AGENTS, PYDANTIC_AI]
    if args.profile:
        sqlite_names = [OURS if args.profile_durability == "sync" else OURS_EXIT]
    home = work / "sqlite-home"
    sqlite = Platform("sqlite", genai.Settings(home=home, user="admin"), {})
    sqlite.env = {"GENAI_HOME": str(home), "GENAI_USER": "admin"}
    platforms = [sqlite]
    not_run: dict[str, str] = {}
    versions: dict[str, Any] = {
        "ours": ours_version("agents", "genai"),
        "openai": version("openai"),
    }
    versions["langgraph"] = version("langgraph")
    times: dict[str, list[Outcome]] = {}
    ledgers: dict[str, dict[str, int]] = {}
    expected_rows = total * args.steps

    with contextlib.ExitStack() as stack:
        stack.callback(
            lambda: (
                console.print(f"logs kept in {work}")
                if args.keep_logs
                else shutil.rmtree(work, ignore_errors=True)
            )
        )
        prepare(sqlite, sqlite_names, replies)
        if args.postgres and not args.profile:
            try:
                url = stack.enter_context(pg_schema(args.postgres))
                pg_home = work / "pg-home"
                pg = Platform("postgresql", genai.Settings(home=pg_home, database_url=url), {})
                pg.env = {
                    "GENAI_HOME": str(pg_home),
                    "GENAI_DATABASE_URL": url,
                    "GENAI_USER": "admin",
                }
                prepare(pg, [FLOOR_PG, OURS_PG], replies)
                platforms.append(pg)
            except Exception as error:  # measured without PostgreSQL, said so in the report
                not_run[OURS_PG] = f"PostgreSQL: {error}"
                console.print(f"[yellow]PostgreSQL not measured: {error}")
        for platform in platforms:
            stack.enter_context(gateway(platform, work))

        runners: dict[str, Callable[[], Outcome]] = {}
        floors: dict[str, str] = {}
        closers: list[Callable[[], None]] = []
        if FLOOR in sqlite.deployments:
            floor = Floor(sqlite, FLOOR, args.steps)
            runners[FLOOR] = floor
            closers.append(floor.close)
        if OURS in sqlite.deployments:
            ours = Ours(sqlite, OURS, args.steps)
            runners[OURS], floors[OURS] = ours, FLOOR
            closers.append(ours.close)
        if OURS_EXIT in sqlite.deployments:
            ours_exit = Ours(sqlite, OURS_EXIT, args.steps, durability="exit")
            runners[OURS_EXIT], floors[OURS_EXIT] = ours_exit, FLOOR
            closers.append(ours_exit.close)
        if len(platforms) > 1:
            pg = platforms[1]
            pg_floor, pg_ours = Floor(pg, FLOOR_PG, args.steps), Ours(pg, OURS_PG, args.steps)
            runners[FLOOR_PG], runners[OURS_PG], floors[OURS_PG] = pg_floor, pg_ours, FLOOR_PG
            closers += [pg_floor.close, pg_ours.close]
        if peers:
            try:
                ensure_peers(args.peers_venv)
                driver = PeerDriver(args.peers_venv, sqlite, work)
                closers.append(driver.close)
                versions["peers"] = driver.versions
                for name, kind in (
                    (PEER_FLOOR, "floor"),
                    (OPENAI_AGENTS, "openai-agents"),
                    (PYDANTIC_AI, "pydantic-ai"),
                ):
                    model = sqlite.deployments[name]
                    runners[name] = peer_runner(driver, kind, model, args.steps + 2)
                    floors[name] = FLOOR
                floors[PEER_FLOOR] = FLOOR
            except SetupError as error:
                for name in (OPENAI_AGENTS, PYDANTIC_AI):
                    not_run[name] = str(error)
                console.print(f"[yellow]peers not measured: {error}")
        for close in reversed(closers):
            stack.callback(close)

        names = list(runners)
        times = {name: [] for name in names}
        profiler = cProfile.Profile() if args.profile else None
        own = [p.proc.popen.pid for p in platforms if p.proc]
        if "peers" in versions:
            own.append(driver.popen.pid)
        meter, other_load = LoadMeter(lambda: own), []
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("warm-up", total=total * len(names))
            for round_ in range(total):
                if round_ == args.warmup:
                    progress.update(task, description="measuring")
                    meter.other()
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    measured = round_ >= args.warmup
                    runner = runners[name]
                    if profiler and measured and isinstance(runner, Ours):
                        with inline_threads():  # cProfile sees one thread: the runner's loop
                            runner.on_runner_loop(profiler.enable)
                            outcome = runner()
                            runner.on_runner_loop(profiler.disable)
                    else:
                        outcome = runner()
                    if outcome[2] != final_answer(round_, args.steps):
                        raise RuntimeError(
                            f"{name}, run {round_}: answered {outcome[2]!r}, expected "
                            f"{final_answer(round_, args.steps)!r}: it did not make exactly "
                            f"{args.steps} model calls per run"
                        )
                    if measured:
                        times[name].append(outcome)
                    progress.advance(task)
                if round_ >= args.warmup:
                    other_load.append(meter.other())
        for close in reversed(closers):
            close()
        closers.clear()
        for platform in platforms:  # stopped gracefully: the ledger is flushed
            assert platform.proc is not None
            platform.proc.stop()
            ledgers[platform.name] = ledger(platform)

    if profiler and args.profile:
        profiler.dump_stats(str(args.profile))
        print(profile_summary(args.profile, args.runs * args.steps))
        (profiled,) = times.values()
        step = statistics.median(w * 1000 / args.steps for w, _, _ in profiled)
        print(f"ours under cProfile: {step:.2f} ms per step (median), profile in {args.profile}")
        return

    load = {"mean": statistics.fmean(other_load), "max_round": max(other_load)}
    problems = []
    for platform in platforms:
        for name, deployment in platform.deployments.items():
            got = ledgers[platform.name].get(deployment, 0)
            if name in times and got != expected_rows:
                problems.append(f"{name}: {got} ledger rows for {expected_rows} model calls")
    rows = summarize(times, floors, args.steps)
    command = ".venv/bin/python bench/agent_overhead.py " + " ".join(sys.argv[1:])
    peer_versions = versions.get("peers", {})
    notes = [
        f"Machine: {machine()}; the gateway, this process and the peers' driver share them. "
        f"Other load during the measured rounds (CPUs busy with processes outside the "
        f"benchmark{', PostgreSQL included' if len(platforms) > 1 else ''}): "
        f"{load['mean']:.2f} on average, {load['max_round']:.2f} in the busiest round.",
        f"Versions: {versions['ours']}; langgraph {versions['langgraph']}; openai "
        f"{versions['openai']}"
        + (
            f"; peers' venv (Python {peer_versions.get('python')}): openai-agents "
            f"{peer_versions.get('openai-agents')}, pydantic-ai-slim "
            f"{peer_versions.get('pydantic-ai-slim')}, openai {peer_versions.get('openai')}"
            if peer_versions
            else ""
        )
        + ".",
        f"Task: {args.steps} model calls per run ({args.steps - 1} calls of a tool "
        "`add(a, b)`, then a final answer) scripted by the `fake` backend of a deployment "
        "per contender; `genai gateway --workers 1 --no-access-log` in its own process, "
        "a developer key, quotas checked, the usage ledger on, the response cache off.",
        f"{args.runs} measured runs per contender after {args.warmup} warm-up runs, "
        "interleaved: one run of each contender per round, the order rotated each round. "
        "Per step = a run's wall time / S. Added per step = median over rounds of (the "
        "contender's per-step time - its floor's in the same round); 95% CI by bootstrap. "
        "Client CPU = the contender's process CPU (all threads) during the run / S; for "
        "ours it includes its SQLite writes, not the PostgreSQL server's work.",
        "ours: `AgentRunner.run` (the sync API: an event loop and an AsyncOpenAI client per "
        "run), durable (LangGraph's durability=sync: each step's checkpoint written before "
        "the next, the run's row and its trace at the end, in the platform's store); "
        "`durability=exit` writes the checkpoint only when the run stops (a side-effecting "
        "tool is still claimed before it runs). floor: sync `openai.OpenAI` made once. Peers: one "
        "process in their own venv, one event loop, a client made once per contender; "
        "openai-agents `Runner.run` with `OpenAIChatCompletionsModel` and tracing disabled, "
        "pydantic-ai `Agent.run` with `OpenAIChatModel`; `floor (peers' venv)` is the bare "
        "loop on that venv's openai SDK, a control for the SDK version.",
        "Checks: every run answered its own scripted final text (so it made exactly S model "
        "calls) and "
        + (
            "the usage ledger holds S rows per run for every deployment."
            if not problems
            else "the usage ledger DISAGREES: " + "; ".join(problems)
        ),
    ]
    if args.postgres and OURS_PG in rows:
        notes.append(
            "PostgreSQL: a second platform (a fresh schema, dropped afterwards) and its own "
            "gateway; ours on it is compared with a floor through that gateway."
        )
    meta = {"command": command, "args": vars(args) | {"peers_venv": str(args.peers_venv)}}
    report = meta | {
        "machine": machine(),
        "versions": versions,
        "results": rows,
        "not_run": not_run,
        "goals": goals(rows),
        "other_load_cpus": load,
        "ledger_problems": problems,
        "notes": notes,
    }
    console.print(table(rows, args.steps))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "agent_overhead.json").write_text(json.dumps(report, indent=2, default=str))
    text = markdown(report)
    (RESULTS / "agent_overhead.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
