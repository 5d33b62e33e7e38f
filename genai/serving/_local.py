"""Answer an OpenAI request body with an in-process backend (the gateway's local targets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from genai.models import LLMBackend
from genai.serving._render import prime, render_response, render_sse
from genai.serving._schemas import ChatCompletionRequest, CompletionRequest, check_body

__all__ = ["local_complete", "local_stream"]


def _parse(endpoint: str, body: dict[str, Any]) -> ChatCompletionRequest | CompletionRequest:
    model = ChatCompletionRequest if endpoint == "chat" else CompletionRequest
    parsed: ChatCompletionRequest | CompletionRequest = check_body(body, model)
    return parsed


async def local_complete(
    backend: LLMBackend, endpoint: str, body: dict[str, Any], adapter: str | None
) -> dict[str, Any]:
    """The whole OpenAI response body for ``body``."""
    req = _parse(endpoint, body)
    gens = req.requests(adapter)
    results = await asyncio.gather(*(backend.generate(g) for g in gens))
    return render_response(endpoint, req, gens, results)


async def local_stream(
    backend: LLMBackend, endpoint: str, body: dict[str, Any], adapter: str | None
) -> AsyncIterator[bytes]:
    """SSE events for ``body``; a bad request raises here, before any event is produced."""
    req = _parse(endpoint, body)
    gens = req.requests(adapter)
    primed = await prime([backend.stream(g) for g in gens])
    return render_sse(endpoint, req, gens, primed)
