"""The gateway process: wires the stages of the capability packages into the gateway.

``genai gateway`` runs :func:`create_app` under uvicorn (one call per worker process);
options come from ``GENAI_*`` variables so every worker builds the same gateway.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable

from fastapi import FastAPI

from genai.gateway import GatewayOptions, Stages, create_gateway, create_gateway_app
from genai.settings import Settings
from genai.store import Store

__all__ = ["create_app", "options_from_env"]


def options_from_env() -> GatewayOptions:
    env = os.environ
    return GatewayOptions(
        max_body_bytes=int(env.get("GENAI_GATEWAY_MAX_BODY_BYTES", 4 << 20)),
        key_cache_ttl_s=float(env.get("GENAI_GATEWAY_CACHE_TTL_S", 10.0)),
        route_cache_ttl_s=float(env.get("GENAI_GATEWAY_ROUTE_TTL_S", 5.0)),
        prewarm=env.get("GENAI_GATEWAY_PREWARM", "1") not in ("0", "false", "no"),
    )


def stages_for(
    settings: Settings, store: Store, *, after_warm: Callable[[], None] | None = None
) -> Stages:
    """The stages this platform runs: prompts, DLP, the cache, and knowledge bots as targets.

    The prompt stage comes first, so DLP and the cache key see the rendered messages and
    ``request.prompt_version``; DLP comes last among the request stages and first among the
    response stages (which run in reverse), so it restores just before the client. A project
    without a DLP policy (and no GENAI_DLP_POLICY default) skips DLP; the cache looks up the
    request as DLP left it (tokens, never raw values).

    Start-up loads the cache's embedding model and then the DLP detectors the projects'
    policies need, in one background thread; ``after_warm`` runs after both, and again
    whenever a request makes DLP load another detector."""
    from apps._cache import cache_stage
    from apps._dlp import dlp_stages
    from apps._knowledge import KnowledgeBot
    from apps._prompts import prompt_stage

    dlp_request, dlp_response = dlp_stages(settings, store, after_load=after_warm)
    prompts = prompt_stage(settings, store)

    def warmed() -> None:  # in the cache's warm-up thread, once its model is loaded
        dlp_request.warm(store)
        if after_warm is not None:
            after_warm()

    return Stages(
        request=[prompts, dlp_request],
        response=[dlp_response],
        cache=cache_stage(settings, store, after_warm=warmed),
        targets={KnowledgeBot.name: KnowledgeBot(settings, store, prompts=prompts)},
    )


def _embedder(settings: Settings) -> object | None:
    try:
        from genai.models._embedders import create_embedder
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


def create_app() -> FastAPI:
    settings = Settings()
    store = Store(settings.resolved_database_url, pool_size=10)
    stages = stages_for(settings, store, after_warm=freeze_heap)
    gateway = create_gateway(settings, stages=stages, options=options_from_env(), store=store)
    from apps.admin import mount_admin

    return create_gateway_app(
        gateway, settings=settings, embedder=_embedder(settings), admin=mount_admin
    )
