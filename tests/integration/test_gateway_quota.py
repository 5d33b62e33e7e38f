"""GatewayProject quotas at the gateway: requests per minute, tokens per day and the monthly USD
budget refuse with 429 and Retry-After once used up; with Redis, two real ``genai
gateway`` processes share one count, and without it each process counts alone.

Windows are calendar windows in UTC; a test that needs its burst inside one minute waits
for the next minute when too little of the current one is left.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from _gateway_harness import GatewayProject, LiveGateway, gateway_process, new_project
from sqlalchemy import text

import genai
from genai.gateway import GatewayOptions
from genai.store import Store
from genai.testing import FakeOpenAIServer, ManualClock, running_server

CHAT: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "tell me something"}],
}
OPTIONS = GatewayOptions(ledger_interval_s=0.02)


# SQLite only: quotas count in Redis or in the process, not in the database (the two-process
# tests pick their database themselves).
pytestmark = pytest.mark.sqlite_only


# ------------------------------------------------------------------ helpers


def _skip_project_ids(store: Store) -> None:
    """Make the next project's id a random large one: quota counters in Redis are keyed by
    project id, and other tests (with fresh databases of their own) share that Redis."""
    assert store.dialect == "postgresql"
    with store.session() as s:
        s.execute(
            text("SELECT setval(pg_get_serial_sequence('projects', 'id'), :n)"),
            {"n": random.randrange(10**6, 10**9)},
        )


def make_project(
    settings: genai.Settings, upstream: FakeOpenAIServer, *, unique_id: bool = False, **spec: Any
) -> GatewayProject:
    genai.init(settings, admin="admin")
    admin = genai.connect(settings, user="admin")
    if unique_id:
        _skip_project_ids(admin.store)
    project = new_project(admin, "quota")
    target = {"name": "main", "url": upstream.url, "model": "fake-base", **spec}
    project.deploy({"targets": [target], "retries": 0})
    return project


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(reply="one two three four five")  # 5 completion tokens
    with running_server(fake.app) as url:
        fake.url = url + "/v1"
        yield fake


@pytest.fixture
def project_of(
    settings: genai.Settings, upstream: FakeOpenAIServer
) -> Iterator[Callable[..., GatewayProject]]:
    made: list[GatewayProject] = []

    def make(**kwargs: Any) -> GatewayProject:
        made.append(make_project(settings, upstream, **kwargs))
        return made[-1]

    yield make
    for project in made:
        project.admin.close()


def within_one_minute(needed_s: float) -> None:
    """Return when at least ``needed_s`` seconds of the current UTC minute are left."""
    now = datetime.now(UTC)
    left = 60 - now.second - now.microsecond / 1e6
    if left < needed_s:
        time.sleep(left + 0.05)


def post(client: httpx.Client, body: dict[str, Any] | None = None) -> httpx.Response:
    body = body or CHAT
    if not body.get("stream"):
        return client.post("/chat/completions", json=body)
    with client.stream("POST", "/chat/completions", json=body) as response:
        response.read()
        return response


def refused(response: httpx.Response, *, within: tuple[float, float], says: str) -> None:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert says in error["message"], error
    assert within[0] <= int(response.headers["retry-after"]) <= within[1]


# ------------------------------------------------------------------ one gateway


def test_requests_per_minute_refuse_with_429_and_retry_after(
    project_of: Callable[..., GatewayProject],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
) -> None:
    project = project_of()
    project.admin.quotas.set("quota", requests_per_minute=5)
    # the quota windows' clock stands still at 12:00:30: all requests in one minute
    clock = ManualClock(datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC).timestamp())
    gw = gateway_server(settings, options=OPTIONS, now=clock.now)
    with httpx.Client(
        base_url=gw.v1, headers={"authorization": f"Bearer {project.key}"}, timeout=10
    ) as client:
        bodies = [CHAT, {**CHAT, "stream": True}] * 4
        answers = [post(client, body) for body in bodies]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
    for answer in answers[5:]:  # the minute's 30 s left
        refused(answer, within=(30, 30), says="limit of 5 requests per minute")
        assert answer.json()["error"]["type"]  # an OpenAI-style body, even for a stream
    assert gw.gateway.ledger.flush()
    assert Counter(r.status for r in project.rows()) == {"ok": 5, "rate_limited": 3}


def test_tokens_per_day_refuse_once_spent_streams_included(
    project_of: Callable[..., GatewayProject],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
) -> None:
    project = project_of()
    project.admin.quotas.set("quota", tokens_per_day=20)  # each answer: 3 + 5 tokens
    clock = ManualClock(datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC).timestamp())
    gw = gateway_server(settings, options=OPTIONS, now=clock.now)
    with httpx.Client(
        base_url=gw.v1, headers={"authorization": f"Bearer {project.key}"}, timeout=10
    ) as client:
        assert post(client).status_code == 200  # 8
        assert post(client, {**CHAT, "stream": True}).status_code == 200  # 16, counted
        assert post(client).status_code == 200  # 24: over, but admitted while below
        for body in (CHAT, {**CHAT, "stream": True}):
            answer = post(client, body)
            left = 11 * 3600 + 59 * 60 + 30  # from 12:00:30 to midnight
            refused(answer, within=(left, left), says="used 24 of its 20 tokens")
    assert gw.gateway.ledger.flush()
    assert Counter(r.status for r in project.rows()) == {"ok": 3, "rate_limited": 2}
    assert sum(r.prompt_tokens + r.completion_tokens for r in project.rows()) == 24


def test_the_monthly_budget_refuses_once_spent_at_the_targets_price(
    project_of: Callable[..., GatewayProject],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
    upstream: FakeOpenAIServer,
) -> None:
    # 5 completion tokens at $50,000 per million: $0.25 an answer
    project = project_of(price={"input_per_1m": 0.0, "output_per_1m": 50_000.0})
    project.admin.quotas.set("quota", budget_usd_per_month=1.0)
    gw = gateway_server(settings, options=OPTIONS)
    with httpx.Client(
        base_url=gw.v1, headers={"authorization": f"Bearer {project.key}"}, timeout=10
    ) as client:
        for i in range(3):
            assert post(client, {**CHAT, "stream": bool(i % 2)}).status_code == 200
        upstream.mode = "error500"  # a failed answer costs nothing
        assert post(client).status_code == 502
        upstream.mode = "ok"
        assert post(client).status_code == 200  # $1.00: the budget is used up
        answer = post(client)
    refused(answer, within=(1, 31 * 86400), says="spent $1.00 of its $1.00 budget")
    assert gw.gateway.ledger.flush()
    rows = project.rows()
    assert Counter(r.status for r in rows) == {"ok": 4, "upstream_error": 1, "rate_limited": 1}
    assert sum(r.cost_usd for r in rows) == pytest.approx(1.0)


# ------------------------------------------------------------------ two gateway processes


def _alternate(urls: list[str], key: str, n: int) -> list[int]:
    """The statuses of ``n`` concurrent requests, sent to the gateways in turn."""

    async def run() -> list[int]:
        async with aiohttp.ClientSession(
            headers={"authorization": f"Bearer {key}"}, timeout=aiohttp.ClientTimeout(total=20)
        ) as client:

            async def one(url: str) -> int:
                async with client.post(url + "/chat/completions", json=CHAT) as response:
                    body = await response.read()
                    if response.status != 200:  # refused: it says when to come back
                        said = f"{response.status}: {body.decode(errors='replace')}"
                        assert 1 <= int(response.headers.get("retry-after", 0)) <= 60, said
                    return response.status

            return await asyncio.gather(*(one(urls[i % len(urls)]) for i in range(n)))

    return asyncio.run(run())


@pytest.mark.parametrize(
    "shared",
    [pytest.param(True, id="redis", marks=pytest.mark.redis), pytest.param(False, id="in-process")],
)
def test_two_gateway_processes_share_the_minute_limit_through_redis_only(
    shared: bool,
    request: pytest.FixtureRequest,
    settings_factory: Callable[..., genai.Settings],
    upstream: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    """With GENAI_REDIS_URL, two processes admit exactly ``limit`` requests of a minute in
    all; without it, each process counts its own (so ``2 x limit`` get through)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    if shared:  # the scale-out setup: PostgreSQL and Redis
        redis_url = request.getfixturevalue("redis_url")
        settings = settings_factory(database_url=request.getfixturevalue("pg_url"))
        env["GENAI_REDIS_URL"] = redis_url
    else:  # the embedded one: SQLite under GENAI_HOME, counters in each process
        settings = settings_factory()
    env |= {
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
    }
    limit = 10
    project = make_project(settings, upstream, unique_id=shared)
    try:
        project.admin.quotas.set("quota", requests_per_minute=limit)
        with (
            gateway_process(env, tmp_path / "one.log") as (one, _),
            gateway_process(env, tmp_path / "two.log") as (two, _),
        ):
            within_one_minute(10)
            answers = _alternate([one, two], project.key, 4 * limit)
            statuses = Counter(answers)
            served = {
                url: sum(status == 200 for status in answers[i::2])
                for i, url in enumerate((one, two))
            }
        # the ledger rows of both processes are written by the time they have exited
        rows = Counter(r.status for r in project.rows())
    finally:
        project.admin.close()
        if shared:
            import redis

            client = redis.Redis.from_url(redis_url)
            for key in client.scan_iter(f"genai:q:{project.id}:*"):
                client.delete(key)
    if shared:
        assert statuses == {200: limit, 429: 3 * limit}, statuses
        assert rows == {"ok": limit, "rate_limited": 3 * limit}
    else:
        assert statuses == {200: 2 * limit, 429: 2 * limit}, statuses
        assert served == {one: limit, two: limit}
        assert rows == {"ok": 2 * limit, "rate_limited": 2 * limit}
