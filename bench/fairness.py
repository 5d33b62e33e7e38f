"""Fairness: one project's flood leaves another project's latency within 2x of its quiet value.

    .venv/bin/python bench/fairness.py [--duration 30] [--rounds 3] [--b-rate 5] [--a-clients 48]

Starts the stub upstream (bench/_stub_upstream.py) and `genai gateway --workers 1` on a
fresh GENAI_HOME (SQLite, in-process counters, default fairness settings) with two
projects. `quiet-b`'s `chat` deployment is the stub behind the semantic cache: every
question B asks is new, so each request is a cache miss that embeds its question in the
gateway's CPU pool, asks the stub and stores the answer (the issue's "cache-miss chat").
B sends them at a fixed rate (open loop, latency from each request's due time) for
--duration seconds alone, then again while `flood-a` floods the gateway: --a-clients
clients (their own process) each send max-size embedding requests (--a-inputs texts of
--a-words words, the local all-MiniLM-L6-v2) back to back, waiting what Retry-After says
when refused (the openai SDK's behaviour; --a-ignore-retry-after retries at once).

Reports B's p50/p95/p99 quiet and under the flood (goal: flood p99 <= 2x quiet p99), A's
answers by status and the texts it had embedded, the gateway's RSS before and after, and
the CPU that processes outside the benchmark used meanwhile (other agents on a shared
machine spoil the figures; the report says how much). Before the change the issue measured
B's cache-miss chat at 55 s under a flood of one 20,000-text request, against 0.11 s quiet.

Writes bench/results/fairness.json and .md and prints the markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from _provenance import machine, ours_version
from _setups import BENCH, PY, Proc, free_port, wait_ready

RESULTS = BENCH / "results"
A, B = "flood-a", "quiet-b"
MODEL = "all-MiniLM-L6-v2"
SENTENCE = (
    "the gateway checks every request against its project quota and policy before the model "
    "answers so that one team cannot spend what another team needs for its own work today"
)
WORDS = SENTENCE.split(" ")

PREPARE = """
import json, sys, genai
from cache import ProjectCaches
settings = genai.Settings(home=sys.argv[1], user="bench")
genai.init(settings)
keys = {}
with genai.connect(settings) as c:
    for name in ("flood-a", "quiet-b"):
        c.projects.create(name)
        ProjectCaches(c).enable(name)  # the semantic cache is opt-in
        keys[name] = c.keys.create(name, role="developer").secret
        c.registry.deployments.create(name, "chat", spec={"targets": [
            {"name": "stub", "url": sys.argv[2] + "/v1", "model": "stub-model"}]})
print(json.dumps(keys))
"""

# ---------------------------------------------------------------- measuring


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def tree_rss_mb(proc: Proc) -> float:
    try:
        main = psutil.Process(proc.popen.pid)
        procs = [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    return sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20


class Load:
    """CPUs kept busy by processes outside the benchmark between start() and stop()."""

    def __init__(self, watched: list[Proc]) -> None:
        self.watched = watched

    def _sample(self) -> tuple[float, float]:
        t = psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return busy, ours + sum(p.cpu_seconds() for p in self.watched)

    def start(self) -> None:
        self._t0, (self._busy0, self._ours0) = time.monotonic(), self._sample()

    def stop(self) -> float:
        busy, ours = self._sample()
        wall = time.monotonic() - self._t0
        return max(0.0, (busy - self._busy0) - (ours - self._ours0)) / wall


async def steady(url: str, key: str, rate: float, duration: float, tag: str) -> dict[str, Any]:
    """B: open-loop cache-miss chat completions; latency from each request's due time."""
    headers = {"authorization": f"Bearer {key}"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:

        async def one(i: int, due: float) -> None:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            topic = WORDS[i % len(WORDS)]
            body = {
                "model": "chat",
                "max_tokens": 16,
                "messages": [
                    {
                        "role": "user",
                        "content": f"Question {i} of run {tag}: what does the {topic} "
                        f"policy say about request {uuid.uuid4().hex[:8]}?",
                    }
                ],
            }
            try:
                r = await client.post(url + "/chat/completions", json=body, headers=headers)
                status = str(r.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                latencies.append((time.monotonic() - due) * 1000)

        t0 = time.monotonic() + 0.2
        count = int(rate * duration)
        await asyncio.gather(*(one(i, t0 + i / rate) for i in range(count)))
    return {"sent": count, "statuses": statuses, "latencies": latencies}


# ---------------------------------------------------------------- the flood (own process)


async def flood(args: argparse.Namespace) -> dict[str, Any]:
    """A: clients sending max-size embedding requests back to back until the deadline."""
    texts = [
        " ".join(WORDS[(i + k) % len(WORDS)] for k in range(args.a_words)) + f" ({i})"
        for i in range(args.a_inputs)
    ]
    body = {"model": MODEL, "input": texts, "encoding_format": "base64"}
    raw = json.dumps(body).encode()
    headers = {"authorization": f"Bearer {args.flood_key}", "content-type": "application/json"}
    statuses: dict[str, int] = {}
    embedded = 0
    deadline = time.monotonic() + args.flood_seconds
    limits = httpx.Limits(max_connections=args.a_clients + 4)

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal embedded
        while time.monotonic() < deadline:
            try:
                r = await client.post(args.flood_url + "/embeddings", content=raw, headers=headers)
                status = str(r.status_code)
            except httpx.HTTPError as error:
                status, r = type(error).__name__, None
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                embedded += args.a_inputs
            elif r is not None and not args.a_ignore_retry_after:
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))

    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        tasks = [asyncio.ensure_future(client_loop(client)) for _ in range(args.a_clients)]
        await asyncio.sleep(args.flood_seconds)
        for task in tasks:
            task.cancel()  # the requests still waiting are abandoned: their clients leave
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "statuses": statuses,
        "texts_embedded": embedded,
        "body_bytes": len(raw),
        "seconds": args.flood_seconds,
    }


# ---------------------------------------------------------------- the run


def start_gateway(work: Path, stub: str) -> tuple[Proc, str, dict[str, str]]:
    home = work / "genai-home"
    env = os.environ | {"GENAI_HOME": str(home), "GENAI_USER": "bench"}
    for name in ("GENAI_DATABASE_URL", "GENAI_REDIS_URL"):
        env.pop(name, None)
    prep = subprocess.run(
        [PY, "-c", PREPARE, str(home), stub], check=True, capture_output=True, text=True, env=env
    )
    keys = json.loads(prep.stdout.strip().splitlines()[-1])
    port = free_port()
    cmd = [str(Path(PY).parent / "genai"), "gateway", "--port", str(port), "--no-access-log"]
    proc = Proc("genai gateway", cmd, work / "gateway.log", env)
    url = f"http://127.0.0.1:{port}/v1"
    wait_ready(proc, url + "/chat/completions", keys[B], "chat")
    warm = httpx.post(
        url + "/embeddings",
        json={"model": MODEL, "input": ["warm up"]},
        headers={"authorization": f"Bearer {keys[A]}"},
        timeout=120,
    )
    warm.raise_for_status()
    proc.settle()
    return proc, url, keys


def flood_phase(
    args: argparse.Namespace, url: str, keys: dict[str, str], load: Load, gateway: Proc
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """A floods (its own process) while B sends its steady rate; then A's clients leave."""
    cmd = [PY, __file__, "--flood-url", url, "--flood-key", keys[A]]
    cmd += ["--flood-seconds", str(args.flood_warmup + args.duration)]
    cmd += ["--a-clients", str(args.a_clients), "--a-inputs", str(args.a_inputs)]
    cmd += ["--a-words", str(args.a_words)]
    cmd += ["--a-ignore-retry-after"] if args.a_ignore_retry_after else []
    flooder = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    time.sleep(args.flood_warmup)
    rss = {"flood_start": tree_rss_mb(gateway)}
    load.start()
    b = asyncio.run(steady(url, keys[B], args.b_rate, args.duration, f"flood{uuid.uuid4()}"))
    b["other_load_cpus"] = load.stop()
    rss["flood_end"] = tree_rss_mb(gateway)
    out, _ = flooder.communicate(timeout=args.duration + args.flood_warmup + 300)
    a = json.loads(out.strip().splitlines()[-1])
    rss["settle_s"] = gateway.settle(timeout=600)  # abandoned requests: their jobs dropped
    return b, a, rss


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    stub_port = free_port()
    stub = f"http://127.0.0.1:{stub_port}"
    stub_cmd = [PY, str(BENCH / "_stub_upstream.py"), "--port", str(stub_port)]
    stub_proc = Proc("stub", stub_cmd, work / "stub.log")
    gateway: Proc | None = None
    rounds: list[dict[str, Any]] = []
    try:
        wait_ready(stub_proc, stub + "/v1/chat/completions", "sk-none", "stub", timeout=30)
        gateway, url, keys = start_gateway(work, stub)
        load = Load([stub_proc, gateway])
        asyncio.run(steady(url, keys[B], args.b_rate, 5.0, "warm"))  # warm paths, not measured
        gateway.settle()
        rss_before = tree_rss_mb(gateway)
        for n in range(args.rounds):
            print(f"== round {n + 1}: B alone, then under A's flood", file=sys.stderr)
            load.start()
            quiet = asyncio.run(steady(url, keys[B], args.b_rate, args.duration, f"q{n}"))
            quiet["other_load_cpus"] = load.stop()
            flooded, a, rss = flood_phase(args, url, keys, load, gateway)
            rounds.append({"quiet": quiet, "flood": flooded, "a": a, "rss_mb": rss})
            print(f"   B p99 quiet {_p99(quiet)} ms, flood {_p99(flooded)} ms", file=sys.stderr)
        rss_after = tree_rss_mb(gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        stub_proc.stop()
    return {"rounds": rounds, "rss_mb": {"before": rss_before, "after": rss_after}}


def _p99(phase: dict[str, Any]) -> str:
    value = percentiles(phase["latencies"])["p99"]
    return "-" if value is None else f"{value:.0f}"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Each phase's percentiles (all rounds' answers together), without the raw samples."""
    summary: dict[str, Any] = {}
    for phase in ("quiet", "flood"):
        rows = [r[phase] for r in results["rounds"]]
        statuses: dict[str, int] = {}
        for row in rows:
            for k, v in row["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        summary[phase] = {
            "sent": sum(r["sent"] for r in rows),
            "statuses": statuses,
            "latency_ms": percentiles([x for r in rows for x in r["latencies"]]),
            "p99_by_round_ms": [percentiles(r["latencies"])["p99"] for r in rows],
            "other_load_cpus": max(r["other_load_cpus"] for r in rows),
        }
    for r in results["rounds"]:
        for phase in ("quiet", "flood"):
            r[phase]["latency_ms"] = percentiles(r[phase].pop("latencies"))
    a_status: dict[str, int] = {}
    for r in results["rounds"]:
        for k, v in r["a"]["statuses"].items():
            a_status[k] = a_status.get(k, 0) + v
    summary["a"] = {
        "statuses": a_status,
        "texts_embedded": sum(r["a"]["texts_embedded"] for r in results["rounds"]),
        "body_bytes": results["rounds"][0]["a"]["body_bytes"],
        "seconds": sum(r["a"]["seconds"] for r in results["rounds"]),
    }
    summary["rss_mb"] = results["rss_mb"] | {
        "flood_end_max": max(r["rss_mb"]["flood_end"] for r in results["rounds"]),
        "settle_s_max": max(r["rss_mb"]["settle_s"] for r in results["rounds"]),
    }
    return summary


def markdown(report: dict[str, Any]) -> str:
    r, args = report["summary"], report["args"]
    q, f = r["quiet"]["latency_ms"], r["flood"]["latency_ms"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    lines = [
        "| B's cache-miss chat | p50 | p95 | p99 | max | p99 by round | answers | other load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in (("quiet", r["quiet"]), ("under A's flood", r["flood"])):
        lat = row["latency_ms"]
        by_round = ", ".join(ms(v) for v in row["p99_by_round_ms"])
        lines.append(
            f"| {name} | {ms(lat['p50'])} | {ms(lat['p95'])} | {ms(lat['p99'])} | "
            f"{ms(lat['max'])} | {by_round} | {row['statuses']} of {row['sent']} | "
            f"up to {row['other_load_cpus']:.2f} CPUs |"
        )
    ratio = f["p99"] / q["p99"] if q["p99"] and f["p99"] else None
    a, rss = r["a"], r["rss_mb"]
    goal = "Goal: not measured."
    if ratio is not None:
        goal = (
            f"Goal, B's p99 under the flood within 2x its quiet p99: {ratio:.2f}x "
            f"({'met' if ratio <= 2.0 else 'NOT met'})."
        )
    lines += [
        "",
        goal,
        "",
        f"A's flood: {args['a_clients']} clients, each request {args['a_inputs']} texts of "
        f"{args['a_words']} words ({a['body_bytes'] / 2**20:.2f} MiB), "
        f"{a['seconds']:g} s in all; answers by status {a['statuses']}; texts embedded "
        f"{a['texts_embedded']}.",
        f"Gateway RSS: {rss['before']:.0f} MB before the first flood, at most "
        f"{rss['flood_end_max']:.0f} MB at the end of a flood, {rss['after']:.0f} MB at the "
        f"end; idle again at most {rss['settle_s_max']:.1f} s after a flood's clients left.",
        "",
    ]
    lines += report["notes"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    parser.add_argument("--b-rate", type=float, default=5.0, help="B's requests per second")
    parser.add_argument("--a-clients", type=int, default=48)
    parser.add_argument("--a-inputs", type=int, default=2048, help="texts per A request")
    parser.add_argument("--a-words", type=int, default=60, help="words per A text")
    parser.add_argument("--a-ignore-retry-after", action="store_true")
    parser.add_argument("--flood-warmup", type=float, default=10.0, help="flood seconds first")
    parser.add_argument("--rounds", type=int, default=3, help="quiet + flood phases, repeated")
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--flood-url", help=argparse.SUPPRESS)
    parser.add_argument("--flood-key", help=argparse.SUPPRESS)
    parser.add_argument("--flood-seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_url:  # the flood's own process
        print(json.dumps(asyncio.run(flood(args))))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="fairness-bench-"))
    try:
        results = run(args, work)
    finally:
        if args.keep_logs:
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    command = ".venv/bin/python bench/fairness.py " + " ".join(sys.argv[1:])
    notes = [
        f"Machine: {machine()}; the stub, the gateway, B's client and A's flood share these "
        "CPUs (other load: CPUs used by processes outside the benchmark during the phase).",
        f"Version: {ours_version('genai', 'apps')}.",
        "Gateway: `genai gateway --workers 1 --no-access-log`, SQLite under a fresh "
        "GENAI_HOME, the semantic cache on (bundled all-MiniLM-L6-v2, embedded Chroma), the "
        "usage ledger on, default GENAI_GATEWAY_* fairness settings (one CPU-pool worker, "
        "32 queued jobs per project, 64 requests in progress per project, embedding jobs of "
        "at most 128 padded tokens).",
        f"B: open loop, {args.b_rate:g} req/s for {args.duration:g} s per phase, "
        f"{args.rounds} rounds of (quiet, flood), a new question each time (a cache miss: "
        "embed, search, ask the stub, store); latency from the request's due time to the end "
        "of the answer; percentiles over all rounds' answers. A's flood starts "
        f"{args.flood_warmup:g} s before B's flood phase, and its clients leave at its end.",
        f"Command: `{command}`",
    ]
    summary = summarize(results)
    report = {"command": command, "args": vars(args), "summary": summary, "notes": notes}
    report["rounds"] = results["rounds"]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fairness.json").write_text(json.dumps(report, indent=2))
    text = markdown(report)
    (RESULTS / "fairness.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
