"""The knowledge bot as a gateway target, end to end on SQLite and PostgreSQL: a real
gateway, a real knowledge base (embedded Chroma, the bundled embedding model, BM25), a
registered prompt, the semantic cache, and the official openai SDK.

Answers cite the chunk that holds the answer; each answer is traced to the prompt and
knowledge-base versions; a re-ingestion or a moved ``production`` label is a new cache
partition; another project's key never reaches the knowledge base; follow-ups are
condensed by a generative LLM (a fake OpenAI-compatible server that records what it gets).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

import genai
from apps._cache import GatewayCache
from apps._knowledge import DEFAULT_PROMPT, KnowledgeBot
from apps._prompts import PromptStage
from apps.deployments import apply_spec
from cache import ProjectCaches, SemanticCache
from genai.errors import NotFoundError, ValidationError
from genai.gateway import GatewayOptions, Stages
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore
from prompts import PromptHub, PromptTemplate
from rag import KnowledgeBases

A, B = "support", "other-team"
REFUNDS = "How long do refunds take?"

DOCS = {
    "refunds.md": """
        # Refunds
        Refunds reach your card within five business days after we approve them.
        A refund for a gift card is paid as store credit.
    """,
    "invoices.md": """
        # Invoices
        Invoices are listed under Settings, then Billing, for the last 24 months.
    """,
    "support.md": """
        # Support desk
        The support desk opens at 9 am and closes at 6 pm, Monday to Friday.
    """,
}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(max_model_len=4096, reply=REFUNDS)
    with running_server(server.app) as url:
        server.url = url + "/v1"
        yield server


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")


@dataclass
class World:
    admin: genai.Client
    kbs: KnowledgeBases
    docs: Path
    url: str
    keys: dict[str, str]
    bot: KnowledgeBot

    def sdk(self, project: str = A) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=self.keys[project], max_retries=0)

    def post(self, body: dict[str, Any], project: str = A) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            json={"model": "docs-bot", **body},
            headers={"authorization": f"Bearer {self.keys[project]}"},
            timeout=60,
        )

    def ask(self, question: str, **extra: Any) -> httpx.Response:
        reply = self.post({"messages": [{"role": "user", "content": question}], **extra})
        assert reply.status_code == 200, reply.text
        return reply

    def ingest(self) -> None:
        self.kbs.get(A, "docs").ingest([self.docs])


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    embedder: Any,
    tmp_path: Path,
) -> World:
    admin = platform()
    keys = {}
    for project in (A, B):
        admin.projects.create(project)
        keys[project] = admin.keys.create(project, role="developer").secret
    kbs = KnowledgeBases(admin, embedder=embedder)
    kbs.create(A, "docs")
    docs = tmp_path / "docs"
    write_docs(docs, DOCS)
    kbs.get(A, "docs").ingest([docs])
    PromptHub(admin, A).push("qa", DEFAULT_PROMPT, label="production")
    spec = {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": {"kb": "docs"}}]}
    for project in (A, B):  # B's deployment names a knowledge base B does not have
        apply_spec(admin, project, "docs-bot", spec)
        ProjectCaches(admin).enable(project, "docs-bot")  # the cache is off unless on
    store = Store(settings.resolved_database_url, pool_size=10)
    prompts = PromptStage(settings, store, ttl_s=0.0)
    bot = KnowledgeBot(settings, store, prompts=prompts, knowledge_bases=kbs)
    cache = GatewayCache(
        SemanticCache(InMemoryVectorStore(), embedder, store=store),
        store=store,
        revision_ttl_s=0.0,
    )
    options = GatewayOptions(ledger_interval_s=0.02, route_cache_ttl_s=0.01, key_cache_ttl_s=0.01)
    live = gateway_server(
        settings,
        stages=Stages(request=[prompts], cache=cache, targets={bot.name: bot}),
        options=options,
    )
    return World(admin, kbs, docs, live.url, keys, bot)


def test_answers_cite_the_chunk_that_holds_the_answer_through_the_openai_sdk(
    world: World, wait_until: Callable[..., bool]
) -> None:
    raw = world.sdk().chat.completions.with_raw_response.create(
        model="docs-bot", messages=[{"role": "user", "content": REFUNDS}]
    )
    answer = raw.parse()
    text = answer.choices[0].message.content or ""
    assert "five business days" in text and "[" in text
    extra = answer.model_extra or {}
    sources = [Path(c["source"]).name for c in extra["citations"]]
    assert sources and sources[0] == "refunds.md", extra["citations"]
    assert "five business days" in extra["citations"][0]["text"]
    assert f"[{extra['citations'][0]['number']}]" in text
    trace = extra["genai"]
    assert trace["prompt_version"] == "qa@1" and trace["kb_version"] == 1
    assert len(trace["chunks"]) >= len(extra["citations"])
    assert raw.headers["x-genai-cache"] == "miss"

    request_id = raw.headers["x-request-id"]
    assert wait_until(lambda: world.kbs.answers(A, "docs", request_id=request_id), timeout=10)
    (recorded,) = world.kbs.answers(A, "docs", request_id=request_id)
    assert recorded.kb_version == 1 and recorded.prompt_version == "qa@1"
    assert recorded.cited == [c["number"] for c in extra["citations"]]
    assert [c["id"] for c in recorded.chunks] == [c["id"] for c in trace["chunks"]]

    def ledger() -> t.UsageRecord | None:
        with world.admin.store.session() as s:
            return s.scalars(
                select(t.UsageRecord).where(t.UsageRecord.request_id == request_id)
            ).one_or_none()

    assert wait_until(lambda: ledger() is not None, timeout=10)
    row = ledger()
    assert row is not None and row.prompt_version == "qa@1" and row.target == "bot"


def test_a_stream_carries_the_same_answer_and_its_citations_on_the_last_chunk(
    world: World,
) -> None:
    whole = world.ask(REFUNDS)
    chunks = list(
        world.sdk().chat.completions.create(
            model="docs-bot",
            messages=[{"role": "user", "content": "When does the support desk open?"}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "9 am" in text
    ends = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(ends) == 1
    cited = (ends[0].model_extra or {})["citations"]
    assert [Path(c["source"]).name for c in cited][:1] == ["support.md"]
    assert whole.json()["citations"]  # the whole answer carried them too


def test_the_cache_replays_citations_and_a_new_ingestion_or_label_is_a_new_partition(
    world: World,
) -> None:
    first = world.ask(REFUNDS)
    again = world.ask(REFUNDS)
    assert again.headers["x-genai-cache"] == "hit"
    assert again.json()["citations"] == first.json()["citations"]
    replay = world.post({"messages": [{"role": "user", "content": REFUNDS}], "stream": True}).text
    assert '"citations"' in replay and "five business days" in replay

    write_docs(world.docs, {"refunds.md": "# Refunds\nRefunds reach your card in two days.\n"})
    world.ingest()  # knowledge-base version 2: the cached answer is stale
    fresh = world.ask(REFUNDS)
    assert fresh.headers["x-genai-cache"] == "miss"
    assert "two days" in fresh.json()["choices"][0]["message"]["content"]
    assert fresh.json()["genai"]["kb_version"] == 2

    hub = PromptHub(world.admin, A)
    terse = PromptTemplate(
        messages=[("user", "<context>\n{{ context }}\n</context>\n{{ question }}")],
        variables={"question": "str", "context": "str"},
    )
    hub.push("qa", terse, label="production")
    moved = world.ask(REFUNDS)
    assert moved.headers["x-genai-cache"] == "miss"
    assert moved.json()["genai"]["prompt_version"] == "qa@2"


def test_another_projects_key_never_reaches_the_knowledge_base(
    world: World, wait_until: Callable[..., bool]
) -> None:
    world.ask(REFUNDS)  # A's own key: answered, and traced in A (off the request path)
    assert wait_until(lambda: len(world.kbs.answers(A)) == 1, timeout=10)
    before = world.kbs.answers(A)
    reply = world.post({"messages": [{"role": "user", "content": REFUNDS}]}, project=B)
    assert reply.status_code == 404, reply.text  # B has no knowledge base of that name
    assert "five business days" not in reply.text and "support" not in reply.text
    assert world.kbs.answers(A) == before  # nothing of B's request reached A
    b_key = genai.connect(world.admin.settings, api_key=world.keys[B], store=world.admin.store)
    with pytest.raises(NotFoundError):
        KnowledgeBases(b_key).answers(A)  # nor can B read A's traces


def test_bad_requests_and_bad_options_are_refused_with_the_field_named(world: World) -> None:
    two = world.post({"messages": [{"role": "user", "content": REFUNDS}], "n": 2})
    assert two.status_code == 400 and "n must be 1" in two.text
    nothing = world.post({"messages": [{"role": "assistant", "content": "hi"}]})
    assert nothing.status_code == 400 and "user's question" in nothing.text
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    for extra, field in (
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tools": [tool]}, "tools"),
        ({"logprobs": True}, "logprobs"),
    ):  # refused by name, never ignored (an answer in prose where JSON was asked)
        for stream in (False, True):
            body = {"messages": [{"role": "user", "content": REFUNDS}], "stream": stream}
            refused = world.post({**body, **extra})
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"]["param"] == field
    plain = world.post(
        {"messages": [{"role": "user", "content": REFUNDS}], "tools": [tool], "tool_choice": "none"}
    )
    assert plain.status_code == 200
    bad = {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": {"k": 3}}]}
    with pytest.raises(ValidationError, match=r"options\.kb"):
        apply_spec(world.admin, A, "broken", bad)


def test_follow_ups_are_condensed_by_a_generative_llm(world: World, fake: FakeOpenAIServer) -> None:
    spec = {
        "targets": [
            {
                "name": "bot",
                "backend": "knowledge-bot",
                "options": {"kb": "docs", "llm": {"url": fake.url, "model": "fake-base"}},
            }
        ]
    }
    apply_spec(world.admin, A, "docs-bot", spec)
    conversation = [
        {"role": "user", "content": "Tell me about refunds."},
        {"role": "assistant", "content": "Refunds go back to your card."},
        {"role": "user", "content": "How long do they take?"},
    ]
    reply = world.post({"messages": conversation})
    assert reply.status_code == 200, reply.text
    condense, answer = [r.body for r in fake.requests if r.path.endswith("/chat/completions")]
    assert "How long do they take?" in condense["messages"][-1]["content"]
    assert "Tell me about refunds." in condense["messages"][-1]["content"]
    prompt = answer["messages"][-1]["content"]
    assert "<context>" in prompt and "five business days" in prompt  # retrieved by REFUNDS
    assert "context" not in answer  # a vendor API gets the OpenAI body only
    body = reply.json()
    assert body["genai"]["condensed_question"] == REFUNDS
    assert body["usage"]["total_tokens"] > 0
