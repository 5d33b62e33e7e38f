"""Shadow traffic: a copy of a request sent to another target in the background.

The shadow's answer is never returned and never billed to the caller (no usage row, no
quota spend). It is compared with the answer the caller got, and the comparison is
recorded; the texts themselves only when the project enables ``prompt_logging``: both
answers, and the request as the prompt log keeps it (``prompt_text``: JSON of its
``messages``, ``prompt`` or ``input`` after the request stages ran, so DLP's pseudonyms,
never raw personal data; a project without DLP keeps DLP's scrubbed copy for logs).
``genai eval shadow`` judges the kept pairs.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import time
from typing import TYPE_CHECKING

import orjson

from genai.gateway._http import text_of
from genai.gateway._spec import DeploymentSpec, TargetSpec
from genai.gateway._stages import GatewayRequest
from genai.gateway._targets import TargetCall
from genai.store import schema as t

if TYPE_CHECKING:
    from genai.gateway._gateway import Gateway

__all__ = ["prompt_of", "run_shadow", "similarity"]

log = logging.getLogger("genai.gateway.shadow")


def similarity(a: str, b: str) -> float:
    """How alike two answers are, 0 to 1 (a quick character-level ratio; a judge model can
    score shadow pairs more finely later from the recorded texts)."""
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def prompt_of(call: GatewayRequest) -> str:
    """The request as the prompt log keeps it (see the module's docstring), as JSON."""
    kept = call.notes.log_request or {
        k: v for k, v in call.body.items() if k in ("messages", "prompt", "input")
    }
    return orjson.dumps(kept, default=str).decode()


async def run_shadow(
    gateway: Gateway,
    call: GatewayRequest,
    target: TargetSpec,
    spec: DeploymentSpec,
    primary: str,
    primary_text: str,
) -> None:
    mirrored = dataclasses.replace(call, body={**call.body, "stream": False})
    mirrored.body.pop("stream_options", None)
    keep = bool(call.project_options.get("prompt_logging"))
    prompt = prompt_of(call) if keep else ""  # as the caller's request is now, before awaiting
    started = time.perf_counter()
    values = {
        "project_id": call.project_id,
        "request_id": call.request_id,
        "deployment": call.deployment,
        "primary_target": primary,
        "shadow_target": target.name,
    }
    try:
        payload = await gateway.targets.complete(TargetCall(target, mirrored, spec))
    except Exception as error:  # a shadow's failure is recorded, never raised
        gateway.metrics.shadow.labels("error").inc()
        gateway.ledger.add_row(t.ShadowResult, {**values, "status": f"error: {error}"[:40]})
        return

    text = text_of(payload)
    usage = payload.get("usage") or {}
    tokens = int(usage.get("prompt_tokens") or 0) + int(usage.get("completion_tokens") or 0)
    gateway.metrics.shadow.labels("ok").inc()
    gateway.ledger.add_row(
        t.ShadowResult,
        {
            **values,
            "status": "ok",
            "similarity": similarity(primary_text, text),
            "primary_text": primary_text if keep else "",
            "shadow_text": text if keep else "",
            "prompt_text": prompt,
            "shadow_tokens": tokens,
            "shadow_cost_usd": target.price.cost(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            ),
            "shadow_latency_ms": (time.perf_counter() - started) * 1000,
        },
    )
