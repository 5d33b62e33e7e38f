"""The usage ledger of the gateway, on SQLite and PostgreSQL: exactly one row per request
with its status, tokens, cost, target and latency after a concurrent burst; nothing lost
when the gateway shuts down gracefully right after a burst (the in-thread harness, and
SIGTERM to a real ``genai gateway`` process); rows of a deleted project dropped without
holding up anyone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from _clocks import wait_until
from _gateway_harness import (
    GatewayProject,
    LiveGateway,
    gateway_process,
    new_project,
    run_gateway,
)
from sqlalchemy import Connection

import genai
from genai.gateway import GatewayOptions
from genai.store import Store
from genai.testing import FakeOpenAIServer, running_server

PRICE = {"input_per_1m": 1000.0, "output_per_1m": 2000.0}
# bursts wider than a project's default requests in progress (64): none is refused here
BURST = GatewayOptions(ledger_interval_s=0.05, max_in_flight_per_project=None)
REPLY = "one two three four five"  # 5 completion tokens
HTTP = {"ok": 200, "upstream_error": 502, "invalid_request": 400}  # by ledger status


# ------------------------------------------------------------------ helpers


@pytest.fixture
def admin(settings: genai.Settings) -> Iterator[genai.Client]:
    genai.init(settings, admin="admin")
    with genai.connect(settings, user="admin") as client:
        yield client


@pytest.fixture
def upstreams() -> Iterator[tuple[FakeOpenAIServer, FakeOpenAIServer]]:
    """A working upstream and a broken one (500 on every call)."""
    good, bad = FakeOpenAIServer(reply=REPLY), FakeOpenAIServer()
    bad.mode = "error500"
    with running_server(good.app) as good_url, running_server(bad.app) as bad_url:
        good.url, bad.url = good_url + "/v1", bad_url + "/v1"
        yield good, bad


def make_project(
    admin: genai.Client, name: str, upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer]
) -> GatewayProject:
    good, bad = upstreams
    project = new_project(admin, name)
    for deployment, upstream, target in (("chat", good, "main"), ("broken", bad, "flaky")):
        where = {"name": target, "url": upstream.url, "model": "fake-base", "price": PRICE}
        spec = {
            "targets": [where],
            "retries": 0,
            "circuit": {"failures": 10_000},  # every failure is a 502, never a 503
        }
        project.deploy(spec, name=deployment)
    return project


@dataclass
class Sent:
    """One request of a burst and what its ledger row must say."""

    body: dict[str, Any]
    status: str  # the ledger's
    prompt_tokens: int
    completion_tokens: int
    target: str
    http_status: int = 0
    request_id: str = ""
    usage: Any = None  # what the client was told
    key: str = ""  # another project's key than the batch's

    @property
    def cost(self) -> float:
        spent = self.prompt_tokens * PRICE["input_per_1m"]
        return (spent + self.completion_tokens * PRICE["output_per_1m"]) / 1e6


def mixed(n: int) -> list[Sent]:
    """Whole answers and streams (with and without usage), upstream failures, refusals."""
    sent = []
    for i in range(n):
        words = 1 + i % 17
        body: dict[str, Any] = {
            "model": "chat",
            "messages": [{"role": "user", "content": " ".join(["w"] * words)}],
            # every request must reach the upstream: a repeated body without a temperature
            # could be answered by a gateway whose cache stage is on (a temperature above the
            # project's cache.max_temperature, 0 by default, is never cached)
            "temperature": 0.7,
        }
        kind = i % 6
        if kind in (1, 2, 4):
            body["stream"] = True
        if kind == 1:
            body["stream_options"] = {"include_usage": True}
        if kind in (0, 1, 2):
            sent.append(Sent(body, "ok", words, 5, "main"))
        elif kind in (3, 4):
            body["model"] = "broken"
            sent.append(Sent(body, "upstream_error", 0, 0, ""))
        else:  # longer than the upstream's context: its 400 is the caller's mistake
            body["messages"][0]["content"] = " ".join(["w"] * 70)
            sent.append(Sent(body, "invalid_request", 0, 0, ""))
    return sent


async def _one(client: aiohttp.ClientSession, url: str, sent: Sent) -> None:
    headers = {"authorization": f"Bearer {sent.key}"} if sent.key else None
    async with client.post(url, json=sent.body, headers=headers) as response:
        sent.http_status = response.status
        sent.request_id = response.headers["x-request-id"]
        raw = await response.read()
    if sent.http_status != 200:
        return
    if sent.body.get("stream"):
        for line in raw.decode().splitlines():
            if line.startswith("data: {") and '"usage"' in line:
                sent.usage = json.loads(line[6:]).get("usage") or sent.usage
    else:
        sent.usage = json.loads(raw)["usage"]


def send_all(v1: str, key: str, batch: list[Sent], concurrency: int = 64) -> None:
    """Send the batch with ``concurrency`` requests in flight at a time (aiohttp: a burst
    costs the client little of the CPU it shares with the gateway and the fakes)."""

    async def run() -> None:
        async with aiohttp.ClientSession(
            headers={"authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=concurrency),
        ) as client:
            await asyncio.gather(*(_one(client, v1 + "/chat/completions", s) for s in batch))

    asyncio.run(run())


# ------------------------------------------------------------------ a burst


def test_a_concurrent_burst_leaves_exactly_one_correct_row_per_request(
    admin: genai.Client,
    upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
) -> None:
    project = make_project(admin, "ledger", upstreams)
    gw = gateway_server(settings, options=BURST)
    batch = mixed(300)
    send_all(gw.v1, project.key, batch)

    for sent in batch:
        assert sent.http_status == HTTP[sent.status], sent
    for sent in batch:  # the client is told usage when it asks (or gets a whole answer)
        wants = not sent.body.get("stream") or "stream_options" in sent.body
        if sent.status == "ok" and wants:
            assert sent.usage["prompt_tokens"] == sent.prompt_tokens, sent
        elif sent.status == "ok":
            assert sent.usage is None, sent

    assert gw.gateway.ledger.flush(timeout_s=20)
    rows = project.rows()
    by_id = {row.request_id: row for row in rows}
    assert len(rows) == len(by_id) == len(batch)
    assert set(by_id) == {s.request_id for s in batch}
    for sent in batch:
        row = by_id[sent.request_id]
        assert row.status == sent.status, sent
        assert (row.prompt_tokens, row.completion_tokens) == (
            sent.prompt_tokens,
            sent.completion_tokens,
        ), sent
        assert row.cost_usd == pytest.approx(sent.cost), sent
        assert row.target == sent.target
        assert row.model == sent.body["model"]
        assert row.latency_ms > 0  # measured by the gateway (how long is not the point)
        assert row.key_id is not None and "via key" in row.principal
    assert Counter(r.status for r in rows) == {
        "ok": 150,
        "upstream_error": 100,
        "invalid_request": 50,
    }


# ------------------------------------------------------------------ graceful shutdown


@contextlib.contextmanager
def usage_writes_held(store: Store) -> Iterator[Connection]:
    """A transaction that keeps every other writer of ``usage_records`` waiting."""
    with store.engine.connect() as conn:
        conn.begin()  # on SQLite: BEGIN IMMEDIATE, the database's write lock
        if store.dialect == "postgresql":
            conn.exec_driver_sql("LOCK TABLE usage_records IN SHARE ROW EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            conn.rollback()


def test_nothing_is_lost_when_the_gateway_stops_right_after_a_burst(
    admin: genai.Client,
    upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer],
    settings: genai.Settings,
) -> None:
    project = make_project(admin, "ledger", upstreams)
    with run_gateway(settings, options=BURST) as gw:
        send_all(gw.v1, project.key, mixed(1))  # keys and routes cached: no reads later
        assert gw.gateway.ledger.flush()
        # the database keeps the ledger waiting during the burst, and lets go just before
        # the shutdown: the burst's rows are all still to be written when it begins
        with usage_writes_held(admin.store) as conn:
            batch = mixed(200)
            send_all(gw.v1, project.key, batch)
            assert [s.http_status for s in batch] == [HTTP[s.status] for s in batch]
            assert conn.exec_driver_sql("SELECT count(*) FROM usage_records").scalar() == 1
    assert project.count() == 1 + len(batch)
    assert {s.request_id for s in batch} <= {r.request_id for r in project.rows()}


def genai_gateway(
    settings: genai.Settings, log: Path
) -> contextlib.AbstractContextManager[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``genai gateway`` process on the settings' platform; yields its /v1 URL and
    the process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
        # bursts here are wider than a project's default requests in progress (64)
        "GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT": "none",
    }
    return gateway_process(env, log)


def test_sigterm_to_a_genai_gateway_process_loses_no_row_of_requests_in_flight(
    admin: genai.Client,
    upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer],
    settings: genai.Settings,
    tmp_path: Path,
) -> None:
    good, bad = upstreams
    project = make_project(admin, "ledger", upstreams)
    good.delay_s = 0.5  # the burst is still in flight when SIGTERM arrives
    batch = mixed(120)
    with genai_gateway(settings, tmp_path / "gateway.log") as (v1, process):
        seen: dict[str, Any] = {}

        def terminate_when_all_arrived() -> None:
            # at most 60 s (generous: CI shares two cores)
            wait_until(lambda: (good.calls(), bad.calls()) == (80, 40), timeout=60)
            seen["at_sigterm"] = (good.calls(), bad.calls())
            process.send_signal(signal.SIGTERM)

        async def burst_then_terminate() -> None:
            task = asyncio.get_running_loop().run_in_executor(None, terminate_when_all_arrived)
            # a connection each: none is reused (an idle one may close under a request)
            await asyncio.to_thread(send_all, v1, project.key, batch, len(batch))
            await task

        asyncio.run(burst_then_terminate())
        process.wait(20)
        log = (tmp_path / "gateway.log").read_text()
    # 60 answers and 20 refusals, all of them in flight (what arrived by the SIGTERM, what
    # each request got and the gateway's log say why not, should it ever fail)
    statuses = Counter((s.status, s.http_status) for s in batch)
    assert good.calls() == 80, (seen, statuses, log[-3000:])
    assert process.returncode in (0, -signal.SIGTERM), log  # it stopped by itself
    assert [s.http_status for s in batch] == [HTTP[s.status] for s in batch], log
    rows = {r.request_id: r.status for r in project.rows()}
    assert rows == {s.request_id: s.status for s in batch}, log
    assert "could not be written" not in log


# ------------------------------------------------------------------ a deleted project


def test_rows_of_a_deleted_project_are_dropped_without_holding_up_the_others(
    admin: genai.Client,
    upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
) -> None:
    gone, kept = make_project(admin, "gone", upstreams), make_project(admin, "kept", upstreams)
    # the key and route caches outlive the project for a while, so the gateway still
    # serves "gone" after it is deleted: those requests' rows can never be written
    gw = gateway_server(
        settings, options=GatewayOptions(ledger_interval_s=0.05, key_cache_ttl_s=60)
    )
    for project in (gone, kept):
        send_all(gw.v1, project.key, mixed(1))
    assert gw.gateway.ledger.flush()
    admin.projects.delete("gone")

    batch = mixed(120)[::6]  # 20 whole answers
    for sent in batch[::2]:
        sent.key = gone.key
    send_all(gw.v1, kept.key, batch)
    assert all(s.http_status == 200 for s in batch)
    assert gw.gateway.ledger.flush(timeout_s=10)
    assert gw.gateway.ledger.dropped == 10
    assert kept.count() == 11 and gone.count() == 0
    # and the ledger goes on writing
    send_all(gw.v1, kept.key, mixed(12))
    assert gw.gateway.ledger.flush(timeout_s=10)
    assert kept.count() == 23


# ------------------------------------------------------------------ kill -9


async def _answered(client: aiohttp.ClientSession, url: str, sent: Sent) -> None:
    """Like _one, but a request cut off by the gateway's death is left with status 0, and a
    stream counts as answered only once its [DONE] arrived."""
    try:
        async with client.post(url, json=sent.body) as response:
            status = response.status
            sent.request_id = response.headers.get("x-request-id", "")
            raw = await response.read()
    except (TimeoutError, aiohttp.ClientError):
        return
    if sent.body.get("stream") and b"data: [DONE]" not in raw:
        return
    sent.http_status = status


def test_kill_9_under_load_loses_no_answered_request_s_row(
    admin: genai.Client,
    upstreams: tuple[FakeOpenAIServer, FakeOpenAIServer],
    settings: genai.Settings,
    tmp_path: Path,
) -> None:
    good, _ = upstreams
    project = make_project(admin, "ledger", upstreams)
    good.delay_s = 0.05  # requests are in flight all the time
    batch = [s for s in mixed(300) if s.status == "ok"]  # 150: whole answers and streams
    killed: dict[str, Any] = {}
    with genai_gateway(settings, tmp_path / "first.log") as (v1, process):
        warm = mixed(1)
        send_all(v1, project.key, warm)
        assert wait_for_rows(project, 1)
        # the database keeps the ledger waiting: every row of the burst is in the gateway's
        # memory (and its journal) only, when the gateway is killed
        with usage_writes_held(admin.store):

            def kill_when_half_answered() -> None:
                half = len(batch) // 2
                wait_until(lambda: sum(s.http_status == 200 for s in batch) >= half, 60, 0.005)
                killed["answered"] = sum(s.http_status == 200 for s in batch)
                os.killpg(process.pid, signal.SIGKILL)

            async def burst() -> None:
                killer = asyncio.get_running_loop().run_in_executor(None, kill_when_half_answered)
                async with aiohttp.ClientSession(
                    headers={"authorization": f"Bearer {project.key}"},
                    timeout=aiohttp.ClientTimeout(total=30),
                    connector=aiohttp.TCPConnector(limit=16),
                ) as client:
                    url = v1 + "/chat/completions"
                    await asyncio.gather(*(_answered(client, url, s) for s in batch))
                await killer

            asyncio.run(burst())
            process.wait(10)
        assert process.returncode == -signal.SIGKILL
    answered = {s.request_id for s in batch if s.http_status == 200}
    assert len(answered) >= len(batch) // 2, killed
    assert len(answered) < len(batch), "the gateway died after every request was answered"
    assert project.count() == 1  # none of the burst reached the database before the kill
    journal = settings.home / "ledger"
    assert list(journal.glob("ledger-*.jsonl")), "the killed gateway left no journal"

    # the next gateway to start writes what the killed one journaled, each row once
    with genai_gateway(settings, tmp_path / "second.log") as (_, second):
        assert wait_for_rows(project, 1 + len(answered))
        second.send_signal(signal.SIGTERM)
        second.wait(20)
        log = (tmp_path / "second.log").read_text()
    rows = project.rows()
    ids = [r.request_id for r in rows]
    assert len(ids) == len(set(ids)), "a journaled row was written twice"
    assert answered <= set(ids), log
    by_id = {r.request_id: r for r in rows}
    for sent in batch:
        if sent.request_id in answered:
            row = by_id[sent.request_id]
            assert (row.status, row.prompt_tokens, row.completion_tokens) == (
                "ok",
                sent.prompt_tokens,
                sent.completion_tokens,
            )
            assert row.cost_usd == pytest.approx(sent.cost)
    assert "journaled" in log  # it says what it replayed
    assert not list(journal.glob("ledger-*.jsonl")), "the replayed journal was not removed"


def wait_for_rows(project: GatewayProject, count: int, timeout: float = 30.0) -> bool:
    return wait_until(lambda: project.count() >= count, timeout=timeout, interval=0.05)
