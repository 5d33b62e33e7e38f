"""The pair verifier and the error bound behind a real gateway: a project's
``cache.max_error`` and ``cache.verifier`` options reach the lookup, and ``/v1/feedback``
with a low rating on a verified hit counts against that project's bound only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

import genai
from apps._cache import GatewayCache
from cache import PairVerifier, ProjectCaches, SemanticCache, artefact_installed
from genai.gateway import GatewayOptions, Stages
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.skipif(not artefact_installed(), reason="the trained verifier is not built"),
]

LOOSE, STRICT, PLAIN = "loose", "strict", "plain"
CACHED, ASKED = "How do I open an account?", "What are the steps to open an account?"


@dataclass
class World:
    url: str
    keys: dict[str, str]
    ids: dict[str, int]
    cache: SemanticCache

    def ask(self, project: str, question: str) -> httpx.Response:
        body = {"model": "chat", "messages": [{"role": "user", "content": question}]}
        headers = {"authorization": f"Bearer {self.keys[project]}"}
        response = httpx.post(
            self.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        return response


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    embedder: Any,
) -> Iterator[World]:
    server = FakeOpenAIServer(max_model_len=4096)
    with running_server(server.app) as url:
        server.url = url + "/v1"
        admin = platform()
        keys: dict[str, str] = {}
        ids: dict[str, int] = {}
        spec = {
            "targets": [{"name": "fake", "url": server.url, "model": "fake-base"}],
            "retries": 0,
        }
        for project, options in (
            (LOOSE, {"max_error": 0.5}),
            (STRICT, {"max_error": 0.001}),  # under anything the calibration can promise
            (PLAIN, {"verifier": False}),
        ):
            admin.projects.create(project)
            admin.registry.deployments.create(project, "chat", spec=spec)
            keys[project] = admin.keys.create(project, role="developer").secret
            ProjectCaches(admin).enable(project, **options)
            with admin.store.session() as s:
                ids[project] = s.scalar(select(t.Project.id).where(t.Project.name == project)) or 0
        verifier = PairVerifier(threads=1)
        cache = SemanticCache(
            InMemoryVectorStore(), embedder, store=admin.store, pair_verifier=verifier
        )
        stage = GatewayCache(cache, store=admin.store, revision_ttl_s=0.0)
        gateway = GatewayOptions(ledger_interval_s=0.02, route_cache_ttl_s=0.01)
        live = gateway_server(settings, stages=Stages(cache=stage), options=gateway)
        yield World(live.url, keys, ids, cache)
        cache.close()


def test_each_project_gets_its_own_bound_and_feedback_counts_for_it_only(
    world: World, wait_until: Any
) -> None:
    for project in (LOOSE, STRICT, PLAIN):
        assert world.ask(project, CACHED).headers["x-genai-cache"] == "miss"
        assert wait_until(lambda p=project: world.cache.stats(world.ids[p]).entries == 1)
    hit = world.ask(LOOSE, ASKED)
    assert hit.headers["x-genai-cache"] == "hit"
    assert world.ask(STRICT, ASKED).headers["x-genai-cache"] == "miss"  # the bound holds
    assert world.ask(PLAIN, ASKED).headers["x-genai-cache"] == "hit"  # no verifier asked
    loose = world.cache.bound_stats(world.ids[LOOSE])
    assert loose is not None and loose.hits == 1 and loose.reported_wrong == 0
    headers = {"authorization": f"Bearer {world.keys[LOOSE]}"}
    answer = httpx.post(
        world.url + "/v1/feedback",
        json={"response_id": hit.json()["id"], "rating": "down"},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    loose = world.cache.bound_stats(world.ids[LOOSE])
    assert loose is not None and loose.reported_wrong == 1
    for other in (STRICT, PLAIN):
        stats = world.cache.bound_stats(world.ids[other])
        assert stats is not None and stats.hits == 0 and stats.reported_wrong == 0
