"""The gateway process: wires the stages of the capability packages into the gateway.

``genai gateway`` runs :func:`create_app` under uvicorn (one call per worker process);
options come from ``GENAI_*`` variables so every worker builds the same gateway.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Mapping
from typing import Literal, cast

from fastapi import FastAPI

from apps._memory import start_malloc_trim
from genai.errors import ConfigError, MissingDependencyError
from genai.gateway import (
    Gateway,
    GatewayOptions,
    Stages,
    cpu_pool,
    create_gateway,
    create_gateway_app,
)
from genai.models import Embedder
from genai.pool import FairPool
from genai.settings import Settings
from genai.store import Store

__all__ = ["bind_agents", "create_app", "mount_platform", "options_from_env"]


def options_from_env() -> GatewayOptions:
    """The gateway's options from ``GENAI_GATEWAY_*`` (the upstream-key settings, the
    project secrets' cipher and the operator's variable allowlist, are the settings':
    :func:`genai.gateway.create_gateway` fills them in)."""
    env = os.environ
    d = GatewayOptions()  # the defaults of what is not set
    return GatewayOptions(
        max_body_bytes=_whole(env, "GENAI_GATEWAY_MAX_BODY_BYTES", d.max_body_bytes),
        key_cache_ttl_s=_seconds(env, "GENAI_GATEWAY_CACHE_TTL_S", d.key_cache_ttl_s),
        route_cache_ttl_s=_seconds(env, "GENAI_GATEWAY_ROUTE_TTL_S", d.route_cache_ttl_s),
        prewarm=env.get("GENAI_GATEWAY_PREWARM", "1") not in ("0", "false", "no"),
        ledger_journal=_journal_mode(env),
        max_request_tokens=_whole(env, "GENAI_GATEWAY_MAX_REQUEST_TOKENS", d.max_request_tokens),
        max_embedding_inputs=_whole(
            env, "GENAI_GATEWAY_MAX_EMBEDDING_INPUTS", d.max_embedding_inputs
        ),
        max_embedding_input_tokens=_whole(
            env, "GENAI_GATEWAY_MAX_EMBEDDING_INPUT_TOKENS", d.max_embedding_input_tokens
        ),
        max_embedding_tokens=_whole(
            env, "GENAI_GATEWAY_MAX_EMBEDDING_TOKENS", d.max_embedding_tokens
        ),
        embedding_batch=_whole(env, "GENAI_GATEWAY_EMBEDDING_BATCH", d.embedding_batch),
        embedding_batch_tokens=_whole(
            env, "GENAI_GATEWAY_EMBEDDING_BATCH_TOKENS", d.embedding_batch_tokens
        ),
        max_in_flight_per_project=_whole_or_none(
            env, "GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT", d.max_in_flight_per_project
        ),
        cpu_workers=_whole(env, "GENAI_GATEWAY_CPU_WORKERS", d.cpu_workers),
        cpu_queue_per_project=_whole(
            env, "GENAI_GATEWAY_CPU_QUEUE_PER_PROJECT", d.cpu_queue_per_project
        ),
        cpu_queue=_whole(env, "GENAI_GATEWAY_CPU_QUEUE", d.cpu_queue),
        max_recent=_whole(env, "GENAI_GATEWAY_MAX_RECENT", d.max_recent),
    )


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    """A positive whole number from the variable ``name`` (``default`` when unset)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ConfigError(f"{name} is {raw!r}: give a whole number of at least 1")
    return int(raw)


def _whole_or_none(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    """:func:`_whole`, or None (no limit) for ``none``."""
    raw = env.get(name, "").strip().lower()
    if raw in ("none", "unlimited", "off") or (not raw and default is None):
        return None
    return _whole(env, name, default or 1)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """Seconds (0 or more) from the variable ``name`` (``default`` when unset)."""
    raw = env.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{name} is {raw!r}: give a number of seconds (0 turns it off)")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, meanings: dict[str, str]) -> str:
    """One of ``meanings``' words from the variable ``name`` (``default`` when unset)."""
    raw = env.get(name, "").strip().lower() or default
    if raw not in meanings:
        use = ", ".join(f"{word} ({meaning})" for word, meaning in meanings.items())
        raise ConfigError(f"{name} is {raw!r}: use {use}")
    return raw


def _cache_vectors() -> str:
    """Where the semantic cache keeps its vectors: ``chroma`` (the settings' vector store,
    the default) or ``memory`` (this process, bounded by the cache's entries), from
    ``GENAI_GATEWAY_CACHE_VECTORS``."""
    meanings = {
        "chroma": "the vector store the settings name",
        "memory": "this process, exact search, rebuilt from the database",
    }
    return _choice(os.environ, "GENAI_GATEWAY_CACHE_VECTORS", "chroma", meanings)


def _cache_bounds() -> dict[str, int]:
    """The semantic cache's entry bound (per project, least recently used out) from
    ``GENAI_GATEWAY_CACHE_MAX_ENTRIES``; the cache's own default when unset."""
    from cache._cache import DEFAULT_MAX_ENTRIES

    return {
        "max_entries": _whole(os.environ, "GENAI_GATEWAY_CACHE_MAX_ENTRIES", DEFAULT_MAX_ENTRIES)
    }


def _journal_mode(env: Mapping[str, str]) -> Literal["fsync", "write", "off"]:
    meanings = {
        "fsync": "a usage row is on disk before its response completes",
        "write": "survives the process, not the machine",
        "off": "memory only",
    }
    mode = _choice(env, "GENAI_GATEWAY_LEDGER_JOURNAL", "fsync", meanings)
    return cast(Literal["fsync", "write", "off"], mode)


def stages_for(
    settings: Settings,
    store: Store,
    *,
    after_warm: Callable[[], None] | None = None,
    pool: FairPool | None = None,
    embedder: Embedder | None = None,
) -> Stages:
    """The stages this platform runs: prompts, DLP, the cache, and knowledge bots and agents
    as targets.

    The prompt stage comes first, so DLP and the cache key see the rendered messages and
    ``request.prompt_version``; DLP comes last among the request stages and first among the
    response stages (which run in reverse), so it restores just before the client. A project
    without a DLP policy (and no GENAI_DLP_POLICY default) skips DLP; the cache looks up the
    request as DLP left it (tokens, never raw values).

    Start-up loads the cache's embedding model and then the DLP detectors the projects'
    policies need, in one background thread; ``after_warm`` runs after both, and again
    whenever a request makes DLP load another detector.

    ``pool`` is the process's fair CPU pool: DLP detection, the cache's question
    embeddings and knowledge-bot retrieval run there as their project's jobs (and the
    gateway's own embeddings, and extractive answers). ``embedder`` is the process's one
    embedding model, which the cache and the knowledge bots share (and the gateway's
    ``/v1/embeddings``): one copy in memory, not three."""
    from apps._agent_target import AgentTarget
    from apps._cache import cache_stage
    from apps._dlp import dlp_stages
    from apps._knowledge import KnowledgeBot
    from apps._prompts import prompt_stage

    dlp_request, dlp_response = dlp_stages(settings, store, after_load=after_warm, pool=pool)
    prompts = prompt_stage(settings, store)

    def warmed() -> None:  # in the cache's warm-up thread, once its model is loaded
        dlp_request.warm(store)
        if after_warm is not None:
            after_warm()

    return Stages(
        request=[prompts, dlp_request],
        response=[dlp_response],
        cache=cache_stage(
            settings,
            store,
            after_warm=warmed,
            pool=pool,
            vectors=_cache_vectors(),
            embedder=embedder,
            **_cache_bounds(),
        ),
        targets={
            KnowledgeBot.name: KnowledgeBot(
                settings, store, prompts=prompts, pool=pool, embedder=embedder
            ),
            AgentTarget.name: AgentTarget(settings, store),
        },
        pool=pool,
        embedder=embedder,
    )


def _embedder(settings: Settings) -> Embedder | None:
    try:
        from genai.models import create_embedder
    except ImportError:
        return None
    try:
        return create_embedder(settings)
    except Exception as error:  # no embedding model here: the gateway serves without /v1/embeddings
        logging.getLogger("genai.gateway").warning("local embeddings are off: %s", error)
        return None


def freeze_heap() -> None:
    """Leave what start-up loaded out of the cycle collector's passes. With the embedding
    model loaded a process holds ~500k objects, and a full collection over them holds the
    GIL, hence every request, for ~0.3 s (2 cores here); frozen, a pass sees only what
    requests allocated since. Collected first, so no start-up garbage is kept forever."""
    gc.collect()
    gc.freeze()


def limit_torch_threads(env: Mapping[str, str]) -> None:
    """Torch's threads per operation in this process: ``GENAI_GATEWAY_TORCH_THREADS``, else
    half the CPUs (at least one). Torch's default, a thread per CPU, oversubscribes the
    machine the event loop and the CPU pool's workers share: on 2 busy CPUs one short text
    took ~160 ms to embed with two threads and ~18 ms with one (all-MiniLM-L6-v2)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return
    import torch

    default = max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(_whole(env, "GENAI_GATEWAY_TORCH_THREADS", default))


def create_app() -> FastAPI:
    settings = Settings()
    limit_torch_threads(os.environ)
    start_malloc_trim(_seconds(os.environ, "GENAI_GATEWAY_MALLOC_TRIM_S", 30.0))
    store = Store(settings.resolved_database_url, pool_size=10)
    options = options_from_env()
    pool = cpu_pool(options)  # one per process, shared by the stages and /v1/embeddings
    embedder = _embedder(settings)  # one model for the cache, the bots and /v1/embeddings
    stages = stages_for(settings, store, after_warm=freeze_heap, pool=pool, embedder=embedder)
    gateway = create_gateway(settings, stages=stages, options=options, store=store)
    app = create_gateway_app(gateway, settings=settings, embedder=embedder, admin=mount_platform)
    bind_agents(stages, app)
    return app


def mount_platform(app: FastAPI, gateway: Gateway) -> None:
    """The admin API under ``/api`` and the Hub (the web UI) under ``/hub``. Without jinja2
    (the ``hub`` extra) the gateway serves without the Hub, and says so once."""
    from apps.admin import mount_admin
    from apps.hub import mount_hub

    mount_admin(app, gateway)
    try:
        mount_hub(app, gateway)
    except MissingDependencyError as error:
        logging.getLogger("genai.gateway").warning("the Hub is off: %s", error)


def bind_agents(stages: Stages, app: FastAPI) -> None:
    """Hosted agents call the gateway back in process, through its ASGI app (and so do the
    cache's sampled re-checks)."""
    from apps._agent_target import AgentTarget
    from apps._cache import GatewayCache

    target = stages.targets.get(AgentTarget.name)
    if isinstance(target, AgentTarget):
        target.bind(app)
    if isinstance(stages.cache, GatewayCache):
        stages.cache.bind(app)
