"""Traffic policies through the real gateway: a weighted canary, sticky A/B by user, shadow
traffic and the feedback-driven bandit, against fake vLLM upstreams on loopback.

Which upstream answered is read three ways that must agree: the fakes' call counts, the
answer's text (each fake says something else) and the usage ledger's ``target`` column.
Splits are checked against a binomial tolerance of four standard deviations.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import json
import math
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import pytest
from _clocks import wait_until
from _gateway_harness import GatewayProject, LiveGateway, run_gateway
from _servers import closed_port_url

import genai
from genai.gateway import GatewayOptions
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server

CHAT = {"messages": [{"role": "user", "content": "tell me something"}]}  # 3 prompt tokens
OPTIONS = GatewayOptions(ledger_interval_s=0.02)
WAIT_S = 30.0  # the longest a held upstream waits for its gate (never reached)


# SQLite: traffic policies do not depend on the database. A test that reads recorded
# feedback runs on PostgreSQL too (``BOTH_DATABASES``).
pytestmark = pytest.mark.sqlite_only
BOTH_DATABASES = pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)


# ------------------------------------------------------------------ helpers


class Gate:
    """Holds the generation requests of the upstreams it guards until the test opens it
    (``arrived`` counts the requests held so far); nothing waits longer than ``WAIT_S``."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self.arrived = 0

    def guard(self, app: Any) -> Any:
        async def held(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"].endswith("/completions"):
                self.arrived += 1
                await asyncio.to_thread(self._open.wait, WAIT_S)
            await app(scope, receive, send)

        return held

    def open(self) -> None:
        self._open.set()


@pytest.fixture
def gate() -> Iterator[Gate]:
    held = Gate()
    yield held
    held.open()  # nothing stays held when a test fails half-way


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """``fake(reply)`` starts a fake vLLM upstream (``.url`` is its /v1 base);
    ``fake(reply, gate=gate)`` one whose answers wait until the gate opens."""
    with contextlib.ExitStack() as stack:

        def start(reply: str, *, gate: Gate | None = None, **kwargs: Any) -> FakeOpenAIServer:
            server = FakeOpenAIServer(reply=reply, **kwargs)
            app = server.app if gate is None else gate.guard(server.app)
            server.url = stack.enter_context(running_server(app)) + "/v1"
            return server

        yield start


def target(name: str, upstream: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": upstream.url, "model": "fake-base", **extra}


def _within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


@dataclass
class Answer:
    """What a burst's request got (the parts of ``httpx.Response`` the tests read)."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode()


def burst(
    gw: LiveGateway,
    key: str,
    requests: list[tuple[dict[str, Any], dict[str, str]]],
    *,
    concurrency: int = 32,
) -> list[Answer]:
    """Send (body, headers) pairs, ``concurrency`` at a time; the answers in order. (With
    aiohttp: the client shares the CPU with the gateway and the fakes, and costs little.)"""

    async def run() -> list[Answer]:
        async with aiohttp.ClientSession(
            headers={"authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=30),
            connector=aiohttp.TCPConnector(limit=concurrency),
        ) as client:

            async def one(body: dict[str, Any], headers: dict[str, str]) -> Answer:
                url = gw.v1 + "/chat/completions"
                async with client.post(url, json=body, headers=headers) as response:
                    content = await response.read()
                    return Answer(response.status, dict(response.headers), content)

            return await asyncio.gather(*(one(b, h) for b, h in requests))

    return asyncio.run(run())


def text(response: httpx.Response | Answer) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def stream_text(client: httpx.Client, body: dict[str, Any]) -> tuple[str, str]:
    """(the request id, the text) of a streamed answer."""
    parts = []
    with client.stream("POST", "/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        rid = response.headers["x-request-id"]
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                for choice in chunk["choices"]:
                    parts.append(choice["delta"].get("content") or "")
    return rid, "".join(parts)


def http(gw: LiveGateway, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=gw.v1, headers={"authorization": f"Bearer {key}"}, timeout=httpx.Timeout(10.0)
    )


# ------------------------------------------------------------------ weighted canary


def test_a_90_10_canary_splits_1000_requests_by_weight_and_never_uses_weight_zero(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    stable, canary, dark = fake("stable says hello"), fake("canary says hi"), fake("dark")
    project.deploy(
        {
            "targets": [
                target("stable", stable, weight=90),
                target("canary", canary, weight=10),
                target("dark", dark, weight=0),
            ]
        }
    )
    gw = gateway_server(settings, options=OPTIONS)
    n = 1000
    answers = burst(gw, project.key, [({"model": "chat", **CHAT}, {})] * n)

    said = Counter(text(a) for a in answers)
    assert said["stable says hello"] + said["canary says hi"] == n
    assert (stable.calls(), canary.calls(), dark.calls()) == (
        said["stable says hello"],
        said["canary says hi"],
        0,
    )
    assert _within(canary.calls(), n, 0.1), canary.calls()  # 100 ± 38
    assert gw.gateway.ledger.flush()
    ledger = Counter(row.target for row in project.rows())
    assert ledger == Counter({"stable": stable.calls(), "canary": canary.calls()})


# ------------------------------------------------------------------ sticky A/B


@pytest.mark.parametrize("header", ["x-genai-user", "x-user-id"])
def test_sticky_ab_keeps_every_user_on_one_arm_and_splits_users_by_weight(
    header: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    a, b = fake("arm a answers"), fake("arm b answers")
    spec: dict[str, Any] = {
        "targets": [target("a", a, weight=70), target("b", b, weight=30)],
        "policy": "ab",
    }
    if header != "x-genai-user":
        spec["sticky_header"] = header
    project.deploy(spec)
    gw = gateway_server(settings, options=OPTIONS)
    users = [f"user-{i}" for i in range(300)]
    body = {"model": "chat", **CHAT}

    first = burst(gw, project.key, [(body, {header: u}) for u in users])
    arm = {u: text(r) for u, r in zip(users, first, strict=True)}
    assert _within(sum(v == "arm a answers" for v in arm.values()), 300, 0.7)

    # 30 users, 10 more requests each, interleaved: every one lands where it did before
    regulars = users[::10]
    again = [(body, {header: u}) for _ in range(10) for u in regulars]
    answers = burst(gw, project.key, again)
    for (_, headers), answer in zip(again, answers, strict=True):
        assert text(answer) == arm[headers[header]], headers
    # another gateway process (a worker, a replica, a restart) puts them on the same arms
    other = gateway_server(settings, options=OPTIONS)
    elsewhere = burst(other, project.key, [(body, {header: u}) for u in regulars])
    assert [text(r) for r in elsewhere] == [arm[u] for u in regulars]

    # without the header the policy falls back to a weighted draw: both arms answer
    anonymous = Counter(text(r) for r in burst(gw, project.key, [(body, {})] * 200))
    assert _within(anonymous["arm a answers"], 200, 0.7)


# ------------------------------------------------------------------ shadow traffic


def _counter(gw: LiveGateway, key: str) -> int:
    return asyncio.run(gw.gateway.quota.counters.get(key))


@pytest.mark.parametrize("prompt_logging", [False, True])
def test_the_shadow_gets_a_copy_that_is_never_returned_nor_billed(
    prompt_logging: bool,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    primary = fake("the primary answer about cats")
    shadow = fake("a shadow reply on dogs and more")
    if prompt_logging:
        project.admin.projects.set_option(project.name, "prompt_logging", True)
    price = {"input_per_1m": 1000.0, "output_per_1m": 2000.0}
    project.deploy(
        {
            "targets": [target("primary", primary, price=price)],
            "shadow": {
                "target": target("shadow", shadow, price={"output_per_1m": 500_000.0}),
                "sample": 1.0,
            },
        }
    )
    gw = gateway_server(settings, options=OPTIONS)
    body = {"model": "chat", **CHAT}
    ids = []
    with http(gw, project.key) as client:
        for _ in range(4):
            answer = client.post("/chat/completions", json=body)
            assert text(answer) == "the primary answer about cats"
            assert answer.json()["usage"] == {
                "prompt_tokens": 3,
                "completion_tokens": 5,
                "total_tokens": 8,
            }
            ids.append(answer.headers["x-request-id"])
        for _ in range(3):
            rid, said = stream_text(client, body)
            assert said == "the primary answer about cats"
            ids.append(rid)

    # the shadow received a copy of each request, as a whole answer
    assert wait_until(lambda: shadow.calls() == 7)
    for copy in shadow.bodies("/v1/chat/completions"):
        assert copy["messages"] == CHAT["messages"] and copy["model"] == "fake-base"
        assert not copy.get("stream") and "stream_options" not in copy
    assert primary.calls() == 7

    assert wait_until(lambda: len(shadow_rows(gw, project)) == 7)
    rows = shadow_rows(gw, project)
    # the recorded similarity is a character-level ratio of the two answers
    expected = difflib.SequenceMatcher(
        None, "the primary answer about cats", "a shadow reply on dogs and more", autojunk=False
    ).ratio()
    assert 0 < expected < 1
    assert sorted(r.request_id for r in rows) == sorted(ids)
    for row in rows:
        assert (row.status, row.primary_target, row.shadow_target) == ("ok", "primary", "shadow")
        assert row.similarity == pytest.approx(expected)
        assert row.shadow_tokens == 3 + 7
        assert row.shadow_cost_usd == pytest.approx(7 * 0.5)
        assert row.shadow_latency_ms > 0
        if prompt_logging:
            assert row.primary_text == "the primary answer about cats"
            assert row.shadow_text == "a shadow reply on dogs and more"
        else:
            assert (row.primary_text, row.shadow_text) == ("", "")

    # billed: one usage row per request, all of them the primary's, at the primary's price
    usage = project.rows()
    assert sorted(r.request_id for r in usage) == sorted(ids)
    primary_cost = (3 * 1000.0 + 5 * 2000.0) / 1e6
    for row in usage:
        assert (row.target, row.status) == ("primary", "ok")
        assert (row.prompt_tokens, row.completion_tokens) == (3, 5)
        assert row.cost_usd == pytest.approx(primary_cost)
    now = datetime.now(UTC)
    assert _counter(gw, f"q:{project.id}:tok:{now:%Y%m%d}") == 7 * 8
    assert _counter(gw, f"q:{project.id}:usd:{now:%Y%m}") == round(7 * primary_cost * 1e6)


def ask_three_and_stream_one(gw: LiveGateway, project: GatewayProject) -> None:
    """Three answers and a stream, each the primary's (whatever the shadow does)."""
    with http(gw, project.key) as client:
        for _ in range(3):
            answer = client.post("/chat/completions", json={"model": "chat", **CHAT})
            assert text(answer) == "primary text"
        assert stream_text(client, {"model": "chat", **CHAT})[1] == "primary text"


def shadow_rows(gw: LiveGateway, project: GatewayProject) -> list[Any]:
    gw.gateway.ledger.flush()
    return list(project.rows(t.ShadowResult))


@pytest.mark.parametrize("failure", ["error500", "hang", "refused"])
def test_a_failing_shadow_never_affects_the_caller(
    failure: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    primary, shadow = fake("primary text"), fake("shadow text")
    # a hanging shadow gives up after a second (that no caller waits for a shadow is the
    # next test's)
    shadow.mode, shadow.hang_s = failure, 1.5
    shadow_target = target("shadow", shadow, timeout_s=1.0)
    if failure == "refused":
        shadow_target["url"] = closed_port_url()
    project.deploy({"targets": [target("primary", primary)], "shadow": {"target": shadow_target}})
    gw = gateway_server(settings, options=OPTIONS)
    ask_three_and_stream_one(gw, project)

    def rows() -> list[Any]:
        return shadow_rows(gw, project)

    assert wait_until(lambda: len(rows()) == 4)
    assert all(r.status.startswith("error: ") and r.similarity is None for r in rows())
    assert shadow.calls() == (0 if failure == "refused" else 4)  # never retried
    assert [r.status for r in project.rows()] == ["ok"] * 4
    assert {r.target for r in project.rows()} == {"primary"}


def test_the_caller_never_waits_for_its_shadow(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
    gate: Gate,
) -> None:
    """The shadow answers only once the gate opens, which is after the caller got all its
    answers; its timeout outlasts the client's, so a caller kept waiting for it would time
    out instead. Nothing is timed: the order of the events is the proof."""
    primary, shadow = fake("primary text"), fake("shadow text", gate=gate)
    shadow_target = target("shadow", shadow, timeout_s=2 * WAIT_S)
    project.deploy({"targets": [target("primary", primary)], "shadow": {"target": shadow_target}})
    gw = gateway_server(settings, options=OPTIONS)
    ask_three_and_stream_one(gw, project)

    def rows() -> list[Any]:
        return shadow_rows(gw, project)

    assert wait_until(lambda: gate.arrived == 4)  # every copy is at the shadow, held
    assert shadow.calls() == 0 and rows() == []  # ... and none has been answered
    gate.open()
    assert wait_until(lambda: len(rows()) == 4)
    assert [r.status for r in rows()] == ["ok"] * 4
    assert [r.status for r in project.rows()] == ["ok"] * 4


def test_shadow_copies_beyond_the_in_flight_cap_are_dropped(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
    gate: Gate,
) -> None:
    primary, shadow = fake("primary"), fake("shadow", gate=gate)  # held: the copies pile up
    project.deploy(
        {"targets": [target("primary", primary)], "shadow": {"target": target("shadow", shadow)}}
    )
    gw = gateway_server(settings, options=GatewayOptions(max_shadow_in_flight=3))
    answers = burst(gw, project.key, [({"model": "chat", **CHAT}, {})] * 12, concurrency=4)
    assert [text(a) for a in answers] == ["primary"] * 12
    metric = gw.gateway.metrics.registry.get_sample_value
    dropped = metric("genai_gateway_shadow_requests_total", {"status": "dropped"})
    assert dropped == 9  # the first 3 copies are in flight until the gate opens
    gate.open()
    assert wait_until(lambda: not gw.gateway.shadows_in_flight)
    assert shadow.calls() == 3 and gate.arrived == 3


def test_a_shadow_sample_mirrors_that_share_of_the_requests(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    primary, shadow = fake("primary"), fake("shadow")
    project.deploy(
        {
            "targets": [target("primary", primary)],
            "shadow": {"target": target("shadow", shadow), "sample": 0.25},
        }
    )
    gw = gateway_server(settings, options=OPTIONS)
    n = 400
    burst(gw, project.key, [({"model": "chat", **CHAT}, {})] * n)
    assert primary.calls() == n
    assert wait_until(lambda: not gw.gateway.shadows_in_flight)  # the copies in the background
    assert _within(shadow.calls(), n, 0.25), shadow.calls()


# ------------------------------------------------------------------ bandit


def _rounds(client: httpx.Client, n: int, score: Callable[[str], float | None]) -> list[str]:
    """``n`` requests, each followed by feedback ``score(text)`` (none when None)."""
    said = []
    for _ in range(n):
        answer = client.post("/chat/completions", json={"model": "chat", **CHAT})
        said.append(text(answer))
        value = score(said[-1])
        if value is not None:
            verdict = client.post(
                "/feedback", json={"response_id": answer.json()["id"], "score": value}
            )
            assert verdict.status_code == 200, verdict.text
            assert verdict.json()["recorded"] is True
    return said


def _bandit_spec(first: FakeOpenAIServer, second: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    """Arms ``a`` and ``b``; ``extra["a"]`` and ``extra["b"]`` go into their targets."""
    arms = [target(n, f, **extra.pop(n, {})) for n, f in (("a", first), ("b", second))]
    return {"targets": arms, "policy": "bandit", **extra}


def test_feedback_turns_the_bandit_to_the_arm_that_scores(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    a, b = fake("from arm a"), fake("from arm b")
    project.deploy(_bandit_spec(a, b))
    gw = gateway_server(settings, options=OPTIONS)
    with http(gw, project.key) as client:
        said = _rounds(client, 120, lambda s: 1.0 if s == "from arm a" else 0.0)
    late = Counter(said[-40:])
    assert late["from arm a"] >= 36, late

    assert gw.gateway.ledger.flush()
    feedback = project.rows(t.Feedback)
    assert len(feedback) == 120
    assert Counter((f.target, f.score) for f in feedback) == Counter(
        {("a", 1.0): said.count("from arm a"), ("b", 0.0): said.count("from arm b")}
    )
    means = gw.gateway.bandits[(project.id, "chat")].means()
    assert means["a"] > 0.9 and means.get("b", 0.0) < 0.5


def test_the_cost_weight_steers_the_bandit_away_from_an_expensive_arm(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway_server: Callable[..., LiveGateway],
    settings: genai.Settings,
) -> None:
    a, b = fake("same quality"), fake("the same quality from b")
    # b costs 5 completion tokens x $100,000 per 1M = $0.50 per answer; cost_weight 2
    project.deploy(
        _bandit_spec(a, b, b={"price": {"output_per_1m": 100_000.0}}, bandit={"cost_weight": 2.0})
    )
    # a seeded draw: unseeded, the bandit now and then never tried b at all in 100 rounds
    gw = gateway_server(settings, options=OPTIONS, rng=random.Random(5))
    with http(gw, project.key) as client:
        said = _rounds(client, 100, lambda s: 1.0)  # both answers are rated perfect
    late = Counter(said[-40:])
    assert late["same quality"] >= 34, late
    assert gw.gateway.ledger.flush()
    costs = {r.target: r.cost_usd for r in project.rows()}
    assert costs["b"] == pytest.approx(0.5) and costs["a"] == 0


@BOTH_DATABASES
@pytest.mark.parametrize("cost_weight", [0.0, 2.0])
def test_the_bandit_starts_from_recorded_feedback_after_a_restart(
    cost_weight: float,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    settings: genai.Settings,
) -> None:
    """First run, a 50/50 split: feedback rates both arms (a scores 1 and b 0; or both
    score 1 and b costs $0.50 an answer). Then the deployment becomes a bandit, and a new
    gateway on the same database routes as the feedback (and the cost penalty) say."""
    a, b = fake("from arm a"), fake("an answer from arm b")
    pricey = {"price": {"output_per_1m": 100_000.0}}  # 5 tokens: $0.50
    project.deploy({"targets": [target("a", a), target("b", b, **pricey)]})
    good = (lambda s: 1.0) if cost_weight else (lambda s: 1.0 if s == "from arm a" else 0.0)
    with run_gateway(settings, options=OPTIONS) as first, http(first, project.key) as client:
        learned = _rounds(client, 60, good)
        earlier = client.post("/chat/completions", json={"model": "chat", **CHAT}).json()["id"]
    assert Counter(learned)["an answer from arm b"] >= 10
    assert len(project.rows(t.Feedback)) == 60  # written on shutdown at the latest

    project.deploy(_bandit_spec(a, b, b=pricey, bandit={"cost_weight": cost_weight}))
    with run_gateway(settings, options=OPTIONS) as second, http(second, project.key) as client:
        said = _rounds(client, 60, lambda s: None)  # no feedback in this run
        # an answer of the first run can still be rated: found through the ledger
        verdict = client.post("/feedback", json={"response_id": earlier, "score": 0.5})
        assert verdict.status_code == 200, verdict.text
    assert Counter(said)["from arm a"] >= 57, Counter(said)
