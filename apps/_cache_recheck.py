"""Sampled re-checks of the semantic cache's verified hits: the model's fresh answer labels
a hit right or wrong for the project's error bound (``cache.recheck_rate``).

A project that sets ``cache.recheck_rate`` (0 to 1, default 0) has that share of its
semantic hits the pair verifier judged asked of the model again, after the cached answer
went out: the request as the cache looked it up goes back through the gateway's own app, in
process, with the caller's key and ``x-genai-cache-control: no-store`` (no lookup, no
store). So a re-check is a real model call like any other: the same targets, fallbacks and
retries as a miss, DLP, the project's quotas and rate limits, and its own usage-ledger row.
The fresh answer is compared with the cached one (:class:`AnswerSimilarity`: the cosine of
their embeddings, by default at least 0.8), and the outcome goes to
:meth:`cache.SemanticCache.recheck`: a disagreement is a labelled error of the hit's
verifier-score block, as a low ``/v1/feedback`` score is.

Only hits whose entry belongs to the whole partition are re-checked: an entry of one DLP
session holds pseudonyms that mean other values in another request. The work stays
bounded: sampled re-checks wait in a queue of ``max_queued`` (one worker per process runs
them in turn); one that finds the queue full is dropped, counted (:attr:`Rechecks.counts`)
and logged. A re-check that fails (the model refused, the project is over its quota) is
counted and labels nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cache import CacheHit, SemanticCache
from genai.gateway import GatewayRequest

__all__ = ["AnswerSimilarity", "Rechecks"]

log = logging.getLogger("genai.cache")

_GATEWAY = "http://gateway.internal"  # the in-process base URL (never resolved)
_PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
#: What :attr:`Rechecks.counts` counts.
EVENTS = ("sampled", "dropped", "unbound", "agreed", "disagreed", "labelled", "failed")


class AnswerSimilarity:
    """Whether two answers say the same: the cosine of their embeddings is at least
    ``threshold`` (identical texts always agree)."""

    def __init__(self, embedder: Any, threshold: float = 0.8) -> None:
        self.embedder = embedder
        self.threshold = threshold

    def __call__(self, cached: str, fresh: str) -> bool:
        if cached.strip() == fresh.strip():
            return True
        import numpy as np

        vectors = np.asarray(self.embedder.embed([cached, fresh]), dtype=np.float32)
        norms = float(np.linalg.norm(vectors[0]) * np.linalg.norm(vectors[1]))
        return bool(norms) and float(vectors[0] @ vectors[1]) / norms >= self.threshold


@dataclass(frozen=True)
class _Job:
    project_id: int
    request_id: str
    deployment: str
    score: float
    endpoint: str
    body: dict[str, Any]
    credential: str
    cached: str  # the cached answer's text


class Rechecks:
    """The re-checks of one gateway process (see the module's docstring). ``rng`` samples
    the hits (inject one for a deterministic test); ``compare(cached, fresh)`` says whether
    two answers agree (by default :class:`AnswerSimilarity` over the cache's embedder).
    :meth:`bind` gives it the gateway's ASGI app; unbound, sampled hits are counted as
    ``unbound`` and not re-checked. ``on_done(event)`` hears how each queued re-check
    ended (``agreed``, ``disagreed`` or ``failed``), in the event loop."""

    def __init__(
        self,
        cache: SemanticCache,
        *,
        rng: random.Random | None = None,
        max_queued: int = 16,
        compare: Callable[[str, str], bool] | None = None,
        on_done: Callable[[str], None] | None = None,
    ) -> None:
        self.cache = cache
        self.max_queued = max_queued
        self.counts = dict.fromkeys(EVENTS, 0)
        self._rng = rng or random.Random()
        self._compare = compare or AnswerSimilarity(cache.embedder)
        self._app: Any = None
        self._on_done = on_done
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None

    def bind(self, app: Any) -> None:
        self._app = app

    def offer(
        self,
        request: GatewayRequest,
        hit: CacheHit,
        *,
        rate: float,
        session: str | None,
        deployment: str,
    ) -> bool:
        """Sample a hit just served for a re-check (on the event loop; nothing waits for it).
        Whether it was queued."""
        score = hit.verifier_score
        if rate <= 0 or hit.tier != "semantic" or score is None or session is not None:
            return False
        if self._rng.random() >= rate:
            return False
        self.counts["sampled"] += 1
        if self._app is None:
            self.counts["unbound"] += 1
            return False
        queue = self._started()
        if queue.full():
            self.counts["dropped"] += 1
            if self.counts["dropped"] == 1 or self.counts["dropped"] % 100 == 0:
                log.warning(
                    "cache re-checks fall behind: %d dropped so far (%d queued at most)",
                    self.counts["dropped"],
                    self.max_queued,
                )
            return False
        import orjson

        body = orjson.loads(orjson.dumps(request.body))
        body["stream"] = False
        body.pop("stream_options", None)
        queue.put_nowait(
            _Job(
                request.project_id,
                request.request_id,
                deployment,
                score,
                request.endpoint,
                body,
                request.credential,
                _text(hit.answer),
            )
        )
        return True

    async def drain(self) -> None:
        """Wait until the queued re-checks are done."""
        if self._queue is not None:
            await self._queue.join()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

    def _started(self) -> asyncio.Queue[_Job]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self.max_queued)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work(self._queue))
        return self._queue

    async def _work(self, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            event = "failed"
            try:
                event = await self._check(job)
            except Exception as error:  # one re-check's failure must not stop the others
                log.warning(
                    "cache re-check of request %s failed: %s",
                    job.request_id,
                    getattr(error, "message", None) or type(error).__name__,
                )
            finally:
                self.counts[event] += 1
                queue.task_done()
                if self._on_done is not None:
                    self._on_done(event)

    async def _check(self, job: _Job) -> str:
        """Ask, compare, record: how it ended."""
        fresh = await self._ask(job)
        if fresh is None:
            return "failed"
        same = await asyncio.to_thread(self._compare, job.cached, fresh)
        labelled = await asyncio.to_thread(
            self.cache.recheck,
            job.project_id,
            job.request_id,
            job.deployment,
            job.score,
            same=same,
        )
        self.counts["labelled"] += int(labelled)
        return "agreed" if same else "disagreed"

    async def _ask(self, job: _Job) -> str | None:
        """The model's fresh answer, through the gateway (None: it did not answer)."""
        import httpx

        transport = httpx.ASGITransport(app=self._app)
        headers = {
            "authorization": f"Bearer {job.credential}",
            "x-genai-cache-control": "no-store",
            "x-genai-cache-recheck": job.request_id,
        }
        async with httpx.AsyncClient(transport=transport, base_url=_GATEWAY) as http:
            response = await http.post(
                _PATHS[job.endpoint], json=job.body, headers=headers, timeout=None
            )
        if response.status_code != 200:
            log.info(
                "cache re-check of request %s: the gateway answered %d",
                job.request_id,
                response.status_code,
            )
            return None
        return _text(response.json())


def _text(answer: Any) -> str:
    """The text of an OpenAI response body (or of a plain string answer)."""
    if isinstance(answer, str):
        return answer
    parts = []
    for choice in answer.get("choices") or [] if isinstance(answer, dict) else []:
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
    return "".join(parts)
