"""No project can stall another through the gateway: a project over its requests in
progress is refused at once (429, Retry-After), its slots come back after every kind of
ending, size limits refuse oversized requests with OpenAI's error shape, and a flood of
large embedding requests from one project neither delays another's work by more than a
turn nor grows its own queue past its bound.

Nothing here is timed. Requests are held open by an upstream that waits for a
threading.Event, or by an embedding model whose first call waits for one while it holds
the gateway's only CPU worker; what is asserted is counted (slots, queued jobs, ledger
rows) or read from the order the model saw its calls in.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from sqlalchemy import select

from apps._dlp import dlp_stages
from apps.admin import mount_admin
from genai.dlp import Policy
from genai.gateway import GatewayOptions, GatewayRequest, Stages
from genai.pool import FairPool
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server

A, B = "flood-a", "quiet-b"
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
CHAT: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "tell me something"}],
}
WAIT_S = 30.0  # the longest a test waits for something that happens at once (never reached)


# SQLite only: admission counts in the gateway process, not in the database.
pytestmark = pytest.mark.sqlite_only


class HeldUpstream:
    """A fake OpenAI server whose chat answers wait (in a thread) until ``gate`` opens."""

    def __init__(self) -> None:
        self.fake = FakeOpenAIServer()
        self.gate = threading.Event()
        self.arrived = 0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/v1/chat/completions":
                self.arrived += 1
                await asyncio.to_thread(self.gate.wait, WAIT_S)
            await self.fake.app(scope, receive, send)

        self.app = app


class HalfStream:
    """An upstream whose streams send their first event at once, the rest once ``gate``
    opens (a slow model, mid-answer)."""

    def __init__(self) -> None:
        self.gate = threading.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            while (await receive()).get("more_body"):
                pass
            head = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": head})
            await send({"type": "http.response.body", "body": _event("Hel"), "more_body": True})
            await asyncio.to_thread(self.gate.wait, WAIT_S)
            rest = _event("lo", "stop") + b"data: [DONE]\n\n"
            await send({"type": "http.response.body", "body": rest, "more_body": False})

        self.app = app


def _event(text: str, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    chunk = {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class Boom:
    """A request stage with a bug (a RuntimeError) for requests whose ``user`` is boom."""

    name = "boom"

    async def before(self, request: GatewayRequest) -> None:
        if request.body.get("user") == "boom":
            raise RuntimeError("a bug in a stage")


@pytest.fixture
def world(platform: Callable[..., Any]) -> Iterator[SimpleNamespace]:
    """A's ``chat`` goes to an upstream that holds its answers, B's to a quick one."""
    admin = platform()
    held, quick = HeldUpstream(), FakeOpenAIServer()
    with running_server(held.app) as held_url, running_server(quick.app) as quick_url:
        keys, ids = {}, {}
        for project, url in ((A, held_url), (B, quick_url)):
            admin.projects.create(project)
            target = {"name": "main", "url": url + "/v1", "model": "fake-base"}
            spec = {"targets": [target], "retries": 0}
            admin.registry.deployments.create(project, "chat", spec=spec)
            keys[project] = admin.keys.create(project, role="developer").secret
            with admin.store.session() as s:
                ids[project] = s.scalar(select(t.Project.id).where(t.Project.name == project))
        try:
            yield SimpleNamespace(admin=admin, held=held, quick=quick, keys=keys, ids=ids)
        finally:
            held.gate.set()  # nothing stays waiting when a test fails half-way


def post(
    http: httpx.Client, gw: Any, key: str, body: dict[str, Any], path: str = "/chat/completions"
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if not body.get("stream"):
        return http.post(gw.v1 + path, json=body, headers=headers)
    with http.stream("POST", gw.v1 + path, json=body, headers=headers) as response:
        response.read()
        return response


def statuses(gw: Any, project_id: int) -> Counter[str]:
    assert gw.gateway.ledger.flush()
    with gw.gateway.store.session() as s:
        rows = s.scalars(select(t.UsageRecord.status).where(t.UsageRecord.project_id == project_id))
        return Counter(rows)


# ------------------------------------------------------------------ requests in progress


def test_a_project_over_its_in_flight_limit_is_refused_at_once_and_others_go_on(
    world: SimpleNamespace, settings: Any, gateway_server: Callable[..., Any], wait_until: Any
) -> None:
    world.admin.quotas.set(A, max_in_flight=2)
    gw = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.02))
    admission = gw.gateway.admission
    key_a, key_b = world.keys[A], world.keys[B]
    with ThreadPoolExecutor(4) as threads, httpx.Client(timeout=WAIT_S) as http:
        held = [threads.submit(post, http, gw, key_a, CHAT) for _ in range(2)]
        assert wait_until(lambda: world.held.arrived == 2, WAIT_S)
        assert admission.in_flight(world.ids[A]) == 2
        # the upstream still holds both: these answers cannot have waited for a slot
        for body in (CHAT, {**CHAT, "stream": True}):
            refused = post(http, gw, key_a, body)
            assert refused.status_code == 429, refused.text
            assert refused.headers["retry-after"] == "1"
            error = refused.json()["error"]
            assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
            assert "has 2 requests in progress" in error["message"]
            assert "max_in_flight 2 of the project's quota" in error["message"]
        other = post(http, gw, key_b, CHAT)  # another project is not held up
        assert other.status_code == 200, other.text
        assert world.held.arrived == 2 and admission.in_flight(world.ids[A]) == 2
        world.held.gate.set()
        assert [f.result().status_code for f in held] == [200, 200]
    assert admission.in_flight(world.ids[A]) == 0
    assert statuses(gw, world.ids[A]) == {"ok": 2, "rate_limited": 2}
    rendered = gw.gateway.metrics.render().decode()
    assert f'project="{A}"' in rendered and 'status="429"' in rendered


def test_the_operators_limit_caps_a_quota_that_asks_for_more(
    world: SimpleNamespace, settings: Any, gateway_server: Callable[..., Any], wait_until: Any
) -> None:
    world.admin.quotas.set(A, max_in_flight=5)
    options = GatewayOptions(ledger_interval_s=0.02, max_in_flight_per_project=1)
    gw = gateway_server(settings, options=options)
    with ThreadPoolExecutor(2) as threads, httpx.Client(timeout=WAIT_S) as http:
        held = threads.submit(post, http, gw, world.keys[A], CHAT)
        assert wait_until(lambda: world.held.arrived == 1, WAIT_S)
        refused = post(http, gw, world.keys[A], CHAT)
        assert refused.status_code == 429
        assert "GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT" in refused.json()["error"]["message"]
        world.held.gate.set()
        assert held.result().status_code == 200


def test_slots_come_back_after_errors_bugs_and_clients_that_leave(
    world: SimpleNamespace, settings: Any, gateway_server: Callable[..., Any], wait_until: Any
) -> None:
    slow = HalfStream()
    with running_server(slow.app) as slow_url:
        target = {"name": "slow", "url": slow_url + "/v1", "model": "m"}
        spec = {"targets": [target], "retries": 0}
        world.admin.registry.deployments.create(B, "slow", spec=spec)
        try:
            check_slots(world, settings, gateway_server, wait_until)
        finally:
            slow.gate.set()


def check_slots(
    world: SimpleNamespace, settings: Any, gateway_server: Callable[..., Any], wait_until: Any
) -> None:
    options = GatewayOptions(ledger_interval_s=0.02, max_request_tokens=1000)
    gw = gateway_server(settings, options=options, stages=Stages(request=[Boom()]))
    admission, b = gw.gateway.admission, world.ids[B]
    key = world.keys[B]
    with httpx.Client(timeout=WAIT_S) as http:
        world.quick.mode = "error500"
        assert post(http, gw, key, CHAT).status_code == 502
        assert post(http, gw, key, {**CHAT, "stream": True}).status_code == 502
        assert admission.in_flight(b) == 0
        world.quick.mode = "ok"
        too_big = post(http, gw, key, {**CHAT, "max_tokens": 5000})
        assert too_big.status_code == 400 and too_big.json()["error"]["param"] == "max_tokens"
        assert post(http, gw, key, {**CHAT, "user": "boom"}).status_code == 500
        assert admission.in_flight(b) == 0
        streamed = post(http, gw, key, {**CHAT, "stream": True})
        assert streamed.status_code == 200 and b"[DONE]" in streamed.content
        assert wait_until(lambda: admission.in_flight(b) == 0, WAIT_S)
        # a stream whose upstream stops after its first event, left by its client there
        headers = {"authorization": f"Bearer {key}"}
        body = {**CHAT, "model": "slow", "stream": True}
        with http.stream("POST", gw.v1 + "/chat/completions", json=body, headers=headers) as r:
            assert r.status_code == 200
            # keep the iterator: once collected, httpx closes the connection (the client left)
            chunks = r.iter_bytes()
            assert next(chunks).startswith(b"data: ")
            assert admission.in_flight(b) == 1  # held while the stream is open
            del chunks
        assert wait_until(lambda: admission.in_flight(b) == 0, WAIT_S)
    assert statuses(gw, b)["rate_limited"] == 0


def test_owners_set_max_in_flight_from_the_cli_and_the_admin_api(
    world: SimpleNamespace, settings: Any, gateway_server: Callable[..., Any], db_url: str
) -> None:
    genai_cli = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {"GENAI_HOME": str(settings.home), "GENAI_DATABASE_URL": db_url, "GENAI_USER": "admin"}
    done = subprocess.run(
        [genai_cli, "quota", "set", "-p", A, "--max-in-flight", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "max_in_flight=3" in done.stdout
    assert world.admin.quotas.get(A).limits.max_in_flight == 3
    gw = gateway_server(settings, admin=mount_admin)
    owner = {"authorization": f"Bearer {world.admin.keys.create(B, role='owner').secret}"}
    url = f"{gw.url}/api/projects/{B}/quota"
    with httpx.Client(timeout=WAIT_S, headers=owner) as http:
        assert http.patch(url, json={"max_in_flight": 2}).json()["max_in_flight"] == 2
        assert http.patch(url, json={"max_in_flight": 0}).status_code in (400, 422)
        assert http.get(url).json()["limits"]["max_in_flight"] == 2
        assert http.patch(url, json={"max_in_flight": None}).json()["max_in_flight"] is None


# ------------------------------------------------------------------ size limits


def test_oversized_requests_are_refused_with_openais_error_shape(
    world: SimpleNamespace,
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
) -> None:
    options = GatewayOptions(
        ledger_interval_s=0.02,
        max_request_tokens=1000,
        max_embedding_inputs=4,
        max_embedding_input_tokens=16,
        max_embedding_tokens=40,
        embedding_batch=3,
    )
    gw = gateway_server(settings, options=options, embedder=embedder)
    client = openai.OpenAI(base_url=gw.v1, api_key=world.keys[B], max_retries=0)
    ten_words = "one two three four five six seven eight nine ten"
    cases = [
        (["a", "b", "c", "d", "e"], "'input' has 5 texts, but this gateway embeds at most 4"),
        ([ten_words * 3], "input 0 has 30 tokens, but this gateway embeds at most 16"),
        ([ten_words + " x y"] * 4, "have 48 tokens in all, but this gateway embeds at most 40"),
    ]
    for texts, says in cases:
        with pytest.raises(openai.BadRequestError) as refused:
            client.embeddings.create(model=EMBEDDING_MODEL, input=texts)
        error = refused.value.body
        assert isinstance(error, dict)
        assert says in error["message"]
        assert (error["type"], error["param"]) == ("invalid_request_error", "input")
    with pytest.raises(openai.BadRequestError, match="GENAI_GATEWAY_MAX_REQUEST_TOKENS"):
        client.chat.completions.create(**CHAT, max_tokens=2000)
    texts = ["how do I reset my password", "the vpn address", "opening hours", ten_words]
    answer = client.embeddings.create(model=EMBEDDING_MODEL, input=texts, encoding_format="float")
    assert [d.index for d in answer.data] == [0, 1, 2, 3]  # two jobs of 3 and 1, in order
    got = np.array([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_allclose(got, embedder.embed(texts), atol=1e-6)
    assert answer.usage.prompt_tokens == sum(embedder.count_tokens(x) for x in texts)
    assert gw.gateway.admission.in_flight(world.ids[B]) == 0
    assert statuses(gw, world.ids[B]) == {"invalid_request": 4, "ok": 1}


# ------------------------------------------------------------------ the flood


class Recording:
    """The real embedding model, recording each call: whose texts (the request's label,
    what precedes ``-`` in its first text) and how many of A's jobs were queued then. The
    first call of request ``A0`` holds the gateway's only CPU worker until ``gate``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.pool: FairPool | None = None

    @property
    def model_name(self) -> str:
        return str(self.inner.model_name)

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def count_tokens(self, text: str) -> int:
        return int(self.inner.count_tokens(text))

    def embed(self, texts: list[str]) -> Any:
        label = texts[0].split("-")[0]
        assert self.pool is not None
        self.calls.append((label, self.pool.stats().queued_by_owner.get(A, 0)))
        if label == "A0" and not self.gate.is_set():
            self.entered.set()
            assert self.gate.wait(WAIT_S), "the test never opened the gate"
        return self.inner.embed(texts)

    def labels(self) -> list[str]:
        return [label for label, _ in self.calls]


def texts_of(label: str, count: int) -> list[str]:
    return [f"{label}-{i} the quick brown fox jumps over the lazy dog" for i in range(count)]


def embed(http: httpx.Client, gw: Any, key: str, texts: list[str]) -> httpx.Response:
    body = {"model": EMBEDDING_MODEL, "input": texts, "encoding_format": "float"}
    return post(http, gw, key, body, "/embeddings")


@pytest.fixture
def flood_gateway(
    settings: Any, gateway_server: Callable[..., Any], embedder: Any
) -> tuple[Any, Recording]:
    """One CPU worker, six queued jobs per project, two texts per embedding job."""
    recording = Recording(embedder)
    options = GatewayOptions(
        ledger_interval_s=0.02, cpu_workers=1, cpu_queue_per_project=6, embedding_batch=2
    )
    gw = gateway_server(settings, options=options, embedder=recording)
    recording.pool = gw.gateway.pool
    return gw, recording


def test_a_flood_of_embeddings_leaves_another_project_its_turn(
    world: SimpleNamespace, flood_gateway: tuple[Any, Recording], wait_until: Any
) -> None:
    gw, recording = flood_gateway
    pool = gw.gateway.pool
    key_a, key_b = world.keys[A], world.keys[B]
    with ThreadPoolExecutor(12) as threads, httpx.Client(timeout=WAIT_S) as http:
        first = threads.submit(embed, http, gw, key_a, texts_of("A0", 6))
        assert recording.entered.wait(WAIT_S)  # A0's first job holds the only worker
        flood = [threads.submit(embed, http, gw, key_a, texts_of(f"A{i}", 6)) for i in range(1, 7)]
        assert wait_until(lambda: pool.stats().queued_by_owner.get(A) == 6, WAIT_S)
        # A's queue is full: the next is refused while the worker is still held, so at once
        over = embed(http, gw, key_a, texts_of("A7", 6))
        assert over.status_code == 429, over.text
        assert int(over.headers["retry-after"]) >= 1
        assert over.json()["error"]["type"] == "rate_limit_error"
        assert pool.stats().queued_by_owner[A] == 6  # refused, not queued
        quiet = threads.submit(embed, http, gw, key_b, texts_of("B", 1))
        assert wait_until(lambda: pool.stats().queued_by_owner.get(B) == 1, WAIT_S)
        recording.gate.set()
        assert quiet.result().status_code == 200
        assert [f.result().status_code for f in [first, *flood]] == [200] * 7
    labels = recording.labels()
    assert labels.count("B") == 1 and len(labels) == 1 + 7 * 3
    turn = labels.index("B")
    # B's one job waited a turn or so behind A's (first-come order would put it behind
    # the first job of each of A's seven requests), while most of A's flood still waited
    assert turn <= 3, labels
    assert recording.calls[turn][1] >= 3, recording.calls
    assert len(labels) - turn - 1 >= 15
    assert statuses(gw, world.ids[A]) == {"ok": 7, "rate_limited": 1}
    assert statuses(gw, world.ids[B]) == {"ok": 1}


def test_an_embedding_request_whose_client_left_never_runs(
    world: SimpleNamespace, flood_gateway: tuple[Any, Recording], wait_until: Any
) -> None:
    gw, recording = flood_gateway
    pool = gw.gateway.pool
    with ThreadPoolExecutor(2) as threads, httpx.Client(timeout=WAIT_S) as http:
        first = threads.submit(embed, http, gw, world.keys[A], texts_of("A0", 2))
        assert recording.entered.wait(WAIT_S)
        body = json.dumps({"model": EMBEDDING_MODEL, "input": texts_of("Gone", 2)}).encode()
        port = int(gw.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                b"POST /v1/embeddings HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/json\r\n"
                + f"authorization: Bearer {world.keys[B]}\r\n".encode()
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert wait_until(lambda: pool.stats().queued_by_owner.get(B) == 1, WAIT_S)
        # the client is gone: its queued job is dropped, and its slot given back
        assert wait_until(lambda: pool.stats().dropped == 1, WAIT_S)
        assert wait_until(lambda: gw.gateway.admission.in_flight(world.ids[B]) == 0, WAIT_S)
        recording.gate.set()
        assert first.result().status_code == 200
    assert "Gone" not in recording.labels()
    assert statuses(gw, world.ids[B]) == {"cancelled": 1}


def test_in_process_answers_wait_their_turn_in_the_pool_as_their_projects_work(
    world: SimpleNamespace,
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    wait_until: Any,
) -> None:
    spec = {"targets": [{"name": "quote", "backend": "extractive"}], "retries": 0}
    world.admin.registry.deployments.create(B, "quote", spec=spec)
    # the extractive target embeds with the process's (loaded) embedder
    options = GatewayOptions(ledger_interval_s=0.02)
    gw = gateway_server(settings, options=options, embedder=embedder)
    pool = gw.gateway.pool
    ask = {
        "model": "quote",
        "messages": [{"role": "user", "content": "When does the office open?"}],
        "context": [{"id": "1", "text": "The office opens at nine on weekdays."}],
    }
    with ThreadPoolExecutor(2) as threads, httpx.Client(timeout=WAIT_S) as http:
        for body in (ask, {**ask, "stream": True}):
            opened = threading.Event()
            pool.submit("someone-else", opened.wait, WAIT_S)  # holds the only worker
            answer = threads.submit(post, http, gw, world.keys[B], body)
            # the extractive answer is queued in the pool, as B's job
            assert wait_until(lambda: pool.stats().queued_by_owner.get(B) == 1, WAIT_S)
            opened.set()
            reply = answer.result()
            assert reply.status_code == 200, reply.text
            assert b"nine" in reply.content
    assert wait_until(lambda: gw.gateway.admission.in_flight(world.ids[B]) == 0, WAIT_S)


def test_a_chat_request_whose_client_left_is_cancelled_and_its_work_never_runs(
    world: SimpleNamespace,
    settings: Any,
    gateway_server: Callable[..., Any],
    wait_until: Any,
) -> None:
    spec = {"targets": [{"name": "quote", "backend": "extractive"}], "retries": 0}
    world.admin.registry.deployments.create(B, "quote", spec=spec)
    gw = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.02))
    pool = gw.gateway.pool
    opened = threading.Event()
    pool.submit("someone-else", opened.wait, WAIT_S)  # holds the only worker
    body = json.dumps(
        {
            "model": "quote",
            "messages": [{"role": "user", "content": "When does the office open?"}],
            "context": [{"id": "1", "text": "The office opens at nine on weekdays."}],
        }
    ).encode()
    port = int(gw.url.rsplit(":", 1)[1])
    try:
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                b"content-type: application/json\r\n"
                + f"authorization: Bearer {world.keys[B]}\r\n".encode()
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            # the extractive answer waits in the pool as B's job; then the client leaves
            assert wait_until(lambda: pool.stats().queued_by_owner.get(B) == 1, WAIT_S)
        assert wait_until(lambda: pool.stats().dropped == 1, WAIT_S)  # never run
        assert wait_until(lambda: gw.gateway.admission.in_flight(world.ids[B]) == 0, WAIT_S)
    finally:
        opened.set()
    assert statuses(gw, world.ids[B]) == {"cancelled": 1}


def test_dlp_checks_wait_their_turn_and_a_full_queue_refuses_at_once(
    world: SimpleNamespace,
    settings_factory: Callable[..., Any],
    gateway_server: Callable[..., Any],
    wait_until: Any,
) -> None:
    settings = settings_factory(dlp_ner="none")  # pattern recognizers: e-mail addresses
    world.admin.projects.set_option(B, "dlp", Policy(default_action="pseudonymise").to_json())
    store = Store(settings.resolved_database_url)
    pool = FairPool(workers=1, max_queued_per_owner=1, max_queued=8)
    request_stage, response_stage = dlp_stages(settings, store, pool=pool)
    stages = Stages(request=[request_stage], response=[response_stage], pool=pool)
    gw = gateway_server(settings, stages=stages, options=GatewayOptions(ledger_interval_s=0.02))
    mail = {**CHAT, "messages": [{"role": "user", "content": "mail alice@example.com"}]}
    try:
        with ThreadPoolExecutor(2) as threads, httpx.Client(timeout=WAIT_S) as http:
            assert post(http, gw, world.keys[B], mail).status_code == 200  # builds the detector
            assert "alice@example.com" not in json.dumps(world.quick.requests[-1].body)
            sent = len(world.quick.requests)
            opened = threading.Event()
            pool.submit("someone-else", opened.wait, WAIT_S)  # holds the only worker
            first = threads.submit(post, http, gw, world.keys[B], mail)
            assert wait_until(lambda: pool.stats().queued_by_owner.get(B) == 1, WAIT_S)
            refused = post(http, gw, world.keys[B], mail)  # B's one queue place is taken
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert "retry-after" in refused.headers
            assert len(world.quick.requests) == sent  # nothing of it left the gateway
            opened.set()
            assert first.result().status_code == 200
        assert statuses(gw, world.ids[B]) == {"ok": 2, "rate_limited": 1}
    finally:
        store.dispose()
