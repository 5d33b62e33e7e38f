"""The gateway: one OpenAI-compatible front door for every AI Project.

Auth by project key, deployments as models, traffic policies (canary, A/B, bandit,
shadow), retries, fallbacks and circuit breakers, quotas and rate limits, the usage
ledger, metrics, and the stage protocols other packages plug into.

A change of a deployment's traffic (:class:`TrafficChange`) applies to a revision's spec
with :func:`retarget` (``genai deploy traffic``, the admin API and eval-gated promotion).

For the routers and stages that apps build beside it: :func:`cpu_pool` (the process's fair
CPU pool), :class:`UpstreamCredentials` (a target's upstream key, from project secrets or
allowed variables), :func:`error_responses` and :func:`refuse_duplicate_keys` (the same
OpenAPI error bodies and body checks as ``/v1``), and the usage ledger's :class:`Journal`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from genai.gateway._admission import cpu_pool
from genai.gateway._app import create_gateway_app
from genai.gateway._checks import refuse_duplicate_keys
from genai.gateway._credentials import (
    UpstreamCredentials,
    env_not_allowed,
    secret_not_set,
    suggested_secret_name,
)
from genai.gateway._gateway import Gateway
from genai.gateway._inprocess import InProcessPolicy, inprocess_policy
from genai.gateway._journal import Journal
from genai.gateway._observe import GatewayMetrics, span
from genai.gateway._openapi import error_responses
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
    DlpNote,
    DlpStatus,
    GatewayRequest,
    PerRequest,
    PreparedTarget,
    RequestStage,
    ResponseStage,
    StageNotes,
    StreamFilter,
    TargetStage,
)
from genai.gateway._traffic import Circuits
from genai.gateway._traffic_change import TrafficChange, retarget
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
    "DlpNote",
    "DlpStatus",
    "Gateway",
    "GatewayMetrics",
    "GatewayOptions",
    "GatewayRequest",
    "InProcessPolicy",
    "Journal",
    "PerRequest",
    "PreparedTarget",
    "Price",
    "RequestStage",
    "ResponseStage",
    "ShadowConfig",
    "StageNotes",
    "Stages",
    "StreamFilter",
    "TargetSpec",
    "TargetStage",
    "TrafficChange",
    "UpstreamCredentials",
    "cpu_pool",
    "create_gateway",
    "create_gateway_app",
    "env_not_allowed",
    "error_responses",
    "inprocess_policy",
    "parse_spec",
    "refuse_duplicate_keys",
    "retarget",
    "secret_not_set",
    "span",
    "suggested_secret_name",
]


def create_gateway(
    settings: Settings,
    *,
    stages: Stages | None = None,
    options: GatewayOptions | None = None,
    store: Store | None = None,
    circuits: Circuits | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Callable[[], datetime] | None = None,
    rng: random.Random | None = None,
) -> Gateway:
    """A gateway on the settings' store, with counters in Redis when ``GENAI_REDIS_URL`` is
    set (shared by every gateway process) and in this process otherwise, and its usage
    ledger journaled under ``GENAI_HOME/ledger`` (``options.ledger_journal``). Upstream keys
    come from the project secrets (under ``GENAI_SECRET_KEY``) and the operator's allowlist
    of variables (``GENAI_SECRET_ENV_ALLOWLIST``) unless ``options`` name others.

    ``clock`` (seconds: cache and in-process counter expiry), ``sleep`` (retry backoff) and
    ``now`` (UTC datetimes: quota windows) default to the real ones; a test passes a
    :class:`genai.testing.ManualClock`, its ``sleep`` and its ``now``."""
    from genai.store import check_schema

    store = store or Store(settings.resolved_database_url, pool_size=10)
    check_schema(store)
    counters = (
        AsyncRedisCounters(settings.redis_url, prefix=settings.redis_prefix)
        if settings.redis_url
        else AsyncMemoryCounters(clock=clock)
    )
    options = options or GatewayOptions()
    if options.secrets is None:  # project secrets (api_key_secret) under the settings' key
        from genai.tenancy import secret_sealer

        options = dataclasses.replace(options, secrets=secret_sealer(settings))
    if not options.secret_env_allowlist:
        allowed = tuple(settings.secret_env_allowlist)
        options = dataclasses.replace(options, secret_env_allowlist=allowed)
    if options.inprocess == InProcessPolicy():  # the operator's, from the settings
        options = dataclasses.replace(options, inprocess=inprocess_policy(settings))
    journal = None
    if options.ledger_journal != "off":
        journal = Journal(settings.home / "ledger", sync=options.ledger_journal)
    return Gateway(
        store,
        AsyncQuotaEnforcer(counters, now=now),
        stages=stages,
        options=options,
        journal=journal,
        circuits=circuits,
        clock=clock,
        sleep=sleep,
        rng=rng,
    )
