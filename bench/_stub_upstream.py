"""A fast OpenAI-compatible stub upstream for gateway benchmarks (not a bottleneck).

    .venv/bin/python bench/_stub_upstream.py --port 18000

Raw asyncio protocol on uvloop with httptools parsing HTTP/1.1 (keep-alive). Routes:
``POST /v1/chat/completions`` returns a fixed small ``chat.completion`` with usage (an SSE
stream of ``chat.completion.chunk`` events when ``"stream": true``), ``GET /v1/models``
lists the model, ``GET /health`` answers 200. Any other path is a 404 in OpenAI's error
shape. ``--delay-ms`` adds a fixed upstream latency (0 by default).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import time

import httptools
import orjson

MODEL = "stub-model"
ANSWER = "Paris is the capital of France."
USAGE = {"prompt_tokens": 25, "completion_tokens": 8, "total_tokens": 33}
_ids = itertools.count(1)


def _response(status: int, body: bytes, content_type: bytes, keep_alive: bool) -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}.get(status, b"Error")
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
        status,
        reason,
        content_type,
        len(body),
        b"" if keep_alive else b"Connection: close\r\n",
    )
    return head + body


def _error(message: str, kind: str = "invalid_request_error") -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "code": None}})


def chat_completion(model: str) -> bytes:
    return orjson.dumps(
        {
            "id": f"chatcmpl-stub{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    )


def chat_stream(model: str, include_usage: bool) -> bytes:
    ident, created = f"chatcmpl-stub{next(_ids)}", int(time.time())

    def chunk(delta: dict, finish: str | None, usage: dict | None = None) -> bytes:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if delta is not None
            else [],
        }
        if usage is not None:
            body["usage"] = usage
        return b"data: " + orjson.dumps(body) + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""}, None)]
    first, rest = ANSWER.split(" ", 1)
    parts += [chunk({"content": first}, None), chunk({"content": " " + rest}, None)]
    parts.append(chunk({}, "stop"))
    if include_usage:
        parts.append(chunk(None, None, USAGE))  # type: ignore[arg-type]
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


MODELS = orjson.dumps(
    {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0, "owned_by": "stub"}]}
)
JSON = b"application/json"


class StubProtocol(asyncio.Protocol):
    delay = 0.0

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(_response(400, _error("bad HTTP request"), JSON, False))
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        data = self.handle(self.parser.get_method(), self.url.split(b"?", 1)[0], keep)
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self._send, data, keep)
        else:
            self._send(data, keep)

    def _send(self, data: bytes, keep: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if not keep:
            self.transport.close()

    def handle(self, method: bytes, path: bytes, keep: bool) -> bytes:
        if method == b"POST" and path in (b"/v1/chat/completions", b"/chat/completions"):
            try:
                request = orjson.loads(b"".join(self.body))
                model = str(request.get("model") or MODEL)
            except (orjson.JSONDecodeError, AttributeError):
                return _response(400, _error("body is not a JSON object"), JSON, keep)
            if request.get("stream"):
                usage = bool((request.get("stream_options") or {}).get("include_usage"))
                return _response(200, chat_stream(model, usage), b"text/event-stream", keep)
            return _response(200, chat_completion(model), JSON, keep)
        if method == b"GET" and path in (b"/v1/models", b"/models"):
            return _response(200, MODELS, JSON, keep)
        if method == b"GET" and path == b"/health":
            return _response(200, b'{"status":"ok"}', JSON, keep)
        return _response(404, _error(f"no route {path.decode(errors='replace')}"), JSON, keep)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(StubProtocol, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"stub upstream on http://{host}:{port}/v1", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    args = parser.parse_args()
    StubProtocol.delay = args.delay_ms / 1000
    try:
        from uvloop import run
    except ImportError:  # plain asyncio still works, just slower
        run = asyncio.run  # type: ignore[assignment]
    run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
