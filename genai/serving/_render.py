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
from genai.models import Generation, GenerationChunk, GenerationRequest, TokenLogprob, ToolCall

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


def _bytes(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def chat_logprobs(scored: Sequence[TokenLogprob] | None) -> dict[str, Any] | None:
    """Chat's ``logprobs``: an entry per token, with its top alternatives."""
    if scored is None:
        return None
    return {
        "content": [
            {
                "token": t.token,
                "logprob": t.logprob,
                "bytes": _bytes(t.token),
                "top_logprobs": [
                    {"token": a.token, "logprob": a.logprob, "bytes": _bytes(a.token)}
                    for a in t.top
                ],
            }
            for t in scored
        ],
        "refusal": None,
    }


def text_logprobs(
    scored: Sequence[TokenLogprob | None] | None, offset: int = 0
) -> dict[str, Any] | None:
    """Completions' ``logprobs``: tokens, their log-probabilities (None for a prompt's
    first token), the top alternatives (the chosen token among them, as vLLM sends them)
    and each token's character offset in the text, counted from ``offset``."""
    if scored is None:
        return None
    tokens: list[str] = []
    values: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    offsets: list[int] = []
    for entry in scored:
        offsets.append(offset)
        if entry is None:  # the prompt's first token: nothing before it to condition on
            tokens.append("")
            values.append(None)
            tops.append(None)
            continue
        offset += len(entry.token)
        tokens.append(entry.token)
        values.append(entry.logprob)
        top = {a.token: a.logprob for a in entry.top}
        top.setdefault(entry.token, entry.logprob)
        tops.append(top)
    return {
        "tokens": tokens,
        "token_logprobs": values,
        "top_logprobs": tops,
        "text_offset": offsets,
    }


def _first_token(gen: GenerationRequest, result: Generation) -> str:
    """The text of a prompt's first token, whose entry in ``prompt_logprobs`` is None."""
    rest = "".join(t.token for t in (result.prompt_logprobs or [])[1:] if t is not None)
    prompt = result.prompt_text or gen.prompt or ""
    return prompt[: len(prompt) - len(rest)] if prompt.endswith(rest) else ""


def _completion_logprobs(gen: GenerationRequest, result: Generation, echo: bool) -> Any:
    if gen.logprobs is None:
        return None
    scored: list[TokenLogprob | None] = []
    if echo and result.prompt_logprobs is not None:
        scored = list(result.prompt_logprobs)
    scored.extend(result.logprobs or [])
    rendered = text_logprobs(scored)
    if rendered is not None and echo and result.prompt_logprobs:
        rendered["tokens"][0] = _first_token(gen, result)
        rendered["text_offset"] = [
            o + (len(rendered["tokens"][0]) if i else 0)
            for i, o in enumerate(rendered["text_offset"])
        ]
    return rendered


def tool_call_deltas(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """Streamed ``tool_calls``: each call whole, with its index."""
    return [
        {
            "index": i,
            "id": c.id,
            "type": "function",
            "function": {
                "name": c.function.get("name", ""),
                "arguments": c.function.get("arguments", ""),
            },
        }
        for i, c in enumerate(calls)
    ]


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
                {
                    "index": i,
                    "message": message,
                    "logprobs": chat_logprobs(r.logprobs),
                    "finish_reason": r.finish_reason,
                }
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
        (r.prompt_text if r.prompt_text is not None else g.prompt or "") + r.text
        if req.echo
        else r.text
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
            {
                "index": i,
                "text": t,
                "logprobs": _completion_logprobs(g, r, bool(req.echo)),
                "finish_reason": r.finish_reason,
            }
            for i, (t, g, r) in enumerate(zip(texts, gens, results, strict=True))
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
        index: int,
        text: str | None,
        finish: str | None,
        first: bool = False,
        chunk: GenerationChunk | None = None,
    ) -> dict[str, Any]:
        scored = chunk.logprobs if chunk is not None else None
        if chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if first:
                delta = {"role": "assistant", "content": ""}
            if chunk is not None and chunk.tool_calls:
                delta["tool_calls"] = tool_call_deltas(chunk.tool_calls)
            wanted = gens[index].logprobs is not None and scored is not None
            return {
                **base,
                "choices": [
                    {
                        "index": index,
                        "delta": delta,
                        "logprobs": chat_logprobs(scored) if wanted else None,
                        "finish_reason": finish,
                    }
                ],
            }
        logprobs = None
        if gens[index].logprobs is not None and chunk is not None:
            entries: list[TokenLogprob | None] = list(chunk.prompt_logprobs or [])
            logprobs = text_logprobs([*entries, *(scored or [])])
        return {
            **base,
            "choices": [
                {"index": index, "text": text or "", "logprobs": logprobs, "finish_reason": finish}
            ],
        }

    first_token_seen = False
    try:
        if chat:
            for i in range(len(gens)):
                yield _event(choice(i, None, None, first=True))
        async for index, received in merged(primed):
            chunk = received
            if not chat and req.echo and chunk.prompt_text is not None:
                echoed = chunk.model_copy(update={"logprobs": None})
                yield _event(choice(index, chunk.prompt_text, None, chunk=echoed))
                chunk = chunk.model_copy(update={"prompt_logprobs": None})
            if chunk.text or (chunk.logprobs and chunk.finish_reason is None):
                if not first_token_seen and observer is not None:
                    observer.first_token()
                first_token_seen = True
                yield _event(choice(index, chunk.text, None, chunk=chunk))
                chunk = chunk.model_copy(update={"logprobs": None})
            if chunk.finish_reason is not None:
                prompt[index], completion[index] = (
                    chunk.prompt_tokens or 0,
                    chunk.completion_tokens or 0,
                )
                yield _event(
                    choice(index, None if chat else "", chunk.finish_reason, chunk=chunk)
                )
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
