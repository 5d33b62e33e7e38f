"""DLP and the semantic cache together, through one gateway with the real stages on.

The DLP stages (``dlp_stages``, the bundled NER and the pattern recognizers) and the cache
stage (``GatewayCache`` over ``SemanticCache`` with the bundled embedder) as ``genai
gateway`` runs them: personal data reaches the upstream as tokens only and comes back to
the user restored, also from the cache, and only in its own session; a paraphrase of an
earlier question is a hit, its negation is not; nothing raw is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import genai
from apps._cache import GatewayCache
from apps._dlp import dlp_stages
from cache import ProjectCaches, SemanticCache
from genai.dlp import Policy
from genai.gateway import GatewayOptions, Stages
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore

EMAIL, CARD = "alice@example.com", "4111 1111 1111 1111"
RAW = (EMAIL, CARD, "4111111111111111", "alice@")


@dataclass
class World:
    admin: genai.Client
    upstream: FakeOpenAIServer
    url: str
    key: str
    project_id: int
    cache: SemanticCache

    def ask(self, question: str, *, reply: str = "", session: str | None = None) -> httpx.Response:
        self.upstream.reply = reply or f"fresh answer to {question}"
        headers = {"authorization": f"Bearer {self.key}"}
        if session:
            headers["x-genai-session"] = session
        body = {"model": "chat", "messages": [{"role": "user", "content": question}]}
        with httpx.Client(timeout=60) as client:
            response = client.post(self.url + "/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.text
        return response

    def settle(self, wait_until: Callable[..., bool], count: int) -> None:
        """Wait until the background stores have written ``count`` entries."""
        stored = lambda: self.cache.stats(self.project_id).entries >= count  # noqa: E731
        assert wait_until(stored, timeout=10), "not stored"


def answer(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    embedder: Any,
) -> Iterator[World]:
    admin = platform()
    upstream = FakeOpenAIServer(max_model_len=100_000)
    with running_server(upstream.app) as url:
        admin.projects.create("bank")
        admin.registry.deployments.create(
            "bank",
            "chat",
            spec={
                "targets": [{"name": "remote", "url": url + "/v1", "model": "fake-base"}],
                "retries": 0,
            },
        )
        admin.projects.set_option("bank", "dlp", Policy(default_action="pseudonymise").to_json())
        ProjectCaches(admin).enable("bank")  # the cache is off unless a project turns it on
        key = admin.keys.create("bank", role="developer").secret
        with admin.store.session() as s:
            pid = s.scalar(select(t.Project.id).where(t.Project.name == "bank")) or 0
        dlp_request, dlp_response = dlp_stages(settings, admin.store)
        cache = SemanticCache(InMemoryVectorStore(), embedder, store=admin.store)
        stages = Stages(
            request=[dlp_request],
            response=[dlp_response],
            cache=GatewayCache(cache, store=admin.store, revision_ttl_s=0.0),
        )
        options = GatewayOptions(ledger_interval_s=0.02, key_cache_ttl_s=0.01)
        live = gateway_server(settings, stages=stages, options=options)
        try:
            yield World(admin, upstream, live.url, key, pid, cache)
        finally:
            dlp_request.close()
            cache.close()


def test_personal_data_goes_up_as_tokens_and_comes_back_restored_even_from_the_cache(
    world: World, wait_until: Any
) -> None:
    question = f"I am {EMAIL} and my card {CARD} was declined. What should I do?"
    reply = "Dear <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1> is blocked: call us."
    restored = f"Dear {EMAIL}, card {CARD} is blocked: call us."

    first = world.ask(question, reply=reply, session="s1")
    sent = json.dumps(world.upstream.requests[-1].body)
    assert "<EMAIL_ADDRESS_1>" in sent and "<CREDIT_CARD_1>" in sent
    assert not [raw for raw in RAW if raw in sent], sent
    assert (first.headers["x-genai-cache"], answer(first)) == ("miss", restored)

    world.settle(wait_until, 1)
    again = world.ask(question, reply="the upstream was asked again", session="s1")
    assert (again.headers["x-genai-cache"], answer(again)) == ("hit", restored)
    assert world.upstream.calls() == 1
    # another session's <EMAIL_ADDRESS_1> is another person: never this answer
    other = world.ask(question, reply="Hello <EMAIL_ADDRESS_1>.", session="s2")
    assert (other.headers["x-genai-cache"], answer(other)) == ("miss", f"Hello {EMAIL}.")
    assert world.upstream.calls() == 2

    with world.admin.store.session() as s:
        rows = s.execute(select(t.CacheEntry.question, t.CacheEntry.answer)).all()
    stored = json.dumps([list(row) for row in rows], default=str)
    assert "<EMAIL_ADDRESS_1>" in stored
    assert not [raw for raw in RAW if raw in stored], stored


def test_a_paraphrase_is_a_hit_and_the_negation_is_not(world: World, wait_until: Any) -> None:
    first = world.ask("How do I open an account?", reply="Go to Settings, then Accounts.")
    assert first.headers["x-genai-cache"] == "miss"
    world.settle(wait_until, 1)
    paraphrase = world.ask("What are the steps to open an account?")
    assert paraphrase.headers["x-genai-cache"] == "hit"
    assert answer(paraphrase) == "Go to Settings, then Accounts."
    for question in ("How do I close an account?", "How do I not open an account?"):
        other = world.ask(question)
        assert (other.headers["x-genai-cache"], answer(other)) == (
            "miss",
            f"fresh answer to {question}",
        )
    assert world.upstream.calls() == 3
