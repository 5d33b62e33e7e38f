"""Sampled re-checks of verified semantic hits behind a real gateway (``apps/_cache_recheck.py``)
in front of a fake upstream that counts its calls: a sampled hit is asked of the model again
through the gateway (a real, billed call: its own ledger row), after the cached answer was
sent; a fresh answer that disagrees labels the hit wrong in that project's evidence only, one
that agrees labels nothing; an unsampled hit or a project without ``recheck_rate`` is never
re-checked. The sampler is an injected RNG; completions are events, not sleeps.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import genai
from apps._cache import GatewayCache
from apps._cache_recheck import Rechecks
from cache import ErrorBound, ErrorCurve, ProjectCaches, SemanticCache
from genai.gateway import GatewayOptions, Stages
from genai.store import schema as t
from genai.testing import FakeEmbedder, FakeOpenAIServer, running_server
from genai.vectors import InMemoryVectorStore

pytestmark = pytest.mark.sqlite_only

CURVE = ErrorCurve(edges=(0.0, 0.5, 0.9), counts=(100, 100, 100), wrong=(30, 5, 1))
CHECKED, UNCHECKED = "checked", "unchecked"
CACHED = "how do I open an account"
ORIGINAL = "Go to Settings, then Accounts, then Open."


class FixedScorer:
    def same(self, query: str, candidates: Sequence[str]) -> list[float]:
        return [0.95 for _ in candidates]


class Script(random.Random):
    """A sampler that draws the given numbers, in turn."""

    def __init__(self, draws: Sequence[float]) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


@dataclass
class World:
    url: str
    keys: dict[str, str]
    ids: dict[str, int]
    fake: FakeOpenAIServer
    cache: SemanticCache
    stage: GatewayCache
    admin: genai.Client
    done: list[str]
    finished: threading.Semaphore

    def ask(self, project: str, question: str) -> httpx.Response:
        body = {"model": "chat", "messages": [{"role": "user", "content": question}]}
        headers = {"authorization": f"Bearer {self.keys[project]}"}
        response = httpx.post(
            self.url + "/v1/chat/completions", json=body, headers=headers, timeout=30
        )
        assert response.status_code == 200, response.text
        return response

    def usage_rows(self, project: str) -> int:
        with self.admin.store.session() as s:
            found = s.scalar(
                select(func.count())
                .select_from(t.UsageRecord)
                .where(t.UsageRecord.project_id == self.ids[project])
            )
        return int(found or 0)

    def wait_done(self) -> str:
        assert self.finished.acquire(timeout=30), "the re-check never finished"
        return self.done[-1]


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    wait_until: Any,
) -> Iterator[World]:
    fake = FakeOpenAIServer(max_model_len=4096, reply=ORIGINAL)
    with running_server(fake.app) as url:
        fake.url = url + "/v1"
        admin = platform()
        keys: dict[str, str] = {}
        ids: dict[str, int] = {}
        spec = {"targets": [{"name": "fake", "url": fake.url, "model": "fake-base"}], "retries": 0}
        for project, rate in ((CHECKED, 0.5), (UNCHECKED, 0.0)):
            admin.projects.create(project)
            admin.registry.deployments.create(project, "chat", spec=spec)
            keys[project] = admin.keys.create(project, role="developer").secret
            ProjectCaches(admin).enable(project, max_error=0.5, recheck_rate=rate)
            with admin.store.session() as s:
                ids[project] = s.scalar(select(t.Project.id).where(t.Project.name == project)) or 0
        cache = SemanticCache(
            InMemoryVectorStore(),
            FakeEmbedder(64, model_name="words", words=True),
            store=admin.store,
            threshold=0.5,
            pair_verifier=FixedScorer(),
            error_bound=ErrorBound(CURVE, prior_weight=10),
        )
        done: list[str] = []
        finished = threading.Semaphore(0)

        def heard(event: str) -> None:
            done.append(event)
            finished.release()

        rechecks = Rechecks(
            cache,
            rng=Script([0.4, 0.7, 0.1]),  # at rate 0.5: sampled, not sampled, sampled
            compare=lambda cached, fresh: cached == fresh,
            on_done=heard,
        )
        stage = GatewayCache(cache, store=admin.store, revision_ttl_s=0.0, rechecks=rechecks)
        options = GatewayOptions(ledger_interval_s=0.02, route_cache_ttl_s=0.01)
        live = gateway_server(settings, stages=Stages(cache=stage), options=options)
        stage.bind(live.app)
        world = World(live.url, keys, ids, fake, cache, stage, admin, done, finished)
        for project in (CHECKED, UNCHECKED):
            assert world.ask(project, CACHED).headers["x-genai-cache"] == "miss"
            assert wait_until(lambda p=project: cache.stats(ids[p]).entries == 1)
        yield world
        cache.close()


def test_a_sampled_hit_is_asked_again_and_a_disagreement_labels_it(
    world: World, wait_until: Any
) -> None:
    calls = len(world.fake.requests)
    rows = world.usage_rows(CHECKED)
    world.fake.reply = "Accounts cannot be opened online."  # the model changed its mind
    hit = world.ask(CHECKED, CACHED + " please")
    assert hit.headers["x-genai-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == ORIGINAL  # the cached answer
    assert world.wait_done() == "disagreed"
    assert len(world.fake.requests) == calls + 1  # one real model call, after the answer
    assert world.stage.rechecks.counts["sampled"] == 1
    assert world.stage.rechecks.counts["labelled"] == 1
    stats = world.cache.bound_stats(world.ids[CHECKED])
    assert stats is not None
    assert (stats.hits, stats.rechecked, stats.recheck_wrong) == (1, 1, 1)
    # billed like any call: the hit's row and the re-check's own
    assert wait_until(lambda: world.usage_rows(CHECKED) == rows + 2)
    other = world.cache.bound_stats(world.ids[UNCHECKED])
    assert other is not None and other.rechecked == 0 and other.labelled_wrong == 0

    # the next draw (0.7) is over the rate: not sampled, no model call
    calls = len(world.fake.requests)
    world.fake.reply = ORIGINAL
    assert world.ask(CHECKED, "please how do I open an account").headers["x-genai-cache"] == "hit"
    assert world.stage.rechecks.counts["sampled"] == 1 and len(world.fake.requests) == calls
    # the next (0.1) is: the model agrees this time, which labels nothing wrong
    assert world.ask(CHECKED, "how do I open an account now").headers["x-genai-cache"] == "hit"
    assert world.wait_done() == "agreed"
    assert len(world.fake.requests) == calls + 1
    stats = world.cache.bound_stats(world.ids[CHECKED])
    assert stats is not None and (stats.hits, stats.rechecked, stats.recheck_wrong) == (3, 2, 1)


def test_a_project_without_a_rate_is_never_rechecked(world: World) -> None:
    calls = len(world.fake.requests)
    assert world.ask(UNCHECKED, CACHED + " please").headers["x-genai-cache"] == "hit"
    assert world.ask(UNCHECKED, CACHED).headers["x-genai-cache"] == "hit"  # exact
    assert len(world.fake.requests) == calls
    assert world.stage.rechecks.counts["sampled"] == 0
