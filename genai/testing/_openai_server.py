"""``FakeOpenAIServer``: a fake of vLLM's OpenAI-compatible server, on 127.0.0.1, for tests
of clients of OpenAI-compatible APIs (the ``openai`` backend, the gateway's upstreams, the
OpenAI SDK pointed at a deployment).

It serves what ``vllm serve --enable-lora`` serves: ``/v1/models`` (the base model and
``parent``-linked adapters), ``/v1/chat/completions`` and ``/v1/completions`` (JSON, and SSE
with ``stream_options.include_usage``; tool calls when the request has ``tools``),
``/tokenize``, ``/health``, ``/metrics`` (Prometheus text: the ``vllm:num_requests_running``
and ``vllm:num_requests_waiting`` gauges, labelled ``model_name``), and
``/v1/load_lora_adapter`` / ``/v1/unload_lora_adapter`` with vLLM's plain-text success
bodies and JSON error bodies. Adapter paths are virtual by default (any ``/adapters/...``
path loads); with ``check_lora_paths=True`` a load needs a real directory holding
``adapter_config.json``, as vLLM does. ``fake.starts`` counts how many times the fake was
served as a context manager (a test proves no restart happened). A "token" here is a
whitespace-separated word. Set ``fake.mode`` (one of :data:`MODES`) to make the generation
routes misbehave; with ``fake.failures_left = n`` only the next ``n`` generation requests
misbehave, and the ones after them are answered normally. ``fake.delay_s`` slows every
answer down, and ``fake.calls()`` counts the generation requests (``fake.requests`` keeps
each one);
``fake.running`` is how many are being answered now and ``fake.waiting`` the queue that
``/metrics`` reports (set it).

    with FakeOpenAIServer(adapters={"support": "/adapters/support"}) as fake:
        client = openai.OpenAI(base_url=fake.url + "/v1", api_key="unused")
        ...

:func:`running_server` serves any ASGI app the same way (a test that swaps fakes behind one
server serves a small dispatching app). Needs the ``serve`` extra (FastAPI and uvicorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from genai.testing._served import Served

__all__ = ["MODES", "FakeOpenAIServer", "Recorded", "running_server"]

MODES = {
    "ok": "answer normally",
    "error500": "500 with vLLM's error body",
    "ratelimit": "429 with Retry-After: fake.retry_after",
    "forbidden": "403: the key may not use this model",
    "unprocessable": "422 with FastAPI's validation body",
    "garbage": "200 with an HTML body; in a stream, an event that is not JSON",
    "not_sse": "a stream of HTML lines instead of server-sent events",
    "hang": "wait fake.hang_s seconds before answering",
    "stall": "a stream that sends its headers, then nothing for fake.hang_s seconds",
    "drop": "a stream whose connection breaks after two pieces",
    "unfinished": "a stream that sends [DONE] without a finish_reason",
    "eof": "a stream that ends without a finish_reason or [DONE]",
    "error_event": "a stream that sends an error event after one piece",
    "error_event_first": "a stream whose first event is an error event",
}


@dataclass
class Recorded:
    path: str
    body: Any
    headers: dict[str, str]
    at: float = 0.0  # time.monotonic() when it arrived


class FakeOpenAIServer(Served):
    """The state and the ASGI ``app`` of one fake server; mutate attributes between calls.

    Use it as a context manager to serve it (``with FakeOpenAIServer() as fake``), or serve
    ``fake.app`` yourself with :func:`running_server`.
    """

    def __init__(
        self,
        *,
        base_model: str = "fake-base",
        max_model_len: int = 64,
        adapters: Mapping[str, str] | None = None,
        other_bases: tuple[str, ...] = (),
        api_key: str | None = None,
        reply: str = "the answer is forty two",
        check_lora_paths: bool = False,
    ) -> None:
        self.base_model = base_model
        self.max_model_len = max_model_len
        self.adapters: dict[str, str] = dict(adapters or {})
        self.other_bases = other_bases
        self.api_key = api_key
        self.reply = reply
        self.check_lora_paths = check_lora_paths
        self.mode = "ok"
        self.retry_after = "7"
        self.hang_s = 1.0
        self.failures_left: int | None = None  # None: every request follows ``mode``
        self.delay_s = 0.0
        self.tool_arguments = '{"city": "Paris", "unit": "celsius"}'
        self.forbidden_message = "This key may not use this model."
        self.list_models = True
        self.tokenize = True
        self.requests: list[Recorded] = []
        self.starts = 0  # how many times ``with fake:`` served it
        self.running = 0  # generation requests being answered now (the metrics gauge)
        self.waiting = 0  # what /metrics reports as queued (the fake has no queue)
        self.url = ""  # http://127.0.0.1:PORT while served (a test serving it may set it)
        self.app = self._build()

    def _started(self) -> None:
        """``with fake:`` serves it on a free 127.0.0.1 port until the block ends; ``url`` is
        its base URL (the OpenAI SDK's ``base_url`` is ``url + "/v1"``)."""
        self.starts += 1

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies of the requests to ``path``, oldest first."""
        return [r.body for r in self.requests if r.path == path]

    def last(self, path: str) -> Any:
        return self.bodies(path)[-1]

    def calls(self) -> int:
        """How many generation requests (chat and completions) arrived so far."""
        return sum(r.path in _GENERATION for r in self.requests)

    def _mode_of_next(self) -> str:
        if self.failures_left is None:
            return self.mode
        if self.failures_left > 0:
            self.failures_left -= 1
            return self.mode
        return "ok"

    # ------------------------------------------------------------ the app

    def _build(self) -> Any:
        api = FastAPI()
        api.get("/health")(self._health)
        api.get("/metrics")(self._metrics)
        api.get("/v1/models")(self._models)
        api.post("/v1/chat/completions")(self._chat)
        api.post("/v1/completions")(self._completions)
        api.post("/tokenize")(self._tokenize)
        api.post("/v1/load_lora_adapter")(self._load)
        api.post("/v1/unload_lora_adapter")(self._unload)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            """Records each request and checks the key (a plain ASGI wrapper, so that an
            error inside a stream really breaks the connection)."""
            if scope["type"] != "http":
                return await api(scope, receive, send)
            raw, more = b"", True
            while more:
                message = await receive()
                raw += message.get("body", b"")
                more = message.get("more_body", False)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append(
                Recorded(scope["path"], json.loads(raw) if raw else None, headers, time.monotonic())
            )
            if (
                self.api_key
                and scope["path"].startswith("/v1")
                and headers.get("authorization") != f"Bearer {self.api_key}"
            ):
                refusal = JSONResponse({"error": "Unauthorized"}, status_code=401)  # vLLM's
                return await refusal(scope, receive, send)

            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if replayed:
                    return await receive()  # waits for the client to disconnect
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}

            if scope["path"] not in _GENERATION:
                return await api(scope, replay, send)
            self.running += 1
            try:
                return await api(scope, replay, send)
            finally:
                self.running -= 1

        return app

    async def _health(self) -> Response:
        return Response(status_code=200)  # vLLM's: 200, empty body

    async def _metrics(self) -> Response:
        lines = []
        for metric, value, about in (
            (
                "num_requests_running",
                self.running,
                "Number of requests in model execution batches.",
            ),
            ("num_requests_waiting", self.waiting, "Number of requests waiting to be processed."),
        ):
            lines += [
                f"# HELP vllm:{metric} {about}",
                f"# TYPE vllm:{metric} gauge",
                f'vllm:{metric}{{engine="0",model_name="{self.base_model}"}} {float(value)}',
            ]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    async def _models(self) -> Response:
        if not self.list_models:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        card = {"object": "model", "created": 0, "owned_by": "vllm", "permission": []}
        bases = [
            {
                **card,
                "id": name,
                "root": f"/models/{name}",
                "parent": None,
                "max_model_len": self.max_model_len,
            }
            for name in (self.base_model, *self.other_bases)
        ]
        loras = [
            {**card, "id": name, "root": path, "parent": self.base_model}
            for name, path in self.adapters.items()
        ]
        return JSONResponse({"object": "list", "data": bases + loras})

    async def _chat(self, request: Request) -> Response:
        return await self._generate(await request.json(), chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._generate(await request.json(), chat=False)

    async def _tokenize(self, request: Request) -> Response:
        if not self.tokenize:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        body = await request.json()
        if "prompt" not in body and "messages" not in body:
            return _error(400, "Either prompt or messages must be given.", "BadRequestError")
        count = _count(body)
        return JSONResponse(
            {"count": count, "max_model_len": self.max_model_len, "tokens": list(range(count))}
        )

    async def _load(self, request: Request) -> Response:
        body = await request.json()
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path:
            return _error(
                400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput"
            )
        if name in self.adapters and not body.get("load_inplace"):
            return _error(
                400,
                f"The lora adapter '{name}' has already been loaded. If you "
                "want to load the adapter in place, set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        if not self._adapter_dir_ok(path):
            return _error(
                400, f"Loading lora {name} failed: No adapter found for {path}", "BadRequestError"
            )
        self.adapters[name] = path
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    def _adapter_dir_ok(self, path: str) -> bool:
        if not self.check_lora_paths:
            return path.startswith("/adapters/")
        return (Path(path) / "adapter_config.json").is_file()

    async def _unload(self, request: Request) -> Response:
        name = (await request.json()).get("lora_name")
        if name not in self.adapters:
            return _error(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self.adapters[name]
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    # ------------------------------------------------------------ generation

    async def _generate(self, body: dict[str, Any], *, chat: bool) -> Response:
        mode = self._mode_of_next()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        failure = await self._failure(bool(body.get("stream")), mode)
        if failure is not None:
            return failure
        model = body.get("model")
        if model != self.base_model and model not in self.adapters:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        prompt_tokens, max_tokens = _count(body), body.get("max_tokens")
        if prompt_tokens + (max_tokens or 0) > self.max_model_len:
            return _error(
                400,
                f"This model's maximum context length is {self.max_model_len} "
                f"tokens. However, you requested {prompt_tokens + (max_tokens or 0)} "
                "tokens "
                f"({prompt_tokens} in the messages, {max_tokens} in the completion). "
                "Please reduce the length of the messages or completion.",
                "BadRequestError",
            )
        pieces, finish = self._pieces(model, max_tokens, body.get("stop") or [])
        call = None
        if chat and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            call = {
                "id": "call_fake_0",
                "type": "function",
                "function": {"name": name, "arguments": self.tool_arguments},
            }
            pieces, finish = [], "tool_calls"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces) or 3,
            "total_tokens": prompt_tokens + (len(pieces) or 3),
        }
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._events(
                model, chat, pieces, call, finish, usage if include else None, mode
            )
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(_answer(model, chat, "".join(pieces), call, finish, usage))

    def _pieces(self, model: str, max_tokens: int | None, stop: list[str]) -> tuple[list[str], str]:
        words = ([f"[{model}]"] if model != self.base_model else []) + self.reply.split()
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        finish = "stop"
        if max_tokens is not None and max_tokens < len(pieces):
            pieces, finish = pieces[:max_tokens], "length"
        text = "".join(pieces)
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:
            kept = text[: min(cuts)]
            pieces, finish = [p for p in kept.split(" ") if p], "stop"
            pieces = [p if i == 0 else " " + p for i, p in enumerate(pieces)]
        return pieces, finish

    async def _failure(self, stream: bool, mode: str) -> Response | None:
        if mode == "hang":
            await asyncio.sleep(self.hang_s)
        if mode == "error500":
            return _error(500, "The engine died unexpectedly.", "InternalServerError")
        if mode == "ratelimit":
            response = _error(429, "Too many requests: slow down.", "RateLimitError")
            response.headers["Retry-After"] = self.retry_after
            return response
        if mode == "forbidden":
            return _error(403, self.forbidden_message, "PermissionDeniedError")
        if mode == "unprocessable":
            detail = [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if mode == "garbage" and not stream:
            return Response("<html><body>502 Bad Gateway</body></html>", media_type="text/html")
        if mode == "not_sse":
            return StreamingResponse(
                _lines("<html>\n<body>proxy error</body>\n</html>\n"), media_type="text/html"
            )
        return None

    async def _events(
        self,
        model: str,
        chat: bool,
        pieces: list[str],
        call: Any,
        finish: str,
        usage: dict[str, int] | None,
        mode: str = "ok",
    ) -> AsyncIterator[str]:
        base: dict[str, Any] = {
            "id": "cmpl-fake",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        if usage is not None:
            base["usage"] = None  # as OpenAI sends it on every chunk but the last

        def event(payload: dict[str, Any]) -> str:
            return f"data: {json.dumps({**base, **payload})}\n\n"

        def piece(delta: dict[str, Any], text: str, done: str | None = None) -> str:
            choice = {"index": 0, "delta": delta} if chat else {"index": 0, "text": text}
            return event({"choices": [{**choice, "logprobs": None, "finish_reason": done}]})

        if mode == "garbage":
            yield "data: {not json\n\n"
            return
        if mode == "stall":
            await asyncio.sleep(self.hang_s)
        if mode == "error_event_first":
            error = {"message": "No capacity.", "type": "ServiceUnavailableError", "code": 503}
            yield f"data: {json.dumps({'error': error})}\n\n"
            yield "data: [DONE]\n\n"
            return
        if chat:
            yield piece({"role": "assistant", "content": ""}, "")
        for i, text in enumerate(pieces):
            if mode == "drop" and i == 2:
                raise ConnectionAbortedError("the fake server drops the connection")
            if mode == "error_event" and i == 1:
                error = {
                    "message": "The engine died mid-stream.",
                    "type": "InternalServerError",
                    "code": 500,
                }
                yield f"data: {json.dumps({'error': error})}\n\n"
                yield "data: [DONE]\n\n"
                return
            yield piece({"content": text}, text)
            await asyncio.sleep(0)
        if call is not None:
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            yield piece({"tool_calls": [{"index": 0, **head}]}, "")
            args = call["function"]["arguments"]
            for part in (args[:5], args[5:17], args[17:]):
                yield piece({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}, "")
        if mode == "eof":
            return
        if mode != "unfinished":
            yield piece({}, "", finish)
            if usage is not None:
                yield event({"choices": [], "usage": usage})
        yield "data: [DONE]\n\n"


_GENERATION = ("/v1/chat/completions", "/v1/completions")


def _answer(
    model: str, chat: bool, text: str, call: Any, finish: str, usage: dict[str, int]
) -> dict[str, Any]:
    if chat:
        message = {
            "role": "assistant",
            "content": text if call is None else None,
            "tool_calls": [call] if call else [],
        }
        choice: dict[str, Any] = {"index": 0, "message": message}
    else:
        choice = {"index": 0, "text": text}
    return {
        "id": "cmpl-fake",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{**choice, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def _count(body: dict[str, Any]) -> int:
    if body.get("messages") is not None:
        return sum(len(str(m.get("content") or "").split()) for m in body["messages"])
    return len(str(body.get("prompt") or "").split())


def _error(status: int, message: str, kind: str) -> JSONResponse:
    """vLLM's current error body."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": status}},
        status_code=status,
    )


async def _lines(text: str) -> AsyncIterator[str]:
    for line in text.splitlines(keepends=True):
        yield line


@contextlib.contextmanager
def running_server(app: Any, *, start_timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit it: without it, an answer written in two pieces waits for
    # the client's delayed ACK (about 40 ms a request on Linux)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="critical", lifespan="off", loop="asyncio", timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"fake-openai-{port}"
    )
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError(f"the fake server on port {port} did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
