"""Shaping requests and responses at the gateway's edge: the key, the body, ids, errors."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request

from genai.errors import AuthenticationError, GenAIError, PayloadTooLarge, ValidationError
from genai.gateway._checks import refuse_duplicate_keys
from genai.gateway._stages import GatewayRequest
from genai.gateway._streaming import SseRelay
from genai.gateway._targets import TargetFailed

T = TypeVar("T")

__all__ = [
    "ClientGone",
    "as_response",
    "backoff",
    "bearer",
    "error_event",
    "iterate",
    "json_body",
    "response_id",
    "text_of",
    "unless_gone",
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


class ClientGone(Exception):
    """The client closed the connection before its answer (or before its request body was
    whole): nothing to answer, and not the gateway's fault (one log line, never an error)."""


async def unless_gone(http: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; or, when the client disconnects first, ``work`` cancelled (its
    CPU jobs not started yet never run, its upstream call is dropped) and
    :class:`ClientGone`. Call it once the request's body is read: what ``receive`` gives
    next is the disconnect."""

    async def gone() -> None:
        while (await http.receive())["type"] != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        watch.cancel()
        raise
    watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await task
    raise ClientGone("the client went away before its answer")


async def json_body(http: Request, limit: int) -> Any:
    """The request's JSON body: at most ``limit`` bytes, strict JSON, each key once."""
    declared = http.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the request body has {declared} bytes; this gateway takes at most {limit}"
        )
    parts: list[bytes] = []  # joined once: bytes += would copy the whole body at each piece
    received = 0
    try:
        async for part in http.stream():  # a body without a (true) length stops at the limit
            parts.append(part)
            received += len(part)
            if received > limit:
                raise PayloadTooLarge(
                    f"the request body has more than {limit} bytes; this gateway takes at "
                    f"most {limit}"
                )
    except ClientDisconnect:
        raise ClientGone(f"the client went away after {received} bytes of its body") from None
    raw = b"".join(parts)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ValidationError(f"the request body is not valid JSON: {error}") from None
    refuse_duplicate_keys(raw, body)
    return body


def backoff(base: float, attempt: int, retry_after: float | None, rng: random.Random) -> float:
    if retry_after is not None and retry_after <= 5:
        return retry_after
    return base * 2.0**attempt * (0.5 + rng.random())


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
