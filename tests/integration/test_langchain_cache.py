"""The LangChain adapter: a real ``langchain_openai.ChatOpenAI`` pointed at a real gateway
(in front of a fake upstream that counts its calls), with ``set_llm_cache(GenAICache(...))``:
the second call — the same question, or a paraphrase — never reaches the upstream; another
model configuration, another conversation or another project does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from sqlalchemy import select

import genai
from cache import SemanticCache
from cache.langchain import GenAICache
from genai.gateway import GatewayOptions
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore

OPEN = "How do I open an account?"


pytestmark = pytest.mark.sqlite_only  # the cache's store on PostgreSQL: test_cache_store.py


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(max_model_len=4096, reply="Go to Settings, then Accounts.")
    with running_server(server.app) as url:
        server.url = url + "/v1"
        yield server


@pytest.fixture
def setup(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    fake: FakeOpenAIServer,
) -> Iterator[tuple[str, str, dict[str, int], SemanticCache]]:
    from genai.models import SentenceTransformerEmbedder

    admin = platform()
    ids: dict[str, int] = {}
    keys: dict[str, str] = {}
    for project in ("lc-a", "lc-b"):
        admin.projects.create(project)
        target = {"name": "fake", "url": fake.url, "model": "fake-base"}
        admin.registry.deployments.create(project, "chat", spec={"targets": [target], "retries": 0})
        keys[project] = admin.keys.create(project, role="developer").secret
        with admin.store.session() as s:
            ids[project] = s.scalar(select(t.Project.id).where(t.Project.name == project)) or 0
    live = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.05))
    cache = SemanticCache(InMemoryVectorStore(), SentenceTransformerEmbedder(), store=admin.store)
    yield live.v1, keys["lc-a"], ids, cache
    set_llm_cache(None)
    cache.close()


def chat(base_url: str, key: str, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(base_url=base_url, api_key=key, model="chat", max_retries=0, **options)


def test_the_second_call_does_not_reach_the_upstream(setup: Any, fake: FakeOpenAIServer) -> None:
    base_url, key, ids, cache = setup
    set_llm_cache(GenAICache(cache, ids["lc-a"]))
    llm = chat(base_url, key, temperature=0)
    first = llm.invoke(OPEN)
    assert first.content == "Go to Settings, then Accounts." and fake.calls() == 1
    fake.reply = "the upstream was asked again"
    assert llm.invoke(OPEN).content == "Go to Settings, then Accounts."
    assert llm.invoke("What are the steps to open an account?").content == first.content
    assert asyncio.run(llm.ainvoke(OPEN)).content == first.content
    assert fake.calls() == 1
    stats = cache.stats(ids["lc-a"])
    assert (stats.exact_hits, stats.semantic_hits, stats.entries) == (2, 1, 1)

    # a question that asks something else, or another model configuration, is a miss
    assert llm.invoke("How do I close an account?").content == "the upstream was asked again"
    assert chat(base_url, key, temperature=0, max_tokens=40).invoke(OPEN).content == (
        "the upstream was asked again"
    )
    assert fake.calls() == 3


def test_conversations_and_projects_are_keyed_apart(setup: Any, fake: FakeOpenAIServer) -> None:
    base_url, key, ids, cache = setup
    set_llm_cache(GenAICache(cache, ids["lc-a"]))
    llm = chat(base_url, key, temperature=0)
    about_cards = [
        SystemMessage("You are a bank assistant."),
        HumanMessage("I lost my card."),
        AIMessage("I am sorry."),
        HumanMessage("What do I do now?"),
    ]
    llm.invoke(about_cards)
    about_loans = [*about_cards[:1], HumanMessage("I want a loan."), *about_cards[2:]]
    llm.invoke(about_loans)
    assert fake.calls() == 2  # same last message, another conversation
    llm.invoke(about_cards)
    assert fake.calls() == 2
    set_llm_cache(GenAICache(cache, ids["lc-b"]))  # another project's cache: its own
    llm.invoke(about_cards)
    assert fake.calls() == 3
    GenAICache(cache, ids["lc-a"]).clear()
    set_llm_cache(GenAICache(cache, ids["lc-a"]))
    llm.invoke(about_cards)
    assert fake.calls() == 4
