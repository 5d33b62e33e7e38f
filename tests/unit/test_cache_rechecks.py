"""The re-check queue of the gateway's cache stage (``apps/_cache_recheck.py``): bounded
(a re-check that finds it full is dropped and counted), sampled by an injected RNG, never
for exact hits, unverified hits or a DLP session's entries, and a failed re-check labels
nothing. The model is a tiny ASGI app the test holds and releases: events, no sleeps.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from typing import Any

from apps._cache_recheck import AnswerSimilarity, Rechecks
from cache import CacheHit, ErrorBound, ErrorCurve, SemanticCache
from genai.gateway import GatewayRequest
from genai.tenancy import Principal
from genai.testing import FakeEmbedder
from genai.vectors import InMemoryVectorStore

CURVE = ErrorCurve(edges=(0.0, 0.5), counts=(100, 100), wrong=(30, 2))
ANSWER = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "yes"}}]}


class FixedScorer:
    def same(self, query: str, candidates: Sequence[str]) -> list[float]:
        return [0.9 for _ in candidates]


class HeldModel:
    """An ASGI app that answers only once released; counts what it was asked."""

    def __init__(self, status: int = 200) -> None:
        self.release = asyncio.Event()
        self.asked: list[dict[str, Any]] = []
        self.status = status

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.asked.append({"path": scope["path"], "body": json.loads(body)})
        await self.release.wait()
        payload = json.dumps(ANSWER).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _cache() -> SemanticCache:
    return SemanticCache(
        InMemoryVectorStore(),
        FakeEmbedder(32, model_name="words", words=True),
        pair_verifier=FixedScorer(),
        error_bound=ErrorBound(CURVE),
    )


def _request(n: int) -> GatewayRequest:
    return GatewayRequest(
        request_id=f"r{n}",
        endpoint="chat",
        principal=Principal(id=1, name="alice"),
        project_id=7,
        project="shop",
        project_options={},
        body={"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        deployment="chat",
        credential="key",
    )


HIT = CacheHit(ANSWER, "e1", "semantic", 0.9, verifier_score=0.9, estimated_error=0.01)


def test_a_full_queue_drops_and_counts() -> None:
    async def scenario() -> None:
        model, ended = HeldModel(), asyncio.Queue[str]()
        rechecks = Rechecks(
            _cache(), max_queued=1, compare=lambda a, b: a == b, on_done=ended.put_nowait
        )
        rechecks.bind(model)
        assert rechecks.offer(_request(1), HIT, rate=1.0, session=None, deployment="chat")
        while not model.asked:  # the worker took the first: the queue is empty again
            await asyncio.sleep(0)
        assert rechecks.offer(_request(2), HIT, rate=1.0, session=None, deployment="chat")
        assert not rechecks.offer(_request(3), HIT, rate=1.0, session=None, deployment="chat")
        assert rechecks.counts["dropped"] == 1 and rechecks.counts["sampled"] == 3
        model.release.set()
        assert [await ended.get(), await ended.get()] == ["agreed", "agreed"]
        await rechecks.drain()
        assert len(model.asked) == 2
        sent = model.asked[0]
        assert sent["path"] == "/v1/chat/completions" and sent["body"]["stream"] is False
        rechecks.close()

    asyncio.run(scenario())


def test_only_sampled_verified_hits_of_the_whole_partition_are_rechecked() -> None:
    rechecks = Rechecks(_cache(), rng=random.Random(3))
    offer = rechecks.offer
    exact = CacheHit(ANSWER, "e1", "exact", 1.0)
    unverified = CacheHit(ANSWER, "e1", "semantic", 0.9)
    assert not offer(_request(1), exact, rate=1.0, session=None, deployment="chat")
    assert not offer(_request(1), unverified, rate=1.0, session=None, deployment="chat")
    assert not offer(_request(1), HIT, rate=1.0, session="s1", deployment="chat")  # DLP session
    assert not offer(_request(1), HIT, rate=0.0, session=None, deployment="chat")
    assert rechecks.counts["sampled"] == 0
    # sampled, but no gateway app to ask through: counted, not queued
    assert not offer(_request(1), HIT, rate=1.0, session=None, deployment="chat")
    assert (rechecks.counts["sampled"], rechecks.counts["unbound"]) == (1, 1)


def test_a_failed_recheck_labels_nothing() -> None:
    async def scenario() -> None:
        model, ended = HeldModel(status=429), asyncio.Queue[str]()
        cache = _cache()
        rechecks = Rechecks(cache, on_done=ended.put_nowait)
        rechecks.bind(model)
        model.release.set()
        assert rechecks.offer(_request(1), HIT, rate=1.0, session=None, deployment="chat")
        assert await ended.get() == "failed"
        assert rechecks.counts["failed"] == 1 and rechecks.counts["labelled"] == 0
        stats = cache.bound_stats(7)
        assert stats is not None and stats.rechecked == 0
        rechecks.close()

    asyncio.run(scenario())


def test_answer_similarity() -> None:
    same = AnswerSimilarity(FakeEmbedder(32, model_name="words", words=True))
    assert same("Open it in Settings.", "Open it in Settings. ")
    assert not same("Open it in Settings.", "Accounts cannot be opened online at all.")
