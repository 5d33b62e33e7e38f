"""An OpenAI-compatible upstream whose streamed answer waits at a gate: the first words go
out at once, the rest only once the test opens the gate. A browser that shows the first
words while the gate is shut shows tokens as they arrive, not the whole answer at the end,
and no clock is involved.

    upstream = GatedUpstream(first="Hello from", rest=" the gated model.")
    with running_server(upstream.app()) as base:
        ...  # deploy {"url": base + "/v1", "model": "gated"}; ask; see "Hello from"
        upstream.gate.set()
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

GATE_TIMEOUT_S = 60.0  # a test that never opens the gate still ends


class GatedUpstream:
    def __init__(self, *, first: str, rest: str) -> None:
        self.first = first
        self.rest = rest
        self.gate = threading.Event()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model", "gated"))
        if not body.get("stream"):
            message = {"role": "assistant", "content": self.first + self.rest}
            answer = {
                "id": "cmpl-gated",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            }
            return Response(json.dumps(answer), media_type="application/json")
        return StreamingResponse(self._events(model), media_type="text/event-stream")

    async def _events(self, model: str) -> AsyncIterator[str]:
        def event(delta: dict[str, Any], finish: str | None = None) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            chunk = {
                "id": "cmpl-gated",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
            }
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": ""})
        for word in self.first.split(" "):
            yield event({"content": word + " "})
        waited = 0.0
        while not self.gate.is_set() and waited < GATE_TIMEOUT_S:  # a bounded wait
            await asyncio.sleep(0.02)
            waited += 0.02
        yield event({"content": self.rest})
        yield event({}, "stop")
        yield "data: [DONE]\n\n"


class EchoUpstream:
    """An OpenAI-compatible upstream that answers every (non-streamed) chat request with
    its messages, ``role: content`` joined by " | ", and keeps each request's body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        text = " | ".join(f"{m['role']}: {m['content']}" for m in body.get("messages", []))
        answer = {
            "id": "cmpl-echo",
            "object": "chat.completion",
            "created": 0,
            "model": str(body.get("model", "echo")),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        }
        return Response(json.dumps(answer), media_type="application/json")
