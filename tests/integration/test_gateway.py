"""The gateway's request path: SSE relaying (framing, incremental delivery), the stages
other packages plug in (request, response with stream filters, cache, target), and the
ledger rows of the caller's own requests; through a real gateway to a real ``genai serve``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from openai.types.chat import ChatCompletionMessageParam
from sqlalchemy import select

from genai.errors import BackendError, DlpBlocked
from genai.gateway import CachedAnswer, GatewayRequest, Stages, TargetSpec
from genai.store import schema as t
from genai.testing import running_server

PROJECT = "proj-a"
BASE = "tiny-llama"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello, who are you?"}]


# SQLite only here (test_gateway_isolation runs the gateway on PostgreSQL too).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def world(platform, settings, model_server, gateway_server):
    """proj-a with ``chat`` on the model server (adapter a1 allowed) and ``bot`` on a target
    stage named ``script``; ``start(stages)`` runs a gateway with those stages."""
    admin = platform()
    admin.projects.create(PROJECT)
    admin.registry.deployments.create(
        PROJECT,
        "chat",
        spec={
            "targets": [{"name": "local", "url": model_server.v1, "model": BASE}],
            "adapters": ["a1"],
            "retries": 0,
        },
    )
    admin.registry.deployments.create(
        PROJECT, "bot", spec={"targets": [{"name": "scripted", "backend": "script"}]}
    )
    key = admin.keys.create(PROJECT, role="developer").secret

    def start(stages: Stages | None = None) -> Any:
        gw = gateway_server(settings, stages=stages)
        gw.client = openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=30)
        return gw

    return SimpleNamespace(admin=admin, key=key, start=start, server=model_server)


def upstream_calls(server: Any) -> float:
    """Generation requests the model server has answered so far."""
    return float(server.metric("genai_serve_requests_total"))


def ledger(world: Any, gw: Any) -> list[Any]:
    assert gw.gateway.ledger.flush()
    with world.admin.store.session() as s:
        return list(s.scalars(select(t.UsageRecord).order_by(t.UsageRecord.id)))


def sse_events(raw: bytes) -> list[bytes]:
    """The data of each event of an SSE body, checking the framing on the way."""
    assert raw.endswith(b"\n\n")
    events = raw.split(b"\n\n")[:-1]
    assert all(e.startswith(b"data: ") and b"\n" not in e for e in events), raw
    return [e.removeprefix(b"data: ") for e in events]


# ------------------------------------------------------------------ streams


def test_sse_framing_and_headers(world):
    gw = world.start()
    with httpx.stream(
        "POST",
        gw.v1 + "/chat/completions",
        headers={"authorization": f"Bearer {world.key}"},
        json={
            "model": "chat",
            "messages": HELLO,
            "max_tokens": 6,
            "stream": True,
            "temperature": 0,
        },
        timeout=30,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        rid = response.headers["x-request-id"]
        raw = response.read()
    data = sse_events(raw)
    assert data[-1] == b"[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert {c["id"] for c in chunks} == {f"chatcmpl-{rid}"}
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert [c for c in chunks if c.get("usage")] == []  # not asked for: held back
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


class GatedUpstream:
    """An OpenAI-compatible upstream that sends its first piece, then waits for the test
    to open ``gate`` before it sends the rest: a slow vendor, under the test's control."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.finished = threading.Event()
        self.app = FastAPI()

        @self.app.post("/v1/chat/completions")
        async def chat(request: Request) -> StreamingResponse:
            body = await request.json()
            assert body["stream"] is True
            return StreamingResponse(self._events(), media_type="text/event-stream")

    async def _events(self) -> AsyncIterator[str]:
        def event(choices: list[Any], **extra: Any) -> str:
            chunk = {
                "id": "vendor-123",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "slow",
                "choices": choices,
                **extra,
            }
            return f"data: {json.dumps(chunk)}\n\n"

        def piece(text: str, finish: str | None = None) -> list[Any]:
            return [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]

        yield event(piece("first "))
        await asyncio.to_thread(self.gate.wait, 20)
        yield event(piece("second "))
        yield event(piece("third", "stop"))
        yield event([], usage={"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
        yield "data: [DONE]\n\n"
        self.finished.set()


def test_stream_reaches_the_client_before_the_upstream_finishes(world):
    slow = GatedUpstream()
    with running_server(slow.app) as url:
        world.admin.registry.deployments.create(
            PROJECT, "slow", spec={"targets": [{"name": "vendor", "url": url, "model": "slow"}]}
        )
        gw = world.start()
        try:
            stream = gw.client.with_options(timeout=10).chat.completions.create(
                model="slow", messages=HELLO, stream=True
            )
            chunks = iter(stream)
            first = next(chunks)
            assert first.choices[0].delta.content == "first "
            assert not slow.gate.is_set() and not slow.finished.is_set()
            slow.gate.set()
            rest = list(chunks)
        finally:
            slow.gate.set()
    assert slow.finished.is_set()
    assert "".join(c.choices[0].delta.content or "" for c in rest) == "second third"
    assert {c.id for c in [first, *rest]} == {first.id} != {"vendor-123"}
    assert all(c.usage is None for c in rest)


# ------------------------------------------------------------------ request stages


class Rewrite:
    """A request stage that rewrites the body (as a prompt-rendering stage does)."""

    name = "rewrite"

    def __init__(self) -> None:
        self.seen: list[GatewayRequest] = []

    async def before(self, request: GatewayRequest) -> None:
        self.seen.append(request)
        request.body["max_tokens"] = 2
        request.prompt_version = "prompt:greeting@3"


class Dlp:
    """A request stage that refuses requests carrying a card number."""

    name = "dlp"

    async def before(self, request: GatewayRequest) -> None:
        if "4111" in json.dumps(request.body):
            raise DlpBlocked("the request contains a CREDIT_CARD: remove it, or ask for a policy")


def test_a_request_stage_rewrites_the_body(world):
    stage = Rewrite()
    gw = world.start(Stages(request=[stage]))
    raw = gw.client.chat.completions.with_raw_response.create(
        model="chat:a1",
        messages=HELLO,
        max_tokens=30,
        temperature=0,
        extra_headers={"x-genai-session": "conv-7", "x-genai-user": "u1", "x-other": "no"},
    )
    reply = raw.parse()
    direct = openai.OpenAI(base_url=world.server.v1, api_key="-").chat.completions.create(
        model="a1", messages=HELLO, max_tokens=2, temperature=0
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 2
    assert reply.choices[0].message.content == direct.choices[0].message.content

    (seen,) = stage.seen
    assert seen.request_id == raw.headers["x-request-id"]
    assert (seen.project, seen.deployment, seen.adapter, seen.endpoint) == (
        PROJECT,
        "chat",
        "a1",
        "chat",
    )
    assert seen.session_id == "conv-7"
    assert seen.headers == {"x-genai-session": "conv-7", "x-genai-user": "u1"}
    role = seen.principal.role_in(seen.project_id)
    assert role is not None and role.value == "developer"
    (row,) = ledger(world, gw)
    assert (row.prompt_version, row.adapter, row.completion_tokens) == (
        "prompt:greeting@3",
        "a1",
        2,
    )


def test_a_dlp_stage_refuses_before_the_upstream_is_called(world):
    gw = world.start(Stages(request=[Dlp()]))
    before = upstream_calls(world.server)
    card = [{"role": "user", "content": "my card is 4111 1111 1111 1111"}]
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            gw.client.chat.completions.create(model="chat", messages=card, stream=stream)
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["code"] == "dlp_blocked"
        assert error["message"] == (
            "the request contains a CREDIT_CARD: remove it, or ask for a policy"
        )
    with pytest.raises(openai.BadRequestError, match="CREDIT_CARD"):
        gw.client.completions.create(model="chat", prompt="pay with 4111 1111 1111 1111")
    assert upstream_calls(world.server) == before

    fine = gw.client.chat.completions.create(model="chat", messages=HELLO, max_tokens=2)
    assert fine.usage.completion_tokens <= 2
    assert upstream_calls(world.server) == before + 1
    rows = ledger(world, gw)
    assert [r.status for r in rows] == ["invalid_request"] * 3 + ["ok"]
    assert all(r.prompt_tokens == 0 for r in rows[:3])


# ------------------------------------------------------------------ response stages, targets

SECRET, MASK = "SECRET-42", "[hidden]"


class HideFilter:
    """Replaces SECRET in a stream, holding back a tail that may be the start of it."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, text: str) -> str:
        text = (self.held + text).replace(SECRET, MASK)
        keep = next(
            (
                n
                for n in range(min(len(SECRET) - 1, len(text)), 0, -1)
                if SECRET.startswith(text[-n:])
            ),
            0,
        )
        self.held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        out, self.held = self.held, ""
        return out


class Hide:
    name = "hide"

    async def after(self, request: GatewayRequest, response: dict[str, Any]) -> dict[str, Any]:
        for choice in response["choices"]:
            choice["message"]["content"] = choice["message"]["content"].replace(SECRET, MASK)
        return response

    def stream(self, request: GatewayRequest) -> HideFilter:
        return HideFilter()


class ScriptBot:
    """A target stage (a knowledge bot) that answers with fixed pieces of text."""

    name = "script"

    def __init__(self, pieces: list[str], fail_after: int | None = None) -> None:
        self.pieces = pieces
        self.fail_after = fail_after
        self.calls = 0

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        self.calls += 1
        return {
            "id": "bot-1",
            "object": "chat.completion",
            "created": 1,
            "model": "script",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.pieces)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9},
        }

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:
        self.calls += 1
        base = {"id": "bot-1", "object": "chat.completion.chunk", "created": 1, "model": "script"}
        for i, text in enumerate(self.pieces):
            if i == self.fail_after:
                raise BackendError("the knowledge base went away", backend="script")
            delta = {"content": text, **({"role": "assistant"} if i == 0 else {})}
            yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        usage = {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}
        yield {**base, "choices": [], "usage": usage}


def test_a_target_stage_answers_whole_and_streamed(world):
    bot = ScriptBot(["Ask ", "the ", "service ", "desk."])
    gw = world.start(Stages(targets={"script": bot}))
    raw = gw.client.chat.completions.with_raw_response.create(model="bot", messages=HELLO)
    reply = raw.parse()
    assert reply.id == f"chatcmpl-{raw.headers['x-request-id']}"
    assert reply.choices[0].message.content == "Ask the service desk."
    chunks = list(
        gw.client.chat.completions.create(
            model="bot", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert [c.choices[0].delta.content for c in chunks if c.choices][:4] == bot.pieces
    assert chunks[-1].usage.total_tokens == 9
    assert bot.calls == 2
    rows = ledger(world, gw)
    assert [(r.model, r.target, r.completion_tokens) for r in rows] == [("bot", "scripted", 5)] * 2


def test_a_target_stage_failing_mid_stream_ends_it_with_an_error_event(world):
    gw = world.start(Stages(targets={"script": ScriptBot(["one ", "two"], fail_after=1)}))
    stream = gw.client.chat.completions.create(model="bot", messages=HELLO, stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="the knowledge base went away"):
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    assert seen == ["one "]
    assert gw.client.chat.completions.create(model="chat", messages=HELLO, max_tokens=1).choices
    assert [r.status for r in ledger(world, gw)] == ["upstream_error", "ok"]


@pytest.mark.parametrize(
    ("pieces", "sent"),
    [
        (
            ["Your code is SEC", "RET-", "4", "2 and more SECRET-42."],
            ["Your code is ", "[hidden] and more [hidden]."],
        ),
        (["S", "E", "C", "R", "E", "T", "-", "4", "2", "!"], ["[hidden]", "!"]),
        (["SECRET-4", "3 is not it, SEC"], ["SECRET-43 is not it, ", "SEC"]),  # held, released
    ],
)
def test_a_stream_filter_replaces_a_token_split_across_chunks(world, pieces, sent):
    gw = world.start(Stages(response=[Hide()], targets={"script": ScriptBot(pieces)}))
    chunks = list(gw.client.chat.completions.create(model="bot", messages=HELLO, stream=True))
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert texts == sent  # nothing half-replaced ever reached the client
    assert all(c.id == chunks[0].id for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"

    whole = gw.client.chat.completions.create(model="bot", messages=HELLO)
    assert whole.choices[0].message.content == "".join(sent)


# ------------------------------------------------------------------ cache


class DictCache:
    """A cache stage keyed by project, deployment, adapter and the messages or prompt."""

    name = "dict-cache"

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def key(self, request: GatewayRequest) -> str:
        body = request.body
        return json.dumps(
            [
                request.project_id,
                request.deployment,
                request.adapter,
                body.get("messages"),
                body.get("prompt"),
                body.get("max_tokens"),
            ]
        )

    async def lookup(self, request: GatewayRequest) -> CachedAnswer | None:
        hit = self.entries.get(self.key(request))
        return CachedAnswer(hit) if hit is not None else None

    async def store(self, request: GatewayRequest, response: dict[str, Any]) -> None:
        self.entries[self.key(request)] = response


def test_a_cache_hit_is_served_without_the_upstream(world):
    cache = DictCache()
    gw = world.start(Stages(cache=cache))
    ask = {"model": "chat", "messages": HELLO, "max_tokens": 5, "temperature": 0}

    first = gw.client.chat.completions.with_raw_response.create(**ask)
    assert first.headers["x-genai-cache"] == "miss"
    calls = upstream_calls(world.server)
    hit = gw.client.chat.completions.with_raw_response.create(**ask)
    assert hit.headers["x-genai-cache"] == "hit"
    assert upstream_calls(world.server) == calls
    assert hit.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert hit.parse().id == f"chatcmpl-{hit.headers['x-request-id']}" != first.parse().id

    replay = gw.client.chat.completions.with_raw_response.create(
        **ask, stream=True, stream_options={"include_usage": True}
    )
    assert replay.headers["x-genai-cache"] == "hit"
    chunks = list(replay.parse())
    assert upstream_calls(world.server) == calls
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        first.parse().choices[0].message.content
    )
    assert {c.id for c in chunks} == {f"chatcmpl-{replay.headers['x-request-id']}"}
    assert chunks[-1].usage.completion_tokens == first.parse().usage.completion_tokens

    rows = ledger(world, gw)
    assert [(r.cache_hit, r.target) for r in rows] == [
        (False, "local"),
        (True, "cache"),
        (True, "cache"),
    ]


def test_a_streamed_miss_is_stored_and_then_served_from_the_cache(world, wait_until):
    cache = DictCache()
    gw = world.start(Stages(cache=cache))
    ask = {"model": "chat:a1", "messages": HELLO, "max_tokens": 6, "temperature": 0}
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in gw.client.chat.completions.create(**ask, stream=True)
        if c.choices
    )
    assert wait_until(lambda: len(cache.entries) == 1, timeout=5)
    calls = upstream_calls(world.server)
    for stream in (False, True):
        raw = gw.client.chat.completions.with_raw_response.create(**ask, stream=stream)
        assert raw.headers["x-genai-cache"] == "hit"
        answer = raw.parse()
        text = (
            "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
            if stream
            else answer.choices[0].message.content
        )
        assert text == streamed
    assert upstream_calls(world.server) == calls
    other = gw.client.chat.completions.with_raw_response.create(**{**ask, "model": "chat"})
    assert other.headers["x-genai-cache"] == "miss"  # another adapter is another entry


# ------------------------------------------------------------------ the ledger


def test_each_request_leaves_one_ledger_row(world, wait_until):
    gw = world.start()
    whole = gw.client.chat.completions.with_raw_response.create(
        model="chat", messages=HELLO, max_tokens=3, temperature=0
    )
    stream = gw.client.completions.with_raw_response.create(
        model="chat:a1", prompt="Hello", max_tokens=4, temperature=0, stream=True
    )
    list(stream.parse())
    assert wait_until(lambda: len(ledger(world, gw)) == 2, timeout=5)
    rows = ledger(world, gw)
    assert [(r.request_id, r.model, r.adapter, r.target, r.status) for r in rows] == [
        (whole.headers["x-request-id"], "chat", "", "local", "ok"),
        (stream.headers["x-request-id"], "chat", "a1", "local", "ok"),
    ]
    # the client did not ask for usage in its stream, but the ledger has the tokens
    assert (rows[0].completion_tokens, rows[1].completion_tokens) == (3, 4)
    assert all(r.prompt_tokens > 0 and r.latency_ms > 0 and r.key_id for r in rows)
    assert {r.principal.split(" via key ")[0] for r in rows} == {"user:admin"}
