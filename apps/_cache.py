"""The gateway's cache stage: ``cache.SemanticCache`` behind ``/v1/chat/completions`` and
``/v1/completions``.

The cache is off unless the caller's project turned it on for the deployment asked (the
project's ``cache`` option, see ``cache/_options.py``; ``genai cache enable PROJECT
[--deployment NAME]``): elsewhere the stage neither looks up nor stores anything.

What is cached, and in which partition:

- the partition is the caller's project, the endpoint (a completion never answers a chat
  request, nor the reverse), the deployment (with its newest revision: a new revision may
  route to another model), the adapter, the prompt version a prompt stage set, the
  knowledge-base version a RAG stage left in ``request.notes.kb_version``, and every body
  parameter that can change the answer or its shape (:func:`cache.output_params`:
  sampling, ``response_format``, ``tools``, ``tool_choice``...);
- the request as the earlier stages left it: after DLP, so pseudonyms, never raw PII. When
  DLP replaced anything, the entry belongs to the caller's session only (``x-genai-session``;
  a pseudonym means another value in another session, so the stored answer could only be
  restored wrongly elsewhere); without a session such requests are not cached. A request
  DLP let through unchecked (its policy failed open) is never cached;
- the answer before the response stages run (it is stored pseudonymised, and a hit is
  restored by the DLP response stage of the session that asks).

Not cached: requests with an explicit ``temperature`` above the project's
``cache.max_temperature`` (default 0: a caller who asks for sampling wants varied answers;
no temperature at all is cached, as the deployment's default answer), answers that are tool
calls, cut by a content filter or empty. A caller may send ``x-genai-cache-control:
no-cache`` (skip the lookup, store the fresh answer) or ``no-store`` (neither).

Project options (``{"cache": {...}}``, per project and per deployment): ``enabled``,
``threshold``, ``ttl_s``, ``max_temperature``, ``verifier``, ``max_error`` and
``recheck_rate`` (sampled re-checks of verified hits against the model's fresh answer, off
the hot path: ``apps/_cache_recheck.py``); an option that does not parse turns the
cache off for the project (and is logged). A lookup never fails a request: a cache error is
logged (no text) and counted as a miss; stores run in the background after the answer is
sent. With the gateway's fair CPU pool, the embedding of a question (the CPU work of a
lookup) is the project's job there, and the SQL and vector-store work runs in a thread,
never holding a pool worker while it waits on I/O; an exact hit embeds nothing. A project
whose queue in the pool is full is refused (429) at its lookup rather than queued; a store
that finds it full is skipped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from apps._cache_embed import _DEFERRED, _EmbedLater, _MemoEmbedder
from apps._cache_recheck import Rechecks
from cache import ChatRequest, Partition, RequestKey, SemanticCache, output_params
from cache._options import OPTION_KEY, CacheOptions, CacheSettings
from genai.errors import ValidationError
from genai.gateway import CachedAnswer, CacheStage, GatewayRequest, PerRequest
from genai.models import Embedder
from genai.pool import FairPool, PoolOverloaded, QueueFull
from genai.settings import Settings
from genai.store import Store
from genai.store import schema as t

__all__ = ["GatewayCache", "_MemoEmbedder", "cache_stage"]  # the memo: for tests

log = logging.getLogger("genai.cache")

_PSEUDONYM = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_CACHEABLE_FINISH = {"stop", "length", None}
#: Deployments whose newest revision is remembered (when the gateway does not say it).
_MAX_REVISIONS = 10_000


@dataclass(frozen=True)
class _Plan:
    """How one request is cached: its partition, request and keys."""

    partition: Partition
    request: ChatRequest
    key: RequestKey
    session: str | None
    threshold: float | None
    ttl_s: float | None
    lookup: bool
    verifier: bool = False
    max_error: float | None = None
    recheck_rate: float = 0.0


class GatewayCache:
    """The :class:`~genai.gateway.CacheStage` over a :class:`~cache.SemanticCache`."""

    name = "cache"

    def __init__(
        self,
        cache: SemanticCache,
        *,
        store: Store | None = None,
        revision_ttl_s: float = 5.0,
        pool: FairPool | None = None,
        max_pending_stores: int = 256,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        rechecks: Rechecks | None = None,
    ) -> None:
        self.cache = cache
        #: sampled re-checks of verified hits (``rng`` samples them)
        self.rechecks = rechecks or Rechecks(cache, rng=rng)
        self._clock = clock  # the revision memo expires on it
        self._cpu = pool
        self._store = store
        self._revision_ttl = revision_ttl_s
        self._revisions: dict[tuple[int, str], tuple[float, str]] = {}  # oldest first
        self.max_pending_stores = max_pending_stores  # background stores in flight, at most
        self.stores_skipped = 0
        self._pending: set[asyncio.Future[Any]] = set()
        self._plans: PerRequest[_Plan | None] = PerRequest()  # lookup → store

    # ------------------------------------------------------------ the stage

    async def lookup(self, request: GatewayRequest) -> CachedAnswer | None:
        try:
            plan = await self._plan(request)
            self._plans.set(request, plan)
            if plan is None or not plan.lookup:
                return None
            hit = await self._run(
                request,
                functools.partial(
                    self.cache.lookup,
                    plan.partition,
                    plan.request,
                    session=plan.session,
                    request_id=request.request_id,
                    threshold=plan.threshold,
                    key=plan.key,
                    max_error=plan.max_error,
                    use_verifier=plan.verifier,
                ),
            )
        except (QueueFull, PoolOverloaded):
            raise  # back-pressure: the project is over its share of the CPU, or all are
        except Exception as error:  # the cache must never fail a request
            log.warning(
                "cache lookup failed for request %s (%s): answered as a miss",
                request.request_id,
                _describe(error),
            )
            return None
        if hit is None or not isinstance(hit.answer, dict):
            return None
        if plan.recheck_rate:
            try:
                self.rechecks.offer(
                    request,
                    hit,
                    rate=plan.recheck_rate,
                    session=plan.session,
                    deployment=plan.partition.deployment,
                )
            except Exception as error:  # a re-check must never fail the answer
                log.warning("cache re-check not queued: %s", _describe(error))
        response = _copy(hit.answer)  # the response stages may change it in place
        response["id"] = (
            f"{'chatcmpl' if request.endpoint == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
        )
        response["created"] = int(time.time())
        return CachedAnswer(response)

    async def store(self, request: GatewayRequest, response: dict[str, Any]) -> None:
        plan = self._plans.get(request)
        if plan is None or not cacheable_answer(request, response):
            return
        kept = _copy(response)
        usage = response.get("usage") or {}
        tokens = int(usage.get("total_tokens") or 0) if isinstance(usage, dict) else 0
        # what the answer cost (the gateway's outcome of this request): a hit saves it
        cost = request.notes.cost_usd
        if len(self._pending) >= self.max_pending_stores:
            self._skipped()
            return
        task = asyncio.ensure_future(
            self._run(
                request,
                functools.partial(
                    self.cache.store,
                    plan.partition,
                    plan.request,
                    kept,
                    session=plan.session,
                    request_id=request.request_id,
                    tokens=tokens,
                    cost_usd=cost,
                    ttl_s=plan.ttl_s,
                    key=plan.key,
                ),
            )
        )
        self._pending.add(task)
        task.add_done_callback(self._stored)

    async def feedback(self, project_id: int, request_id: str, score: float) -> int:
        """``POST /v1/feedback`` on an answer: a score under 0.5 marks it wrong, which
        evicts the entry that gave it (or that it created). How many were evicted."""
        if score >= 0.5:
            return 0
        await self.drain()
        return await asyncio.to_thread(self.cache.feedback, project_id, request_id)

    async def drain(self) -> None:
        """Wait until the stores under way are written."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def bind(self, app: Any) -> None:
        """The gateway's ASGI app, which sampled re-checks ask the model through."""
        self.rechecks.bind(app)

    def close(self) -> None:
        self.rechecks.close()
        self.cache.close()

    # ------------------------------------------------------------ internals

    async def _run(self, request: GatewayRequest, work: Callable[[], Any]) -> Any:
        """``work()`` (a lookup or a store) in a thread; the question's embedding, when it
        needs one, first, as the project's job in the fair CPU pool (if any)."""
        if self._cpu is None:
            return await asyncio.to_thread(work)
        token = _DEFERRED.set(True)
        try:
            return await asyncio.to_thread(work)
        except _EmbedLater as later:  # raised before the work wrote or counted anything
            await self._cpu.run(request.project, self.cache.embed, later.text)  # remembered
        finally:
            _DEFERRED.reset(token)
        return await asyncio.to_thread(work)

    def _skipped(self) -> None:
        """Stores slower than the misses must not pile up (each holds a copy of its answer):
        beyond ``max_pending_stores`` in flight a store is skipped, counted and logged (the
        first, then every hundredth); the answer is simply not cached."""
        self.stores_skipped += 1
        if self.stores_skipped == 1 or self.stores_skipped % 100 == 0:
            log.warning(
                "cache stores fall behind the traffic: %d skipped so far (%d in flight at most)",
                self.stores_skipped,
                self.max_pending_stores,
            )

    def _stored(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if isinstance(error, QueueFull | PoolOverloaded):
            log.debug("cache store skipped: %s", _describe(error))
        else:
            log.warning("cache store failed: %s", _describe(error))

    async def _plan(self, request: GatewayRequest) -> _Plan | None:
        options = _settings(request)
        if options is None or request.endpoint not in ("chat", "completions"):
            return None
        if request.notes.uncacheable:
            return None
        control = request.headers.get("x-genai-cache-control", "").lower()
        if "no-store" in control:
            return None
        body = request.body
        temperature = body.get("temperature")
        if isinstance(temperature, int | float) and temperature > options.max_temperature:
            return None
        cached: ChatRequest
        if request.endpoint == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return None
            cached = messages
        else:
            prompt = body.get("prompt")
            if not isinstance(prompt, str):
                return None
            cached = prompt
        allowed, session = _session(request, cached)
        if not allowed:
            return None
        revision = await self._revision(request)
        partition = Partition(
            project_id=request.project_id,
            deployment=request.deployment,
            adapter=request.adapter or "",
            prompt_version=request.prompt_version or "",
            params=output_params(body),
            kb_version=request.notes.kb_version,
            revision=revision,
            endpoint=request.endpoint,
        )
        key = self.cache.key(partition, cached, session=session)
        return _Plan(
            partition,
            cached,
            key,
            session,
            options.threshold,
            options.ttl_s,
            lookup="no-cache" not in control,
            verifier=options.verifier,
            max_error=options.max_error,
            recheck_rate=options.recheck_rate,
        )

    async def _revision(self, request: GatewayRequest) -> str:
        """The deployment's newest revision (the gateway leaves it in ``extra``; otherwise
        read from the registry, remembered for a few seconds)."""
        given = request.notes.deployment_revision
        if given is not None:
            return str(given)
        if self._store is None:
            return ""
        key = (request.project_id, request.deployment)
        known = self._revisions.get(key)
        now = self._clock()
        if known is not None and known[0] > now:
            return known[1]
        revision = await asyncio.to_thread(self._read_revision, *key)
        self._revisions.pop(key, None)
        self._revisions[key] = (now + self._revision_ttl, revision)
        while len(self._revisions) > _MAX_REVISIONS:
            self._revisions.pop(next(iter(self._revisions)))
        return revision

    def _read_revision(self, project_id: int, deployment: str) -> str:
        assert self._store is not None
        with self._store.session() as s:
            found = s.scalar(
                select(func.max(t.Deployment.version)).where(
                    t.Deployment.project_id == project_id, t.Deployment.name == deployment
                )
            )
        return str(found or "")


def cacheable_answer(request: GatewayRequest, response: dict[str, Any]) -> bool:
    """Whether an answer may be kept: a whole answer in text, not an error, a tool call or
    a filtered one."""
    choices = response.get("choices")
    if "error" in response or not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") not in _CACHEABLE_FINISH:
            return False
        if request.endpoint == "chat":
            message = choice.get("message") or {}
            if message.get("tool_calls") or message.get("function_call"):
                return False
            if not isinstance(message.get("content"), str) or not message["content"]:
                return False
        elif not isinstance(choice.get("text"), str) or not choice["text"]:
            return False
    return True


def _settings(request: GatewayRequest) -> CacheSettings | None:
    """How the cache works for the request's deployment; None where the project did not
    turn it on (or its option does not parse: off, and logged)."""
    raw = request.project_options.get(OPTION_KEY)
    if raw is None:
        return None
    try:
        return CacheOptions.parse(raw, project=request.project).settings(request.deployment)
    except ValidationError as error:
        log.warning("cache off for request %s: %s", request.request_id, error.message)
        return None


def _session(request: GatewayRequest, cached: ChatRequest) -> tuple[bool, str | None]:
    """Whether the request may be cached, and the session its entry belongs to (None: the
    whole partition)."""
    dlp = request.notes.dlp
    if dlp is not None and dlp.status == "failed_open":
        return False, None  # sent unchecked: it may hold raw PII
    replaced = bool(dlp is not None and dlp.counts) or _has_pseudonyms(cached)
    if not replaced:
        return True, None
    return bool(request.session_id), request.session_id


def _has_pseudonyms(cached: ChatRequest) -> bool:
    if isinstance(cached, str):
        return bool(_PSEUDONYM.search(cached))
    return any(_PSEUDONYM.search(str(m.get("content") or "")) for m in cached)


def _copy(response: dict[str, Any]) -> dict[str, Any]:
    import orjson

    copied = orjson.loads(orjson.dumps(response))
    assert isinstance(copied, dict)
    return copied


def _describe(error: BaseException | None) -> str:
    message = getattr(error, "message", None)
    return str(message) if message else type(error).__name__


def cache_stage(
    settings: Settings,
    store: Store,
    *,
    after_warm: Callable[[], None] | None = None,
    pool: FairPool | None = None,
    vectors: str = "chroma",
    embedder: Embedder | None = None,
    **options: Any,
) -> CacheStage:
    """The gateway's cache stage: the bundled (or configured) embedder, loading in the
    background (then ``after_warm`` runs in that thread); the vector store the settings
    name; entries in ``store``; lookups and stores in ``pool`` (the gateway's fair CPU
    pool). ``embedder`` is the process's, shared with the other services that embed (else
    one is built from the settings). ``options`` go to :class:`~cache.SemanticCache`
    (threshold, ttl_s, max_entries, ...). The trained pair verifier shipped in ``cache/``
    judges the semantic hits of projects that turn it on (``verifier``, ``max_error``)
    unless ``pair_verifier=None`` is given (or it is not installed: then a project's
    ``cache.max_error`` turns its semantic hits into misses, logged).

    Embedded Chroma belongs to one process: a gateway with several workers needs
    ``GENAI_CHROMA_URL`` (a ``chroma run`` server) for the cache's vectors. ``vectors=
    "memory"`` keeps them in this process instead (exact NumPy search, memory bounded by
    ``max_entries``; rebuilt from the entries' rows, which keep their embeddings, after a
    restart): Chroma never reuses the room of a deleted vector, so a cache that evicts
    grows its Chroma index for as long as the process runs."""
    from genai.models import create_embedder
    from genai.vectors import create_vector_store

    model = embedder if embedder is not None else create_embedder(settings)
    if "pair_verifier" not in options:
        options["pair_verifier"] = _pair_verifier()
    cache = SemanticCache(
        create_vector_store(settings, backend=vectors), _MemoEmbedder(model), store=store, **options
    )
    threading.Thread(
        target=_warm, args=(model, after_warm), name="genai-cache-warm", daemon=True
    ).start()
    return GatewayCache(cache, store=store, pool=pool)


def _pair_verifier() -> Any:
    """The shipped pair verifier, or None (logged) where its artefact is missing."""
    from cache import PairVerifier, artefact_installed

    if not artefact_installed():
        log.warning("the cache's pair verifier is not installed: semantic hits are unverified")
        return None
    return PairVerifier()


def _warm(model: Any, then: Callable[[], None] | None) -> None:
    """Load the embedding model before the first request needs it (the pair verifier loads
    on its first use: projects turn it on)."""
    try:
        model.warm()
    except Exception as error:  # the first lookup will report it (as a miss)
        log.warning("the cache's embedding model did not load: %s", _describe(error))
    if then is not None:
        then()
