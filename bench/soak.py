"""Soak: the gateway's memory over minutes of cache misses, with DLP, the cache and a bot.

    .venv/bin/python bench/soak.py [--minutes 5] [--concurrency 4] [--sample-s 5]
        [--max-entries N] [--cache-vectors memory] [--baseline OLD/soak.json]

One real `genai gateway --workers 1` process (SQLite and embedded Chroma under a temporary
GENAI_HOME) in front of the fast stub upstream (bench/_stub_upstream.py), set up as
`genai up` sets up a project: a DLP policy (personal data pseudonymised), the semantic
cache on, a knowledge base with the `qa@production` prompt and a knowledge-bot deployment
beside a plain `chat` deployment. A closed loop of --concurrency clients sends distinct
questions for --minutes: every one a cache miss, most with an e-mail address and a new
`x-genai-session` (so the DLP vault gains a session per request), some without personal
data (one busy cache scope, with a Chroma collection of its own), some to the
knowledge bot (a trace row each). The gateway's RSS is sampled every --sample-s seconds.

The gateway runs with the bounds it ships with (the cache keeps 100,000 entries a project,
so in minutes it only fills). --max-entries N sets GENAI_GATEWAY_CACHE_MAX_ENTRIES to make
the cache evict within the run, and --cache-vectors memory sets GENAI_GATEWAY_CACHE_VECTORS.
The gateway gives the memory it freed back to the system every 30 s, so RSS is a sawtooth:
the report gives the growth over every sample and over the floor of each 30 s. --baseline
draws an earlier run's soak.json (say, before a change) beside this one; --from-json
writes the report of an earlier run again.

Writes bench/results/soak.json and soak.md (the table: RSS after warm-up and at the end,
growth per request after warm-up) and, when matplotlib is importable (here or in
bench/.venvs/*), soak.png (RSS over time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
sys.path.insert(0, str(BENCH))

from _setups import Proc, SetupError, free_port  # noqa: E402

PREPARE = """
import sys, genai
from apps._knowledge import DEFAULT_PROMPT
from apps.cli._up import bot_spec
from apps.deployments import apply_spec
from cache import ProjectCaches
from genai.dlp import Policy, ProjectPolicies
from prompts import PromptHub
from rag import KnowledgeBases

home, stub, docs = sys.argv[1], sys.argv[2], sys.argv[3]
settings = genai.Settings(home=home, user="soak")
genai.init(settings)
with genai.connect(settings) as c:
    c.projects.create("soak")
    ProjectCaches(c).enable("soak")  # the semantic cache is opt-in
    key = c.keys.create("soak", role="developer").secret
    c.quotas.set("soak", requests_per_minute=10_000_000, tokens_per_day=10**12)
    ProjectPolicies(c).set("soak", Policy())  # pseudonymise personal data, as `genai up`
    KnowledgeBases(c).create("soak", "docs").ingest([docs])
    hub = PromptHub(c, "soak")
    hub.label(hub.push("qa", DEFAULT_PROMPT, message="soak").ref, "production")
    apply_spec(c, "soak", "docs-bot", bot_spec({"backend": "extractive"}))
    c.registry.deployments.create("soak", "chat", spec={"targets": [
        {"name": "stub", "url": stub + "/v1", "model": "stub-model"}]})
print(key)
"""

_WORDS = ["account", "invoice", "refund", "parcel", "contract", "password", "booking"]
_WORDS += ["ticket", "warranty", "subscription", "delivery", "payment", "address", "order"]
_WORDS += ["statement", "licence", "device", "voucher", "transfer", "appointment", "upgrade"]
_WORDS += ["insurance", "mortgage", "pension", "loan", "card", "claim", "complaint", "return"]
_ASKS = (
    "How do I change the {a} on my {b} number {n}?",
    "Why was {a} {n} charged twice after the {b} update?",
    "Can you move {a} {n} to the {b} of next month?",
    "What happens to my {a} {n} when the {b} expires?",
    "Where do I find the {a} for {b} {n}?",
)


def questions(*, seed: int = 0) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """Distinct requests, forever: (model, body, headers). 6 in 10 carry an e-mail address
    and a new session, 3 in 10 no personal data, 1 in 10 go to the knowledge bot."""
    rng = random.Random(seed)
    for n in itertools.count(1):
        a, b = rng.sample(_WORDS, 2)
        text = rng.choice(_ASKS).format(a=a, b=b, n=n * 7919 % 1_000_003)
        kind = n % 10
        headers: dict[str, str] = {}
        model = "chat"
        if kind < 6:
            text = f"I am user{n}@example.com. {text}"
            headers["x-genai-session"] = f"soak-{seed}-{n}"
        elif kind == 9:
            model = "docs-bot"
            headers["x-genai-session"] = f"soak-{seed}-{n}"
        yield model, {"messages": [{"role": "user", "content": text}], "max_tokens": 16}, headers


def prepare(home: str, stub: str) -> str:
    """A platform under ``home`` set up for the soak; the project's key."""
    env = _env(home)
    docs = ROOT / "README.md"
    out = subprocess.run(
        [PY, "-c", PREPARE, home, stub, str(docs)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if out.returncode:
        raise SetupError(f"preparing the platform failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def _env(home: str, max_entries: int | None = None, vectors: str = "") -> dict[str, str]:
    env = os.environ | {"GENAI_HOME": home, "GENAI_USER": "soak", "HF_HUB_OFFLINE": "1"}
    for name in ("GENAI_DATABASE_URL", "GENAI_REDIS_URL", "GENAI_CHROMA_URL"):
        env.pop(name, None)  # the embedded defaults: SQLite, Chroma under GENAI_HOME
    if max_entries is not None:
        env["GENAI_GATEWAY_CACHE_MAX_ENTRIES"] = str(max_entries)
    if vectors:
        env["GENAI_GATEWAY_CACHE_VECTORS"] = vectors
    return env


# --- the load -------------------------------------------------------------------------


async def drive(
    url: str, key: str, *, seconds: float, concurrency: int, counts: dict[str, int]
) -> None:
    """A closed loop of ``concurrency`` clients for ``seconds``, counting answers."""
    import httpx

    stream = questions(seed=int(time.time()))
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < deadline:
                model, body, headers = next(stream)
                headers["authorization"] = f"Bearer {key}"
                try:
                    r = await client.post(
                        "/v1/chat/completions", json={"model": model, **body}, headers=headers
                    )
                except httpx.HTTPError:
                    counts["errors"] += 1
                    continue
                if r.status_code != 200:
                    counts["errors"] += 1
                elif r.headers.get("x-genai-cache") == "hit":
                    counts["hits"] += 1
                else:
                    counts["misses"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def sample_rss(proc: Proc) -> float:
    import psutil

    try:
        root = psutil.Process(proc.popen.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20


async def soak(url: str, key: str, proc: Proc, args: argparse.Namespace) -> list[dict]:
    counts = {"misses": 0, "hits": 0, "errors": 0}
    samples: list[dict] = []
    started = time.monotonic()
    load = asyncio.create_task(
        drive(url, key, seconds=args.minutes * 60, concurrency=args.concurrency, counts=counts)
    )
    while not load.done():
        rss = await asyncio.to_thread(sample_rss, proc)
        samples.append({"t_s": round(time.monotonic() - started, 1), "rss_mib": round(rss, 1)})
        samples[-1] |= {name: value for name, value in counts.items()}
        done = counts["misses"] + counts["hits"]
        print(f"  {samples[-1]['t_s']:7.1f} s  {rss:7.1f} MiB  {done} answers", file=sys.stderr)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(load), args.sample_s)
    await load
    rss = await asyncio.to_thread(sample_rss, proc)
    samples.append({"t_s": round(time.monotonic() - started, 1), "rss_mib": round(rss, 1)} | counts)
    return samples


# --- the report -----------------------------------------------------------------------


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    var = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var if var else 0.0


def summarise(samples: list[dict], warmup_share: float, window_s: float = 30.0) -> dict[str, Any]:
    """RSS after warm-up (the first ``warmup_share`` of the run) and at the end, and the
    growth per request in between: the least-squares slope over every sample, and over the
    floor (the lowest sample of each ``window_s`` window). The gateway gives freed memory
    back to the system every 30 s (GENAI_GATEWAY_MALLOC_TRIM_S), so RSS is a sawtooth;
    its floor is what it keeps."""
    end = samples[-1]
    cut = end["t_s"] * warmup_share
    after = [s for s in samples if s["t_s"] >= cut]
    first = after[0]
    points = [(s["misses"] + s["hits"], s["rss_mib"]) for s in after]
    windows: dict[int, tuple[float, float]] = {}
    for sample, (x, y) in zip(after, points, strict=True):
        key = int((sample["t_s"] - cut) // window_s)
        if key not in windows or y < windows[key][1]:
            windows[key] = (x, y)
    floor = [windows[k] for k in sorted(windows)]
    return {
        "requests": end["misses"] + end["hits"],
        "misses": end["misses"],
        "hits": end["hits"],
        "errors": end["errors"],
        "seconds": end["t_s"],
        "warmup_s": round(first["t_s"], 1),
        "rss_after_warmup_mib": first["rss_mib"],
        "rss_end_mib": end["rss_mib"],
        "rss_peak_after_warmup_mib": max(y for _, y in points),
        "floor_first_mib": floor[0][1],
        "floor_last_mib": floor[-1][1],
        "requests_after_warmup": points[-1][0] - points[0][0],
        "growth_kib_per_request": round(_slope(points) * 1024, 3),
        "floor_growth_kib_per_request": round(_slope(floor) * 1024, 3),
    }


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "# Gateway soak: memory over minutes of cache misses",
        "",
        f"`{report['command']}` on {report['machine']} ({report['date']}).",
        "",
        "One `genai gateway --workers 1` (SQLite, embedded Chroma) with a DLP policy, the "
        "semantic cache and a knowledge bot; distinct questions from "
        f"{report['concurrency']} clients, most with personal data and a new session each; "
        f"cache bound GENAI_GATEWAY_CACHE_MAX_ENTRIES={report['max_entries'] or 'unset'}, its "
        "vectors in "
        f"{report.get('cache_vectors', 'chroma')} (GENAI_GATEWAY_CACHE_VECTORS), other bounds "
        "at their defaults.",
        "",
        *_table(s),
        *_baseline_rows(report),
        "",
        "Growth is the least-squares slope of RSS over answered requests after warm-up "
        f"(the first {report['warmup_share']:.0%} of the run), over every sample and over "
        "the lowest sample of each 30 s: the gateway gives freed memory back every 30 s, so "
        "its RSS is a sawtooth whose floor is what it keeps.",
        "",
        "| t (s) | RSS (MiB) | answered |",
        "|---:|---:|---:|",
    ]
    step = max(1, len(report["samples"]) // 30)
    shown = report["samples"][::step]
    if shown[-1] is not report["samples"][-1]:
        shown.append(report["samples"][-1])
    for row in shown:
        lines.append(f"| {row['t_s']:.0f} | {row['rss_mib']:.1f} | {row['misses'] + row['hits']} |")
    if report.get("plot"):
        lines += ["", f"![RSS over time]({report['plot']})"]
    return "\n".join(lines) + "\n"


def _table(s: dict[str, Any]) -> list[str]:
    floor = "–"
    if "floor_growth_kib_per_request" in s:
        floor = (
            f"{s['floor_first_mib']:.1f} → {s['floor_last_mib']:.1f} MiB, "
            f"{s['floor_growth_kib_per_request']:.2f} KiB/request"
        )
    return [
        "| requests | misses | errors | RSS after warm-up | RSS at the end | peak after warm-up "
        "| growth after warm-up (every sample) | floor of each 30 s after warm-up |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['requests']} | {s['misses']} | {s['errors']} | "
        f"{s['rss_after_warmup_mib']:.1f} MiB (at {s['warmup_s']:.0f} s) | "
        f"{s['rss_end_mib']:.1f} MiB | {s['rss_peak_after_warmup_mib']:.1f} MiB | "
        f"{s['growth_kib_per_request']:.2f} KiB/request | {floor} |",
    ]


def _baseline_rows(report: dict[str, Any]) -> list[str]:
    base = report.get("baseline")
    if not base:
        return []
    s = base["summary"]
    return [
        "",
        f"Baseline (`{base['command']}`, {base['date']}, {base.get('note', 'an earlier run')}):",
        "",
        *_table(s),
    ]


PLOT = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
report = json.load(open(sys.argv[1]))
fig, ax = plt.subplots(figsize=(7.5, 3.8))
top = 0
runs = [(report.get("baseline"), "grey", "before the bounds")] if report.get("baseline") else []
runs.append((report, "tab:blue", "now"))
for run, colour, label in runs:
    xs = [s["misses"] + s["hits"] for s in run["samples"]]
    ys = [s["rss_mib"] for s in run["samples"]]
    top = max(top, max(ys))
    name = f"{label} ({run['summary']['growth_kib_per_request']:.1f} KiB/request after warm-up)"
    ax.plot(xs, ys, marker=".", color=colour, label=name)
ax.set_xlabel("distinct requests answered (all cache misses)")
ax.set_ylabel("gateway RSS (MiB)")
ax.set_ylim(0, top * 1.15)
ax.set_title("genai gateway RSS under a soak of cache misses")
ax.legend(loc="lower right")
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
"""


def plot(src: Path, dst: Path) -> bool:
    """soak.png with matplotlib from this interpreter or a bench venv; whether it was drawn."""
    candidates = [PY, *sorted(str(p) for p in BENCH.glob(".venvs/*/bin/python"))]
    for py in candidates:
        out = subprocess.run([py, "-c", PLOT, str(src), str(dst)], capture_output=True, check=False)
        if out.returncode == 0:
            return True
    print("  no matplotlib here or in bench/.venvs: soak.png not drawn", file=sys.stderr)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One soak: the platform, the stub, the gateway, the load; the report."""
    work = Path(tempfile.mkdtemp(prefix="genai-soak-"))
    home = str(work / "genai-home")
    stub_port = free_port()
    stub = Proc(
        "stub",
        [PY, str(BENCH / "_stub_upstream.py"), "--port", str(stub_port)],
        work / "stub.log",
    )
    gateway = None
    try:
        print(
            "preparing the platform (knowledge base, DLP policy, deployments)...", file=sys.stderr
        )
        key = prepare(home, f"http://127.0.0.1:{stub_port}")
        port = free_port()
        genai_cli = str(Path(PY).parent / "genai")
        cmd = [genai_cli, "gateway", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        gateway = Proc(
            "genai gateway",
            [*cmd, "--no-access-log"],
            work / "genai.log",
            _env(home, args.max_entries, args.cache_vectors),
        )
        url = f"http://127.0.0.1:{port}"
        _wait(gateway, url)
        gateway.settle()
        print(f"soaking for {args.minutes:g} minutes...", file=sys.stderr)
        samples = asyncio.run(soak(url, key, gateway, args))
    finally:
        if gateway is not None:
            gateway.stop()
        stub.stop()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "command": "bench/soak.py " + " ".join(sys.argv[1:]),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
        ),
        "date": time.strftime("%Y-%m-%d"),
        "concurrency": args.concurrency,
        "max_entries": args.max_entries,
        "cache_vectors": args.cache_vectors or "chroma",
        "warmup_share": args.warmup_share,
        "summary": summarise(samples, args.warmup_share),
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--sample-s", type=float, default=5.0)
    parser.add_argument("--max-entries", type=int, default=None)
    parser.add_argument("--warmup-share", type=float, default=0.2)
    parser.add_argument(
        "--cache-vectors",
        choices=["chroma", "memory"],
        default="",
        help="GENAI_GATEWAY_CACHE_VECTORS",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--baseline",
        type=Path,
        help="soak.json of an earlier run (before a change), drawn too",
    )
    parser.add_argument(
        "--from-json", type=Path, help="write the report of this soak.json again; no new run"
    )
    args = parser.parse_args()
    report = json.loads(args.from_json.read_text()) if args.from_json else run(args)
    report["summary"] = summarise(report["samples"], report["warmup_share"])
    report.pop("plot", None)
    if args.baseline is not None:
        baseline = json.loads(args.baseline.read_text())
        baseline.pop("baseline", None)
        baseline["summary"] = summarise(baseline["samples"], baseline["warmup_share"])
        report["baseline"] = baseline
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(report, indent=1))
    if plot(args.out / "soak.json", args.out / "soak.png"):
        report["plot"] = "soak.png"
    text = markdown(report)
    (args.out / "soak.md").write_text(text)
    print(text)


def _wait(proc: Proc, url: str, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise SetupError(f"the gateway exited:\n{proc.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise SetupError(f"the gateway did not answer within {timeout:.0f} s:\n{proc.tail()}")


if __name__ == "__main__":
    main()
