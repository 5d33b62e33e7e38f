"""What one request came to: its target, tokens, cost and status; its ledger and log line."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from genai.gateway._cache import Caller
from genai.gateway._spec import TargetSpec
from genai.gateway._stages import GatewayRequest
from genai.tenancy import QuotaLimits

__all__ = ["Outcome", "access_record", "account", "caller_of", "log_failure", "status_word"]


@dataclass
class Outcome:
    target: str = ""
    adapter: str = ""
    status: str = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    gpu_seconds: float = 0.0
    upstream_s: float = 0.0
    cache_hit: bool = False
    recorded: bool = False  # its ledger row is written


def account(outcome: Outcome, target: TargetSpec | None, usage: Any) -> None:
    if isinstance(usage, dict):
        outcome.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        outcome.completion_tokens = int(usage.get("completion_tokens") or 0)
    if target is not None and not outcome.cache_hit:
        outcome.cost_usd = target.price.cost(outcome.prompt_tokens, outcome.completion_tokens)
        outcome.gpu_seconds = target.gpus * outcome.upstream_s


def status_word(status: int) -> str:
    return {
        429: "rate_limited",
        400: "invalid_request",
        404: "not_found",
        403: "forbidden",
        413: "too_large",
    }.get(status, "error")


def caller_of(call: GatewayRequest) -> Caller:

    return Caller(
        call.principal, call.project_id, call.project, call.project_options, QuotaLimits()
    )


def access_record(call: GatewayRequest, outcome: Outcome, latency_ms: float) -> dict[str, Any]:
    record: dict[str, Any] = {
        "request_id": call.request_id,
        "project": call.project,
        "deployment": call.deployment,
        "target": outcome.target,
        "endpoint": call.endpoint,
        "status": outcome.status,
        "latency_ms": round(latency_ms, 3),
        "upstream_ms": round(outcome.upstream_s * 1000, 3),
        "prompt_tokens": outcome.prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "cache_hit": outcome.cache_hit,
        "principal": call.principal.label,
    }
    if call.project_options.get("prompt_logging"):
        # a stage may leave a copy fit for logs (DLP: personal data scrubbed); a request
        # refused before the request stages (DLP among them) finished is not logged
        if call.notes.unchecked:
            record["request"] = "[withheld: refused before the request stages ran]"
        else:
            record["request"] = call.notes.log_request or {
                k: v for k, v in call.body.items() if k in ("messages", "prompt", "input")
            }
    return record


def log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        import logging

        logging.getLogger("genai.gateway").error("recording spend failed: %s", task.exception())
