"""The semantic cache behind a real gateway (apps/_cache.py), in front of a fake upstream
that counts its calls: a repeated or paraphrased question is answered from the cache, a
question that asks something else is not; a cached answer is replayed as an SSE stream;
another project never hits; a project (or deployment) that did not turn the cache on is
never cached; the cache header says hit or miss and nothing more; feedback evicts; a new
deployment revision, adapter, prompt or knowledge-base version, another endpoint or
response format starts afresh; sampling, tool calls and unchecked or pseudonymised requests
are handled as documented.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select

import genai
from apps._cache import GatewayCache
from cache import ProjectCaches, SemanticCache
from genai.gateway import DlpNote, DlpStatus, GatewayOptions, GatewayRequest, Stages
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore

A, B, C = "proj-a", "proj-b", "proj-c"  # C does not turn the cache on
OPEN = "How do I open an account?"


# SQLite here; tests/integration/test_cache_store.py covers PostgreSQL.
pytestmark = pytest.mark.sqlite_only


class TestStage:
    """Stands in for the prompt, RAG and DLP stages: sets what they would set, from
    headers the test sends."""

    name = "test-stage"

    async def before(self, request: GatewayRequest) -> None:
        headers = request.headers
        if "x-genai-test-prompt" in headers:
            request.prompt_version = headers["x-genai-test-prompt"]
        if "x-genai-test-kb" in headers:
            request.notes.kb_version = headers["x-genai-test-kb"]
        if "x-genai-test-dlp" in headers:
            status = cast(DlpStatus, headers["x-genai-test-dlp"])
            assert status in ("protected", "degraded", "failed_open")
            counts = {"EMAIL_ADDRESS": 1} if status == "protected" else {}
            request.notes.dlp = DlpNote(status, counts)


@dataclass
class World:
    admin: genai.Client
    fake: FakeOpenAIServer
    url: str
    keys: dict[str, str]
    ids: dict[str, int]
    cache: SemanticCache
    stage: GatewayCache

    def post(
        self,
        project: str,
        question: str | list[dict[str, Any]] = OPEN,
        *,
        reply: str | None = None,
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> httpx.Response:
        if reply is not None:
            self.fake.reply = reply
        messages = (
            [{"role": "user", "content": question}] if isinstance(question, str) else question
        )
        payload = {"model": "chat", "messages": messages, **body}
        return self.send(project, "/v1/chat/completions", payload, headers)

    def complete(self, project: str, prompt: str, *, reply: str | None = None) -> httpx.Response:
        """A ``/v1/completions`` request."""
        if reply is not None:
            self.fake.reply = reply
        return self.send(project, "/v1/completions", {"model": "chat", "prompt": prompt})

    def send(
        self,
        project: str,
        path: str,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"authorization": f"Bearer {self.keys[project]}", **(headers or {})}
        with httpx.Client(timeout=30) as client:
            response = client.post(self.url + path, json=payload, headers=sent)
        assert response.status_code == 200, response.text
        return response

    def entries(self, project: str = A) -> int:
        return self.cache.stats(self.ids[project]).entries

    def settle(self, wait_until: Callable[..., bool], project: str = A, count: int = 1) -> None:
        """Wait until the background stores have written ``count`` entries."""
        assert wait_until(lambda: self.entries(project) >= count, timeout=10), "not stored"


def content(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def cache_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if "cache" in k and k != "cache-control"}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(max_model_len=4096, adapters={"a1": "/adapters/a1"})
    with running_server(server.app) as url:
        server.url = url + "/v1"
        yield server


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    fake: FakeOpenAIServer,
    embedder: Any,
) -> Iterator[World]:
    admin = platform()
    keys: dict[str, str] = {}
    ids: dict[str, int] = {}
    for project in (A, B, C):
        admin.projects.create(project)
        admin.registry.deployments.create(project, "chat", spec=spec(fake))
        keys[project] = admin.keys.create(project, role="developer").secret
        with admin.store.session() as s:
            ids[project] = s.scalar(select(t.Project.id).where(t.Project.name == project)) or 0
    for project in (A, B):  # the cache is off unless a project turns it on
        ProjectCaches(admin).enable(project)
    cache = SemanticCache(InMemoryVectorStore(), embedder, store=admin.store)
    stage = GatewayCache(cache, store=admin.store, revision_ttl_s=0.0)
    options = GatewayOptions(ledger_interval_s=0.02, route_cache_ttl_s=0.01, key_cache_ttl_s=0.01)
    live = gateway_server(
        settings, stages=Stages(request=[TestStage()], cache=stage), options=options
    )
    yield World(admin, fake, live.url, keys, ids, cache, stage)
    cache.close()


def spec(fake: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    target = {"name": "fake", "url": fake.url, "model": "fake-base"}
    return {"targets": [target], "adapters": ["a1"], "retries": 0, **extra}


# ------------------------------------------------------------------ hits and misses


def test_a_repeated_question_is_answered_from_the_cache(world: World, wait_until: Any) -> None:
    first = world.post(A, reply="Go to Settings, then Accounts.")
    assert cache_headers(first) == {"x-genai-cache": "miss"}
    world.settle(wait_until)
    second = world.post(A, reply="the upstream was asked again")
    assert cache_headers(second) == {"x-genai-cache": "hit"}  # hit or miss, nothing else
    assert content(second) == "Go to Settings, then Accounts."
    assert world.fake.calls() == 1
    body = second.json()
    assert body["id"] == f"chatcmpl-{second.headers['x-request-id']}" != first.json()["id"]
    assert body["model"] == "chat" and body["usage"] == first.json()["usage"]
    stats = world.cache.stats(world.ids[A])
    assert (stats.exact_hits, stats.tokens_saved) == (1, first.json()["usage"]["total_tokens"])


def test_a_paraphrase_hits_and_a_different_question_misses(world: World, wait_until: Any) -> None:
    world.post(A, OPEN, reply="Go to Settings, then Accounts.")
    world.settle(wait_until)
    paraphrase = world.post(A, "What are the steps to open an account?", reply="upstream")
    assert paraphrase.headers["x-genai-cache"] == "hit"
    assert content(paraphrase) == "Go to Settings, then Accounts."
    for question in ("How do I close an account?", "How do I not open an account?"):
        other = world.post(A, question, reply=f"fresh answer to {question}")
        assert other.headers["x-genai-cache"] == "miss"
        assert content(other) == f"fresh answer to {question}"
    assert world.fake.calls() == 3


def test_a_cached_answer_is_replayed_as_a_stream(world: World, wait_until: Any) -> None:
    world.post(A, reply="One, two, three: a rather long answer that spans several pieces.")
    world.settle(wait_until)
    headers = {"authorization": f"Bearer {world.keys[A]}"}
    body = {"model": "chat", "messages": [{"role": "user", "content": OPEN}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    with httpx.stream("POST", world.url + "/v1/chat/completions", json=body, headers=headers) as r:
        assert r.status_code == 200 and r.headers["x-genai-cache"] == "hit"
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = r.read()
    events = [e.removeprefix(b"data: ") for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) > 3 and {c["object"] for c in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "One, two, three: a rather long answer that spans several pieces."
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert world.fake.calls() == 1


def test_a_streamed_answer_is_stored_and_served_whole(world: World, wait_until: Any) -> None:
    streamed = world.post(A, reply="Streamed from the upstream.", stream=True)
    assert streamed.headers["x-genai-cache"] == "miss" and "[DONE]" in streamed.text
    world.settle(wait_until)
    whole = world.post(A, reply="not this")
    assert whole.headers["x-genai-cache"] == "hit"
    assert content(whole) == "Streamed from the upstream."
    assert world.fake.calls() == 1


# ------------------------------------------------------------------ tenancy


def test_another_project_never_hits_and_learns_nothing(world: World, wait_until: Any) -> None:
    world.post(A, reply="A's private answer")
    world.settle(wait_until)
    for question in ("how can I open an account", OPEN):  # semantic, then exact
        b = world.post(B, question, reply="B's own answer")
        assert set(cache_headers(b)) == {"x-genai-cache"}  # hit or miss, nothing else
        assert content(b) == "B's own answer" and "A's private answer" not in b.text
        world.settle(wait_until, B)  # B's entry, which B's second question may hit
    assert world.fake.calls() == 2
    a_stats, b_stats = (world.cache.stats(world.ids[p]) for p in (A, B))
    assert (a_stats.lookups, a_stats.hits) == (1, 0)  # B's lookups count for B only
    assert b_stats.lookups == 2


def test_feedback_marking_a_cached_answer_wrong_evicts_it(world: World, wait_until: Any) -> None:
    world.post(A, reply="a wrong answer")
    world.settle(wait_until)
    hit = world.post(A)
    assert hit.headers["x-genai-cache"] == "hit"
    headers = {"authorization": f"Bearer {world.keys[B]}"}
    with httpx.Client(base_url=world.url, headers=headers, timeout=30) as client:
        foreign = client.post(
            "/v1/feedback", json={"response_id": hit.json()["id"], "rating": "down"}
        )
        assert foreign.status_code == 404  # B cannot evict A's entry
        headers["authorization"] = f"Bearer {world.keys[A]}"
        answer = client.post(
            "/v1/feedback",
            json={"response_id": hit.json()["id"], "rating": "down"},
            headers=headers,
        )
    assert answer.status_code == 200, answer.text
    assert world.entries() == 0
    again = world.post(A, reply="a better answer")
    assert again.headers["x-genai-cache"] == "miss" and content(again) == "a better answer"
    assert world.cache.stats(world.ids[A]).false_hits == 1


def test_a_project_that_did_not_turn_the_cache_on_never_hits(world: World, wait_until: Any) -> None:
    for _ in range(3):
        answer = world.post(C, reply="fresh every time")
        assert answer.headers["x-genai-cache"] == "miss"
    assert world.fake.calls() == 3
    world.stage.cache.flush()
    stats = world.cache.stats(world.ids[C])
    assert (stats.entries, stats.lookups) == (0, 0)  # nothing stored, nothing looked up
    assert world.entries(A) == 0  # and nothing of C's landed elsewhere


def test_the_cache_is_on_per_deployment_when_a_project_says_so(
    world: World, wait_until: Any
) -> None:
    world.admin.registry.deployments.create(C, "drafts", spec=spec(world.fake))
    caches = ProjectCaches(world.admin)
    caches.enable(C, "chat")  # only there
    world.post(C, reply="cached for chat")
    world.settle(wait_until, C)
    assert wait_until(lambda: world.post(C).headers["x-genai-cache"] == "hit", timeout=10)
    for _ in range(2):
        drafts = world.post(C, reply="a new draft", model="drafts")
        assert drafts.headers["x-genai-cache"] == "miss" and content(drafts) == "a new draft"
    caches.disable(C)  # the whole project: no entry is used any more
    assert wait_until(
        lambda: world.post(C, reply="fresh").headers["x-genai-cache"] == "miss", timeout=10
    )
    assert content(world.post(C, reply="fresh again")) == "fresh again"
    assert world.entries(C) == 1  # the entry stays until it ages out or is invalidated


# ------------------------------------------------------------------ partitions


def test_chat_and_completions_never_share_an_entry(world: World, wait_until: Any) -> None:
    world.post(A, OPEN, reply="a chat answer")
    world.settle(wait_until)
    completion = world.complete(A, OPEN, reply="a completion")
    assert completion.headers["x-genai-cache"] == "miss"
    assert completion.json()["object"] == "text_completion"
    world.settle(wait_until, count=2)
    for prompt in (OPEN, "how can I open an account"):  # exact, then semantic
        again = world.complete(A, prompt, reply="not asked")
        assert again.headers["x-genai-cache"] == "hit"
        body = again.json()
        assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
        assert body["choices"][0]["text"] == "a completion"
        chat = world.post(A, prompt, reply="not asked")
        assert chat.headers["x-genai-cache"] == "hit" and content(chat) == "a chat answer"
        assert chat.json()["object"] == "chat.completion"
    assert world.fake.calls() == 2


SCHEMA = {"type": "object", "properties": {"id": {"type": "string"}}}
FORMATS: list[dict[str, Any] | None] = [
    None,
    {"type": "text"},
    {"type": "json_object"},
    {"type": "json_schema", "json_schema": {"name": "order", "schema": SCHEMA}},
    {"type": "json_schema", "json_schema": {"name": "order", "schema": {"type": "object"}}},
]


def test_another_response_format_never_shares_an_entry(world: World, wait_until: Any) -> None:
    def extra(shape: dict[str, Any] | None) -> dict[str, Any]:
        return {"response_format": shape} if shape is not None else {}

    for n, shape in enumerate(FORMATS):
        first = world.post(A, OPEN, reply=f"answer {n}", **extra(shape))
        assert first.headers["x-genai-cache"] == "miss", shape
        world.settle(wait_until, count=n + 1)
    for n, shape in enumerate(FORMATS):
        again = world.post(A, "how can I open an account", reply="not asked", **extra(shape))
        assert again.headers["x-genai-cache"] == "hit" and content(again) == f"answer {n}"
    assert world.fake.calls() == len(FORMATS)


def test_a_new_deployment_revision_starts_afresh(world: World, wait_until: Any) -> None:
    world.post(A, reply="from revision 1")
    world.settle(wait_until)
    assert world.post(A).headers["x-genai-cache"] == "hit"
    world.admin.registry.deployments.create(A, "chat", spec=spec(world.fake, backoff_s=0.2))
    assert wait_until(
        lambda: world.post(A, reply="from revision 2").headers["x-genai-cache"] == "miss",
        timeout=10,
    )
    world.settle(wait_until, count=2)
    assert content(world.post(A)) == "from revision 2"


@pytest.mark.parametrize(
    ("changed", "headers", "model"),
    [
        ("adapter", {}, "chat:a1"),
        ("prompt version", {"x-genai-test-prompt": "qa@2"}, "chat"),
        ("knowledge-base version", {"x-genai-test-kb": "kb@8"}, "chat"),
        ("max_tokens", {}, "chat"),
    ],
)
def test_every_partition_field_starts_afresh(
    world: World, wait_until: Any, changed: str, headers: dict[str, str], model: str
) -> None:
    base = {"x-genai-test-prompt": "qa@1", "x-genai-test-kb": "kb@7"}
    world.post(A, reply="the first answer", headers=base)
    world.settle(wait_until)
    extra: dict[str, Any] = {"max_tokens": 50} if changed == "max_tokens" else {}
    moved = world.post(A, reply=f"new {changed}", headers={**base, **headers}, model=model, **extra)
    assert moved.headers["x-genai-cache"] == "miss", changed
    assert world.post(A, headers=base).headers["x-genai-cache"] == "hit"


# ------------------------------------------------------------------ what is not cached


def test_sampling_and_tool_calls_are_not_cached(world: World, wait_until: Any) -> None:
    for _ in range(2):
        assert world.post(A, temperature=0.7).headers["x-genai-cache"] == "miss"
    tools = [{"type": "function", "function": {"name": "open_account", "parameters": {}}}]
    world.post(A, "Open an account for me", tools=tools)
    assert world.post(A, "Open an account for me", tools=tools).headers["x-genai-cache"] == "miss"
    assert world.fake.calls() == 4
    world.post(A, temperature=0)  # an explicit 0 is cached
    world.settle(wait_until)
    assert world.entries() == 1


def test_cache_control_headers(world: World, wait_until: Any) -> None:
    world.post(A, reply="kept", headers={"x-genai-cache-control": "no-store"})
    world.post(A, reply="fresh", headers={"x-genai-cache-control": "no-cache"})
    world.settle(wait_until)
    assert content(world.post(A)) == "fresh"


def test_dlp_requests_are_cached_per_session_or_not_at_all(world: World, wait_until: Any) -> None:
    question = "What is the status of <EMAIL_ADDRESS_1>'s order?"
    unchecked = {"x-genai-test-dlp": "failed_open"}
    world.post(A, OPEN, headers=unchecked)
    world.post(A, question, headers={"x-genai-test-dlp": "protected"})  # no session
    assert world.entries() == 0
    mine = {"x-genai-test-dlp": "protected", "x-genai-session": "s1"}
    world.post(A, question, reply="shipped", headers=mine)
    world.settle(wait_until)
    assert world.post(A, question, headers=mine).headers["x-genai-cache"] == "hit"
    other = {**mine, "x-genai-session": "s2"}  # the same token means someone else there
    assert world.post(A, question, headers=other).headers["x-genai-cache"] == "miss"
    with world.admin.store.session() as s:
        stored = s.scalars(select(t.CacheEntry.question)).all()
    assert stored == [question]  # what DLP left: the pseudonym, never a value


def test_stats_through_the_cli_service(world: World, wait_until: Any) -> None:
    from cache import ProjectCaches

    world.post(A)
    world.settle(wait_until)
    world.post(A)
    with contextlib.closing(world.admin) as admin:
        stats = ProjectCaches(admin, world.cache).stats(A)
    assert (stats.lookups, stats.hits, stats.entries) == (2, 1, 1)


def test_the_stage_as_the_gateway_process_builds_it(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    fake: FakeOpenAIServer,
    wait_until: Any,
) -> None:
    """``cache_stage(settings, store)``: the bundled embedder and embedded Chroma under
    GENAI_HOME, entries in the platform's database."""
    from apps._cache import cache_stage
    from genai.vectors import ChromaVectorStore

    admin = platform()
    admin.projects.create(A)
    admin.registry.deployments.create(A, "chat", spec=spec(fake))
    ProjectCaches(admin).enable(A, "chat")
    key = admin.keys.create(A, role="developer").secret
    warmed = threading.Event()
    stage = cache_stage(settings, admin.store, after_warm=warmed.set)
    assert isinstance(stage, GatewayCache) and isinstance(stage.cache.vectors, ChromaVectorStore)
    assert warmed.wait(60)  # what `genai gateway` does then: freeze_heap
    live = gateway_server(settings, stages=Stages(cache=stage))
    headers = {"authorization": f"Bearer {key}"}
    body: dict[str, Any] = {"model": "chat", "messages": [{"role": "user", "content": OPEN}]}
    with httpx.Client(base_url=live.v1, headers=headers, timeout=60) as client:
        assert client.post("/chat/completions", json=body).headers["x-genai-cache"] == "miss"
        with admin.store.session() as s:
            pid = s.scalar(select(t.Project.id).where(t.Project.name == A)) or 0
        assert wait_until(lambda: stage.cache.stats(pid).entries == 1, timeout=30)
        body["messages"][0]["content"] = "What are the steps to open an account?"
        assert client.post("/chat/completions", json=body).headers["x-genai-cache"] == "hit"
    assert fake.calls() == 1
    assert (settings.home / "chroma").is_dir()
    stage.close()


def test_the_gateway_process_freezes_its_heap_once_the_model_is_loaded(tmp_path: Path) -> None:
    """In a process of its own (freezing is process-wide): after create_app's cache stage
    has loaded the embedding model, the cycle collector skips what start-up loaded."""
    script = (
        "import gc, time\n"
        "import genai\n"
        "genai.init(genai.Settings(), admin='admin')\n"
        "from apps.gateway import create_app\n"
        "create_app()\n"
        "deadline = time.monotonic() + 90\n"
        "while gc.get_freeze_count() == 0 and time.monotonic() < deadline:\n"
        "    time.sleep(0.1)\n"
        "import sentence_transformers\n"
        "gc.collect()\n"
        "print(gc.get_freeze_count(), len(gc.get_objects()))\n"
    )
    env = os.environ | {"GENAI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("GENAI_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    frozen, seen = (int(x) for x in done.stdout.split()[-2:])
    assert frozen > 100_000  # the libraries and the model
    # what a full collection still walks (the frozen objects are skipped: a pass over all
    # of them held the GIL for ~0.3 s); counted, not timed
    assert seen < frozen // 10, (frozen, seen)
