"""What a gateway is configured with: its options (limits, caches, the ledger's journal,
upstream keys) and the stages ``apps/`` plugs in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from genai._crypto import Sealer
from genai.gateway._inprocess import InProcessPolicy
from genai.gateway._stages import CacheStage, RequestStage, ResponseStage, TargetStage
from genai.models import Embedder
from genai.pool import FairPool

__all__ = ["GatewayOptions", "Stages"]


@dataclass(frozen=True)
class GatewayOptions:
    """The limits and settings of one gateway (`genai gateway` reads them from the
    GENAI_GATEWAY_* variables: see the README's Configuration table)."""

    max_body_bytes: int = 4 << 20
    key_cache_ttl_s: float = 10.0
    route_cache_ttl_s: float = 5.0
    ledger_interval_s: float = 0.2
    max_shadow_in_flight: int = 64
    prewarm: bool = False  # start the in-process backends deployments use, before traffic
    # fairness (genai/gateway/_admission.py): request-size limits, requests in progress per
    # project (in this process; a project's quota may lower it), the fair CPU pool
    max_request_tokens: int = 1_000_000  # chat/completions: prompt estimate + n × max_tokens
    max_embedding_inputs: int = 2048
    max_embedding_input_tokens: int = 8192
    max_embedding_tokens: int = 300_000
    # a CPU-pool job embeds at most this many texts and about this many (padded) tokens:
    # other projects' jobs run between a large request's jobs
    embedding_batch: int = 32
    embedding_batch_tokens: int = 128
    max_in_flight_per_project: int | None = 64
    cpu_workers: int = 1
    cpu_queue_per_project: int = 32
    cpu_queue: int = 256
    # the usage ledger's journal: "fsync" (a row is on disk before its response completes),
    # "write" (in the kernel: survives the process, not the machine), "off" (memory only)
    ledger_journal: Literal["fsync", "write", "off"] = "fsync"
    # upstream keys: the cipher of project secrets (api_key_secret; genai.tenancy.
    # secret_sealer(settings)) and the variables deployments may name (api_key_env)
    secrets: Sealer | None = None
    secret_env_allowlist: tuple[str, ...] = ()
    # answers remembered for POST /v1/feedback (older ones are looked up in the ledger)
    max_recent: int = 20_000
    # the backends deployments may run in this process, and where their files may come
    # from (GENAI_INPROCESS_BACKENDS, GENAI_MODEL_ROOTS: genai/gateway/_inprocess.py)
    inprocess: InProcessPolicy = field(default_factory=InProcessPolicy)


@dataclass
class Stages:
    """What ``apps/`` plugs in; the gateway runs with all of it empty."""

    request: list[RequestStage] = field(default_factory=list)
    response: list[ResponseStage] = field(default_factory=list)
    cache: CacheStage | None = None
    targets: dict[str, TargetStage] = field(default_factory=dict)
    pool: FairPool | None = None  # the CPU pool the stages share (else the gateway's own)
    # the process's embedding model, which in-process backends that embed (extractive
    # targets) share instead of loading their own copy
    embedder: Embedder | None = None
