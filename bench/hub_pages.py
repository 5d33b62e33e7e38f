"""Hub pages: server time per page (p50/p95) and the JavaScript each page ships (gzipped).

    .venv/bin/python bench/hub_pages.py [--ledger-rows 10000] [--entries 1000] [--requests 200]

A fresh platform (SQLite under a temporary GENAI_HOME) with one project holding
``--ledger-rows`` usage rows spread over 90 days and ``--entries`` registry entries (prompt
versions, datasets and runs, a third each), a gateway app with the admin API and the Hub
served by uvicorn on 127.0.0.1 in this process, and one signed-in HTTP client. Each page is
requested ``--warmup`` times, then ``--requests`` times in rounds (one request of every page
per round, so drift on a shared machine hits all pages alike); a request's time is the
client's, over loopback (the server's time plus a loopback round trip). The JavaScript of a
page is every ``<script src>`` it names, fetched and gzipped (level 9).

Goal (issue 22): p95 < 50 ms per page, < 50 KB of JavaScript per page. MLflow's UI is not
compared yet. Writes bench/results/hub_pages.json and .md and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import random
import re
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _provenance import ROOT, machine, ours_version

RESULTS = ROOT / "bench" / "results"
PROJECT = "bench"
PAGES = {
    "overview": "/hub/p/{p}",
    "deployments": "/hub/p/{p}/deployments",
    "chat": "/hub/p/{p}/chat/chat",
    "prompts": "/hub/p/{p}/prompts",
    "prompt (10 versions)": "/hub/p/{p}/prompts/prompt-0",
    "prompt diff": "/hub/p/{p}/prompts/prompt-0/diff?a=1&b=2",
    "registry": "/hub/p/{p}/registry",
    "dataset": "/hub/p/{p}/registry/datasets/data-0",
    "usage (model × day)": "/hub/p/{p}/usage",
    "evaluations": "/hub/p/{p}/evals",
    "agents": "/hub/p/{p}/agents",
    "knowledge": "/hub/p/{p}/knowledge",
}


def populate(settings: Any, *, ledger_rows: int, entries: int) -> str:
    """The project's data; returns an owner key."""
    import genai
    from genai.tenancy import UsageEvent
    from prompts import PromptHub, PromptTemplate

    genai.init(settings, admin="admin")
    rng = random.Random(7)
    with genai.connect(settings, user="admin") as admin:
        admin.projects.create(PROJECT)
        key = admin.keys.create(PROJECT, role="owner", name="bench").secret
        spec = {"targets": [{"name": "m", "backend": "fake", "options": {"default": "hi"}}]}
        admin.registry.deployments.create(PROJECT, "chat", spec=spec)
        start = datetime.now(UTC) - timedelta(days=90)
        events = [
            UsageEvent(
                model=f"model-{rng.randrange(5)}",
                prompt_tokens=rng.randrange(10, 500),
                completion_tokens=rng.randrange(10, 300),
                cost_usd=rng.random() / 100,
                latency_ms=rng.random() * 500,
                ts=start + timedelta(seconds=rng.randrange(90 * 86400)),
            )
            for _ in range(ledger_rows)
        ]
        for i in range(0, len(events), 1000):
            admin.usage.record(PROJECT, events[i : i + 1000])
        third = max(1, entries // 3)
        hub = PromptHub(admin, PROJECT)
        for n in range(third):
            template = PromptTemplate(
                messages=[("system", f"You are helper {n}."), ("user", "{{ question }}")],
                variables={"question": "str"},
            )
            hub.push(f"prompt-{n // 10}", template, message=f"version {n % 10 + 1}")
        for n in range(third):
            rows = [{"question": f"q{n}-{i}", "answer": f"a{i}", "score": i} for i in range(20)]
            admin.registry.datasets.register(PROJECT, f"data-{n}", rows, description="bench")
        for n in range(third):
            run = admin.registry.runs.start(PROJECT, f"run-{n}", kind="training")
            run.log({"loss": 1.0 / (n + 1)}, step=1)
            run.finish()
    return key


@contextlib.contextmanager
def serve(settings: Any) -> Iterator[str]:
    import uvicorn

    from apps.gateway import mount_platform
    from genai.gateway import GatewayOptions, create_gateway, create_gateway_app

    gateway = create_gateway(settings, options=GatewayOptions())
    app = create_gateway_app(gateway, settings=settings, admin=mount_platform)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def sign_in(http: httpx.Client, key: str) -> None:
    form = http.get("/hub/signin").text
    found = re.search(r'name="csrf" value="([^"]+)"', form)
    assert found, "no sign-in form"
    reply = http.post("/hub/signin", data={"key": key, "csrf": found.group(1)})
    assert reply.status_code == 303, reply.text


def javascript_kb(http: httpx.Client, html: str) -> float:
    total = 0
    for src in re.findall(r'<script[^>]*\bsrc="([^"]+)"', html):
        total += len(gzip.compress(http.get(src).content, compresslevel=9))
    return total / 1024


def measure(url: str, key: str, *, requests: int, warmup: int) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=url, timeout=60) as http:
        sign_in(http, key)
        paths = {name: path.format(p=PROJECT) for name, path in PAGES.items()}
        times: dict[str, list[float]] = {name: [] for name in paths}
        js = {}
        for name, path in paths.items():
            for _ in range(warmup):
                reply = http.get(path)
                assert reply.status_code == 200, (path, reply.status_code, reply.text[:300])
            js[name] = javascript_kb(http, reply.text)
        names = list(paths)
        for round_ in range(requests):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                began = time.perf_counter()
                http.get(paths[name])
                times[name].append((time.perf_counter() - began) * 1000)
    out = {}
    for name, samples in times.items():
        cuts = statistics.quantiles(samples, n=20)
        out[name] = {"p50_ms": statistics.median(samples), "p95_ms": cuts[18], "js_kb": js[name]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger-rows", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    from genai.settings import Settings

    with tempfile.TemporaryDirectory(prefix="hub-bench-") as home:
        settings = Settings(home=Path(home), user="admin")
        print("populating…", file=sys.stderr)
        key = populate(settings, ledger_rows=args.ledger_rows, entries=args.entries)
        with serve(settings) as url:
            print("measuring…", file=sys.stderr)
            pages = measure(url, key, requests=args.requests, warmup=args.warmup)
    report = {
        "machine": machine(),
        "ours": ours_version("apps"),
        "ledger_rows": args.ledger_rows,
        "registry_entries": args.entries,
        "requests_per_page": args.requests,
        "pages": pages,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "hub_pages.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"Hub pages, {args.ledger_rows} ledger rows and {args.entries} registry entries, "
        f"{args.requests} requests per page ({report['machine']}; {report['ours']}).",
        "",
        "| page | p50 (ms) | p95 (ms) | JavaScript (KB, gzipped) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in pages.items():
        lines.append(f"| {name} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['js_kb']:.1f} |")
    (RESULTS / "hub_pages.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
