"""The gateway: one OpenAI-compatible front door for every AI Project.

Auth by project key, deployments as models, traffic policies (canary, A/B, bandit,
shadow), retries, fallbacks and circuit breakers, quotas and rate limits, the usage
ledger, metrics, and the stage protocols other packages plug into.
"""

from __future__ import annotations

import dataclasses

from genai.gateway._app import create_gateway_app
from genai.gateway._gateway import Gateway
from genai.gateway._observe import GatewayMetrics
from genai.gateway._options import GatewayOptions, Stages
from genai.gateway._spec import (
    BanditConfig,
    CircuitConfig,
    DeploymentSpec,
    Price,
    ShadowConfig,
    TargetSpec,
    parse_spec,
)
from genai.gateway._stages import (
    CachedAnswer,
    CacheFeedback,
    CacheStage,
    GatewayRequest,
    PreparedTarget,
    RequestStage,
    ResponseStage,
    StreamFilter,
    TargetStage,
)
from genai.gateway._traffic import Circuits
from genai.settings import Settings
from genai.store import Store
from genai.tenancy import AsyncMemoryCounters, AsyncQuotaEnforcer, AsyncRedisCounters

__all__ = [
    "BanditConfig",
    "CacheFeedback",
    "CacheStage",
    "CachedAnswer",
    "CircuitConfig",
    "Circuits",
    "DeploymentSpec",
    "Gateway",
    "GatewayMetrics",
    "GatewayOptions",
    "GatewayRequest",
    "PreparedTarget",
    "Price",
    "RequestStage",
    "ResponseStage",
    "ShadowConfig",
    "Stages",
    "StreamFilter",
    "TargetSpec",
    "TargetStage",
    "create_gateway",
    "create_gateway_app",
    "parse_spec",
]


def create_gateway(
    settings: Settings,
    *,
    stages: Stages | None = None,
    options: GatewayOptions | None = None,
    store: Store | None = None,
    circuits: Circuits | None = None,
) -> Gateway:
    """A gateway on the settings' store, with counters in Redis when ``GENAI_REDIS_URL`` is
    set (shared by every gateway process) and in this process otherwise, and its usage
    ledger journaled under ``GENAI_HOME/ledger`` (``options.ledger_journal``). Upstream keys
    come from the project secrets (under ``GENAI_SECRET_KEY``) and the operator's allowlist
    of variables (``GENAI_SECRET_ENV_ALLOWLIST``) unless ``options`` name others."""
    from genai.store import check_schema

    store = store or Store(settings.resolved_database_url, pool_size=10)
    check_schema(store)
    counters = (
        AsyncRedisCounters(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url
        else AsyncMemoryCounters()
    )
    options = options or GatewayOptions()
    if options.secrets is None:  # project secrets (api_key_secret) under the settings' key
        from genai.tenancy import secret_sealer

        options = dataclasses.replace(options, secrets=secret_sealer(settings))
    if not options.secret_env_allowlist:
        allowed = tuple(settings.secret_env_allowlist)
        options = dataclasses.replace(options, secret_env_allowlist=allowed)
    journal = None
    if options.ledger_journal != "off":
        from genai.gateway._journal import Journal

        journal = Journal(settings.home / "ledger", sync=options.ledger_journal)
    return Gateway(
        store,
        AsyncQuotaEnforcer(counters),
        stages=stages,
        options=options,
        journal=journal,
        circuits=circuits,
    )
