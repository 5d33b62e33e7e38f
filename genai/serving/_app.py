"""``genai serve``'s HTTP app: OpenAI's API (as vLLM's server speaks it) over one backend."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from genai.errors import (
    GenAIError,
    NotFoundError,
    ValidationError,
    error_body,
    http_headers,
    http_status,
)
from genai.models import Generation, GenerationRequest, LLMBackend, Tokenizing
from genai.serving._metrics import ServerMetrics
from genai.serving._render import prime, render_response, render_sse
from genai.serving._responses_serve import add_responses_routes
from genai.serving._schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    LoadAdapterRequest,
    TokenizeRequest,
    UnloadAdapterRequest,
    check_body,
    parse_body,
)
from genai.serving._v1_errors import install_v1_errors

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
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The FastAPI app serving ``backend``; it starts and closes the backend with itself.
    Latencies in ``metrics`` are seconds of ``clock`` (injectable for tests)."""
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
        return JSONResponse(
            error_body(error), status_code=http_status(error), headers=http_headers(error)
        )

    install_v1_errors(app)  # OpenAI's error shape for unknown paths, methods and bodies

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
        """vLLM's ``/tokenize``: ``{"model", "prompt"}`` or ``{"model", "messages"}``; the
        ids where the backend has a tokenizer, the count always."""
        req = await body(request, TokenizeRequest)
        generation = req.generation(adapter_for(req.model or backend.model_id))
        if isinstance(backend, Tokenizing):
            special = req.add_special_tokens
            tokens = await backend.tokenize(
                generation, add_special_tokens=req.messages is None if special is None else special
            )
            strs = None
            if req.return_token_strs:
                strs = [await backend.detokenize([t]) for t in tokens]
            return {
                "count": len(tokens),
                "max_model_len": backend.context_window,
                "tokens": tokens,
                "token_strs": strs,
            }
        count = await backend.count_tokens(generation)
        return {"count": count, "max_model_len": backend.context_window}

    def tokenizing() -> Tokenizing:
        if not isinstance(backend, Tokenizing):
            raise NotFoundError(f"model {backend.model_id} has no tokenizer this server can use")
        return backend

    @app.post("/detokenize")
    async def detokenize(request: Request) -> dict[str, Any]:
        """vLLM's ``/detokenize``: ``{"model", "tokens"}`` → ``{"prompt"}``."""
        req = await body(request, DetokenizeRequest)
        adapter_for(req.model or backend.model_id)
        return {"prompt": await tokenizing().detokenize(req.tokens)}

    @app.get("/tokenizer_info")
    async def tokenizer_info() -> dict[str, Any]:
        return tokenizing().tokenizer_info()

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

    async def responses_chat(request: Request, chat_body: dict[str, Any]) -> Response:
        """/v1/responses: its request as a chat request, answered as one."""
        req = check_body(chat_body, ChatCompletionRequest)
        return await _answer(request, "chat", req, req.requests(adapter_for(req.model)))

    add_responses_routes(app, responses_chat, max_body_bytes=max_body_bytes)

    async def _answer(
        request: Request, endpoint: str, req: Any, gens: list[GenerationRequest]
    ) -> Response:
        started = clock()
        metrics.in_flight.inc()
        streaming = False

        async def done() -> None:
            metrics.in_flight.dec()
            metrics.latency.labels(endpoint).observe(clock() - started)

        try:
            if req.stream:
                primed = await _until_gone(request, prime([backend.stream(g) for g in gens]))
                stream = render_sse(
                    endpoint, req, gens, primed, _Observer(metrics, req.model, started, clock)
                )
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
            return JSONResponse(render_response(endpoint, req, gens, results))
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


def _count(
    metrics: ServerMetrics,
    model: str,
    gens: Sequence[GenerationRequest],
    results: Sequence[Generation],
) -> None:
    metrics.prompt_tokens.labels(model).inc(sum(r.prompt_tokens for r in results))
    metrics.generated_tokens.labels(model).inc(sum(r.completion_tokens for r in results))


class _Observer:
    """Feeds a stream's progress into the server's metrics."""

    def __init__(
        self, metrics: ServerMetrics, model: str, started: float, clock: Callable[[], float]
    ) -> None:
        self._metrics, self._model, self._started = metrics, model, started
        self._clock = clock

    def first_token(self) -> None:
        self._metrics.first_token.observe(self._clock() - self._started)

    def tokens(self, prompt: int, completion: int) -> None:
        self._metrics.prompt_tokens.labels(self._model).inc(prompt)
        self._metrics.generated_tokens.labels(self._model).inc(completion)

    def cancelled(self) -> None:
        self._metrics.disconnects.inc()
