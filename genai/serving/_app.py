"""``genai serve``'s HTTP app: OpenAI's API (as vLLM's server speaks it) over one backend."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from genai.errors import GenAIError, NotFoundError, ValidationError, error_body, http_status
from genai.models import Generation, GenerationChunk, GenerationRequest, LLMBackend
from genai.serving._metrics import ServerMetrics
from genai.serving._schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    LoadAdapterRequest,
    TokenizeRequest,
    UnloadAdapterRequest,
    parse_body,
)

__all__ = ["AdapterResolver", "create_app"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Turns a ``lora_path`` (a directory, or a registry reference) into a directory to load.
AdapterResolver = Callable[[str], Awaitable[str]]


class _ClientGone(Exception):
    pass


def create_app(
    backend: LLMBackend,
    *,
    metrics: ServerMetrics | None = None,
    resolve_adapter: AdapterResolver | None = None,
    max_body_bytes: int = 8 << 20,
) -> FastAPI:
    """The FastAPI app serving ``backend``; it starts and closes the backend with itself."""
    metrics = metrics or ServerMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[None]:
        try:
            await backend.start()
        except GenAIError as error:  # kept for the caller to report in one line
            app_.state.startup_error = error
            raise
        metrics.adapters.set(len(backend.adapters()))
        try:
            yield
        finally:
            await backend.close()

    app = FastAPI(title="genai serve", lifespan=lifespan)
    app.state.backend = backend
    app.state.metrics = metrics
    app.state.startup_error = None

    @app.exception_handler(GenAIError)
    async def _genai_error(_: Request, error: GenAIError) -> JSONResponse:
        return JSONResponse(error_body(error), status_code=http_status(error))

    async def body(request: Request, model: type[T]) -> T:
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise ValidationError(
                f"the request body has {len(raw)} bytes; the limit is {max_body_bytes}"
            )
        parsed: T = parse_body(raw, model)  # type: ignore[arg-type]
        return parsed

    def adapter_for(model: str) -> str | None:
        if model == backend.model_id:
            return None
        if any(a.name == model for a in backend.adapters()):
            return model
        raise NotFoundError(f"The model `{model}` does not exist.")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.post("/tokenize")
    async def tokenize(request: Request) -> dict[str, Any]:
        """vLLM's token count: ``{"model", "prompt"}`` or ``{"model", "messages"}``."""
        req = await body(request, TokenizeRequest)
        count = await backend.count_tokens(req.generation(adapter_for(req.model)))
        return {"count": count, "max_model_len": backend.context_window}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        base = {
            "id": backend.model_id,
            "object": "model",
            "created": created,
            "owned_by": "genai",
            "root": backend.model_id,
            "parent": None,
            "max_model_len": backend.context_window,
            "permission": [],
        }
        lora = [
            {**base, "id": a.name, "root": a.path, "parent": a.base_model}
            for a in backend.adapters()
        ]
        return {"object": "list", "data": [base, *lora]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        req = await body(request, ChatCompletionRequest)
        return await _answer(request, "chat", req, req.requests(adapter_for(req.model)))

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Response:
        req = await body(request, CompletionRequest)
        return await _answer(request, "completions", req, req.requests(adapter_for(req.model)))

    async def _answer(
        request: Request, endpoint: str, req: Any, gens: list[GenerationRequest]
    ) -> Response:
        started = time.monotonic()
        metrics.in_flight.inc()
        streaming = False

        async def done() -> None:
            metrics.in_flight.dec()
            metrics.latency.labels(endpoint).observe(time.monotonic() - started)

        try:
            if req.stream:
                primed = await _until_gone(request, _prime([backend.stream(g) for g in gens]))
                stream = _sse(endpoint, req, gens, primed, metrics, started)
                metrics.requests.labels(endpoint, req.model, "200").inc()
                streaming = True  # answered when the stream ends, or its client leaves
                return StreamingResponse(
                    stream,
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                    background=BackgroundTask(done),
                )
            results = await _until_gone(
                request, asyncio.gather(*(backend.generate(g) for g in gens))
            )
            _count(metrics, req.model, gens, results)
            metrics.requests.labels(endpoint, req.model, "200").inc()
            return JSONResponse(_response(endpoint, req, gens, results))
        except _ClientGone:
            metrics.disconnects.inc()
            return Response(status_code=499)
        except GenAIError as error:
            metrics.requests.labels(endpoint, req.model, str(http_status(error))).inc()
            raise
        finally:
            if not streaming:
                await done()

    @app.post("/v1/load_lora_adapter", response_model=None)
    async def load_lora_adapter(request: Request) -> Response:
        req = await body(request, LoadAdapterRequest)
        path = await resolve_adapter(req.lora_path) if resolve_adapter else req.lora_path
        await backend.load_adapter(req.lora_name, path, replace=req.load_inplace)
        metrics.adapters.set(len(backend.adapters()))
        return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' added successfully.")

    @app.post("/v1/unload_lora_adapter", response_model=None)
    async def unload_lora_adapter(request: Request) -> Response:
        req = await body(request, UnloadAdapterRequest)
        try:
            await backend.unload_adapter(req.lora_name)
        except NotFoundError as error:  # vLLM answers 400 here, with the reason
            raise ValidationError(error.message, field="lora_name") from None
        metrics.adapters.set(len(backend.adapters()))
        return PlainTextResponse(f"Success: LoRA adapter '{req.lora_name}' removed successfully.")

    return app


async def _until_gone(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it if the client disconnects first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise _ClientGone
    finally:
        watcher.cancel()


async def _prime(
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


async def _merged(
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


def _count(
    metrics: ServerMetrics,
    model: str,
    gens: Sequence[GenerationRequest],
    results: Sequence[Generation],
) -> None:
    metrics.prompt_tokens.labels(model).inc(sum(r.prompt_tokens for r in results))
    metrics.generated_tokens.labels(model).inc(sum(r.completion_tokens for r in results))


def _response(
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


async def _sse(
    endpoint: str,
    req: Any,
    gens: Sequence[GenerationRequest],
    primed: list[tuple[AsyncIterator[GenerationChunk], GenerationChunk]],
    metrics: ServerMetrics,
    started: float,
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
        async for index, chunk in _merged(primed):
            if chunk.text:
                if not first_token_seen:
                    metrics.first_token.observe(time.monotonic() - started)
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
        metrics.prompt_tokens.labels(req.model).inc(sum(prompt))
        metrics.generated_tokens.labels(req.model).inc(sum(completion))
        yield b"data: [DONE]\n\n"
    except asyncio.CancelledError:
        metrics.disconnects.inc()
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
