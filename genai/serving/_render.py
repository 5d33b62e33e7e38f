"""OpenAI's response bodies and SSE streams, rendered from a backend's generations.

Shared by ``genai serve`` and by the gateway for its in-process targets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

from genai.errors import GenAIError, error_body
from genai.models import Generation, GenerationChunk, GenerationRequest

__all__ = ["StreamObserver", "merged", "prime", "render_response", "render_sse"]

log = logging.getLogger("genai.serving")
Primed = list[tuple[AsyncIterator[GenerationChunk], GenerationChunk]]


class StreamObserver(Protocol):
    """What a stream reports as it goes (the server's metrics listen)."""

    def first_token(self) -> None: ...

    def tokens(self, prompt: int, completion: int) -> None: ...

    def cancelled(self) -> None: ...


async def prime(
    streams: Sequence[AsyncIterator[GenerationChunk]],
) -> list[tuple[AsyncIterator[GenerationChunk], GenerationChunk]]:
    """Each stream with its first chunk, so a bad request fails before the 200 is sent."""
    primed = []
    try:
        for stream in streams:
            primed.append((stream, await anext(stream)))
    except BaseException:
        for stream in streams:
            await stream.aclose()  # type: ignore[attr-defined]
        raise
    return primed


async def merged(
    primed: list[tuple[AsyncIterator[GenerationChunk], GenerationChunk]],
) -> AsyncIterator[tuple[int, GenerationChunk]]:
    queue: asyncio.Queue[tuple[int, GenerationChunk | BaseException | None]] = asyncio.Queue()

    async def pump(
        index: int, stream: AsyncIterator[GenerationChunk], first: GenerationChunk
    ) -> None:
        try:
            await queue.put((index, first))
            if first.finish_reason is None:
                async for chunk in stream:
                    await queue.put((index, chunk))
            await queue.put((index, None))
        except BaseException as error:
            await queue.put((index, error))
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    tasks = [asyncio.ensure_future(pump(i, s, f)) for i, (s, f) in enumerate(primed)]
    open_streams = len(tasks)
    try:
        while open_streams:
            index, item = await queue.get()
            if item is None:
                open_streams -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


def _usage(
    gens: Sequence[GenerationRequest], prompt: Sequence[int], completion: Sequence[int], n: int
) -> dict[str, int]:
    prompt_total = sum(p for i, p in enumerate(prompt) if i % n == 0)
    completion_total = sum(completion)
    return {
        "prompt_tokens": prompt_total,
        "completion_tokens": completion_total,
        "total_tokens": prompt_total + completion_total,
    }


def render_response(
    endpoint: str, req: Any, gens: Sequence[GenerationRequest], results: Sequence[Generation]
) -> dict[str, Any]:
    created = int(time.time())
    usage = _usage(
        gens, [r.prompt_tokens for r in results], [r.completion_tokens for r in results], req.n
    )
    if endpoint == "chat":
        choices = []
        for i, r in enumerate(results):
            message: dict[str, Any] = {"role": "assistant", "content": r.text, "refusal": None}
            if r.tool_calls:
                message["tool_calls"] = [c.model_dump() for c in r.tool_calls]
                message["content"] = r.text or None
            choices.append(
                {"index": i, "message": message, "logprobs": None, "finish_reason": r.finish_reason}
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "choices": choices,
            "usage": usage,
            "system_fingerprint": None,
        }
    texts = [
        (g.prompt or "") + r.text if req.echo else r.text
        for g, r in zip(gens, results, strict=True)
    ]
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": created,
        "model": req.model,
        "system_fingerprint": None,
        "usage": usage,
        "choices": [
            {"index": i, "text": t, "logprobs": None, "finish_reason": r.finish_reason}
            for i, (t, r) in enumerate(zip(texts, results, strict=True))
        ],
    }


def _event(data: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


async def render_sse(
    endpoint: str,
    req: Any,
    gens: Sequence[GenerationRequest],
    primed: Primed,
    observer: StreamObserver | None = None,
) -> AsyncIterator[bytes]:
    """OpenAI's stream: chunks, a final chunk per choice, usage when asked, ``[DONE]``."""
    chat = endpoint == "chat"
    base: dict[str, Any] = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": req.model,
        "system_fingerprint": None,
    }
    if req.include_usage:
        base["usage"] = None
    prompt = [0] * len(gens)
    completion = [0] * len(gens)

    def choice(
        index: int, text: str | None, finish: str | None, first: bool = False
    ) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if first:
                delta = {"role": "assistant", "content": ""}
            return {
                **base,
                "choices": [
                    {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
        return {
            **base,
            "choices": [
                {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
            ],
        }

    first_token_seen = False
    try:
        if chat:
            for i in range(len(gens)):
                yield _event(choice(i, None, None, first=True))
        elif req.echo:
            for i, g in enumerate(gens):
                yield _event(choice(i, g.prompt or "", None))
        async for index, chunk in merged(primed):
            if chunk.text:
                if not first_token_seen and observer is not None:
                    observer.first_token()
                first_token_seen = True
                yield _event(choice(index, chunk.text, None))
            if chunk.finish_reason is not None:
                prompt[index], completion[index] = (
                    chunk.prompt_tokens or 0,
                    chunk.completion_tokens or 0,
                )
                yield _event(choice(index, None if chat else "", chunk.finish_reason))
        if req.include_usage:
            yield _event({**base, "choices": [], "usage": _usage(gens, prompt, completion, req.n)})
        if observer is not None:
            observer.tokens(sum(prompt), sum(completion))
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        if observer is not None:
            observer.cancelled()
        raise
    except GenAIError as error:
        yield _event(error_body(error))
    except Exception as error:  # an engine failure mid-stream ends the stream with an error event
        log.exception("stream failed")
        yield _event(
            {
                "error": {
                    "message": f"generation failed: {error}",
                    "type": "server_error",
                    "param": None,
                    "code": "generation_failed",
                }
            }
        )
