"""Shaping requests and responses at the gateway's edge: the key, the body, ids, errors."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request

from genai.errors import AuthenticationError, GenAIError, PayloadTooLarge, ValidationError
from genai.gateway._stages import GatewayRequest
from genai.gateway._streaming import SseRelay
from genai.gateway._targets import TargetFailed

__all__ = [
    "as_response",
    "backoff",
    "bearer",
    "error_event",
    "iterate",
    "json_body",
    "response_id",
    "text_of",
    "with_id",
]


def bearer(http: Request) -> str:

    header = http.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError(
            "no API key: send 'Authorization: Bearer <key>' with a key from `genai key create`"
        )
    return token.strip()


async def json_body(http: Request, limit: int) -> Any:

    declared = http.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the request body has {declared} bytes; this gateway takes at most {limit}"
        )
    raw = b""
    async for part in http.stream():  # a body without a (true) length stops at the limit too
        raw += part
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"the request body has more than {limit} bytes; this gateway takes at most {limit}"
            )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValidationError(f"the request body is not valid JSON: {error}") from None


def backoff(base: float, attempt: int, retry_after: float | None, rng: random.Random) -> float:
    if retry_after is not None and retry_after <= 5:
        return retry_after
    return base * (2**attempt) * (0.5 + rng.random())


def response_id(call: GatewayRequest) -> str:
    return f"{'chatcmpl' if call.endpoint == 'chat' else 'cmpl'}-{call.request_id}"


def with_id(payload: dict[str, Any], call: GatewayRequest) -> dict[str, Any]:
    """The response as the caller's: the gateway's id, and the model name they asked for."""
    payload["id"] = response_id(call)
    if "model" in payload:
        payload["model"] = call.body.get("model")
    return payload


def text_of(payload: dict[str, Any]) -> str:
    parts = []
    for choice in payload.get("choices") or []:
        message = choice.get("message") or {}
        parts.append(str(message.get("content") or choice.get("text") or ""))
    return "".join(parts)


def as_response(relay: SseRelay, call: GatewayRequest) -> dict[str, Any]:
    chat = call.endpoint == "chat"
    choice: dict[str, Any] = {
        "index": 0,
        "finish_reason": relay.finish_reason or "stop",
        "logprobs": None,
    }
    # the target's own text: response stages run again when a cached answer is served
    if chat:
        choice["message"] = {"role": "assistant", "content": relay.raw_text}
    else:
        choice["text"] = relay.raw_text
    return {
        "id": response_id(call),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": call.body.get("model"),
        "choices": [choice],
        "usage": relay.usage,
        **relay.extensions,
    }


def error_event(error: Exception, call: GatewayRequest) -> bytes:
    message = error.message if isinstance(error, (GenAIError, TargetFailed)) else str(error)
    body = {
        "error": {
            "message": f"the stream from deployment {call.deployment!r} failed: {message}",
            "type": "server_error",
            "param": None,
            "code": "upstream_error",
        }
    }
    return b"data: " + orjson.dumps(body) + b"\n\n"


async def iterate(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
