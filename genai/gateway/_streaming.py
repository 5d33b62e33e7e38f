"""Relaying an SSE stream from a target to the client, event by event, never buffered.

Most events pass through as bytes with one change: the response id becomes the gateway's
own (so ``/v1/feedback`` can name it). An event is decoded only when it has to be: the one
carrying usage (kept for the ledger, and dropped when the client did not ask for it), and
every event when a response stage filters the text or the answer is kept (cache, shadow).
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any

import orjson

from genai.errors import BackendError
from genai.gateway._stages import StreamFilter, ToolCallFilter

__all__ = [
    "STANDARD_FIELDS",
    "SseRelay",
    "extensions",
    "first_event",
    "replay_events",
    "replayed",
]

_DONE = b"[DONE]"
_USAGE = re.compile(rb'"usage"\s*:\s*\{')  # a usage object, however the JSON is spaced
_HEAD = ("id", "object", "created", "model", "system_fingerprint", "service_tier")
#: OpenAI's own top-level fields; any other field is a target's extension (citations)
STANDARD_FIELDS = frozenset((*_HEAD, "choices", "usage", "prompt_filter_results"))


def extensions(body: dict[str, Any]) -> dict[str, Any]:
    """The top-level fields of a response or chunk that OpenAI does not define."""
    return {k: v for k, v in body.items() if k not in STANDARD_FIELDS}


class SseRelay:
    def __init__(
        self,
        *,
        response_id: str,
        client_wants_usage: bool,
        model: str | None = None,
        filters: Sequence[StreamFilter] = (),
        make_filters: Callable[[], Sequence[StreamFilter]] | None = None,
        keep_text: bool = False,
    ) -> None:
        self._id = response_id.encode()
        self._upstream_id: bytes | None = None
        self._model = model  # the model the caller named (not the upstream's name for it)
        self._renames: list[tuple[bytes, bytes]] = []
        self._wants_usage = client_wants_usage
        # one chain of filters per choice (n > 1 interleaves the choices' pieces)
        self._make = make_filters
        first = list(make_filters()) if make_filters is not None else list(filters)
        self._chains: dict[int, list[StreamFilter]] = {0: first}
        self._keep = keep_text or bool(first)
        self._buffer = b""
        self._open_tools: dict[int, set[int]] = {}  # choice → its tool calls seen so far
        self._last_chunk: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.error: dict[str, Any] | None = None
        self.done = False
        self.extensions: dict[str, Any] = {}  # a target's own top-level fields (citations)
        self.parts: list[str] = []  # what the client got (after the filters)
        self.raw_parts: list[str] = []  # what the target sent (before them)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def raw_text(self) -> str:
        """The target's own text: what a cache or a shadow comparison keeps (a response
        stage runs again on a cached answer, and a filter may restore personal data)."""
        return "".join(self.raw_parts)

    def _filters(self, index: int) -> list[StreamFilter]:
        chain = self._chains.get(index)
        if chain is None:
            chain = self._chains[index] = list(self._make()) if self._make else []
        return chain

    def feed(self, data: bytes) -> list[bytes]:
        """Events ready to send, from the next bytes of the upstream stream."""
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return out
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            out.extend(self._event(event))

    def _event(self, event: bytes) -> list[bytes]:
        payload = _data_of(event)
        if payload is None:
            return []  # comments and keep-alives stop here
        if payload == _DONE:
            self.done = True
            return [*self._flush(), b"data: [DONE]\n\n"]
        if (
            self._upstream_id is None
            or self._keep
            or _USAGE.search(payload)
            or b'"error"' in payload
        ):
            return self._decoded(payload)
        for old, new in self._renames:
            payload = payload.replace(old, new)
        return [b"data: " + payload + b"\n\n"]

    def _decoded(self, payload: bytes) -> list[bytes]:
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise BackendError(
                "the target sent an event that is not JSON", backend="gateway"
            ) from None
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            self.error = (
                chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk)}
            )
            return [_event(chunk)]
        if self._upstream_id is None and isinstance(chunk.get("id"), str):
            self._upstream_id = chunk["id"].encode()
            self._renames.append((self._upstream_id, self._id))
            upstream_model = chunk.get("model")
            if self._model and isinstance(upstream_model, str) and upstream_model != self._model:
                self._renames.append((orjson.dumps(upstream_model), orjson.dumps(self._model)))
        chunk["id"] = self._id.decode()
        self.extensions.update(extensions(chunk))
        if self._model and "model" in chunk:
            chunk["model"] = self._model
        if chunk.get("usage"):
            self.usage = chunk["usage"]
            if not self._wants_usage:
                if not chunk.get("choices"):
                    return []
                chunk.pop("usage")
        out: list[bytes] = []
        for choice in chunk.get("choices") or []:
            out.extend(self._choice(chunk, choice))
        return [*out, _event(chunk)]

    def _choice(self, chunk: dict[str, Any], choice: dict[str, Any]) -> list[bytes]:
        """Filter the choice's text in place; held-back text is released before it ends."""
        delta = choice.get("delta")
        holder, key = (delta, "content") if isinstance(delta, dict) else (choice, "text")
        text = holder.get(key) if isinstance(holder, dict) else None
        index = choice.get("index", 0) if isinstance(choice.get("index", 0), int) else 0
        filters = self._filters(index) if self._keep else []
        early: list[bytes] = []
        if isinstance(text, str):
            if self._keep:
                self.raw_parts.append(text)
            for f in filters:
                text = f.feed(text)
            holder[key] = text
            if self._keep:
                self.parts.append(text)
        if isinstance(delta, dict) and isinstance(delta.get("tool_calls"), list):
            self._tool_calls(index, filters, delta["tool_calls"])
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
            early.extend(self._release_choice(chunk, choice, index))
        self._last_chunk = chunk
        return early

    def _tool_calls(self, index: int, filters: list[StreamFilter], calls: list[Any]) -> None:
        """Pass each tool call's argument pieces through the filters that rewrite them."""
        tool_filters = [f for f in filters if isinstance(f, ToolCallFilter)]
        if not tool_filters:
            return
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                continue
            call_index = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
            arguments = function["arguments"]
            for f in tool_filters:
                arguments = f.tool_arguments(call_index).feed(arguments)
            function["arguments"] = arguments
            self._open_tools.setdefault(index, set()).add(call_index)

    def _release_choice(
        self, chunk: dict[str, Any], choice: dict[str, Any], index: int
    ) -> list[bytes]:
        """What the choice's filters held back, as events sent before its last one."""
        filters = self._filters(index) if self._keep else []
        out: list[bytes] = []
        for call_index in sorted(self._open_tools.pop(index, set())):
            tool_filters = [f for f in filters if isinstance(f, ToolCallFilter)]
            rest = _drain([f.tool_arguments(call_index) for f in tool_filters])
            if rest:
                out.append(_event(_tool_chunk(chunk, choice, call_index, rest)))
        rest = _drain(filters)
        if rest:
            if self._keep:
                self.parts.append(rest)
            out.insert(0, _event(_text_chunk(chunk, choice, rest)))
        return out

    def _flush(self) -> list[bytes]:
        if self._last_chunk is None:
            return []
        template = (self._last_chunk.get("choices") or [{"index": 0}])[0]
        out: list[bytes] = []
        for index in list(self._chains):
            choice = {**template, "index": index}
            out.extend(self._release_choice(self._last_chunk, choice, index))
        return out


def _drain(filters: Sequence[StreamFilter]) -> str:
    """Flush a chain of filters: each one's rest goes through the filters after it."""
    rest = ""
    for index, f in enumerate(filters):
        held = f.flush()
        for later in filters[index + 1 :]:
            held = later.feed(held)
        rest += held
    return rest


def _tool_chunk(
    template: dict[str, Any], choice: dict[str, Any], call_index: int, arguments: str
) -> dict[str, Any]:
    body = {k: template[k] for k in _HEAD if k in template}
    delta = {"tool_calls": [{"index": call_index, "function": {"arguments": arguments}}]}
    part = {
        "index": choice.get("index", 0),
        "delta": delta,
        "logprobs": None,
        "finish_reason": None,
    }
    return {**body, "choices": [part]}


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:].lstrip() for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def _event(chunk: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def _text_chunk(template: dict[str, Any], choice: dict[str, Any], text: str) -> dict[str, Any]:
    body = {k: template[k] for k in _HEAD if k in template}
    index = choice.get("index", 0)
    if "delta" in choice:
        part = {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    else:
        part = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
    return {**body, "choices": [part]}


def replay_events(response: dict[str, Any], *, include_usage: bool, piece: int = 24) -> list[bytes]:
    """A whole (cached) answer as the stream OpenAI would have sent for it; the answer's
    own fields (:func:`extensions`) ride on the chunk that ends each choice."""
    chat = response.get("object") == "chat.completion"
    extra = extensions(response)
    base = {
        "id": response.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": response.get("created"),
        "model": response.get("model"),
        "system_fingerprint": None,
    }
    events = []
    for choice in response.get("choices", []):
        index = choice.get("index", 0)
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        text = text or ""
        if chat:
            events.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": index,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
        for start in range(0, len(text), piece):
            part = text[start : start + piece]
            delta = {"delta": {"content": part}} if chat else {"text": part}
            events.append(
                {
                    **base,
                    "choices": [{"index": index, **delta, "logprobs": None, "finish_reason": None}],
                }
            )
        end: dict[str, Any] = {"delta": {}} if chat else {"text": ""}
        events.append(
            {
                **base,
                **extra,
                "choices": [
                    {
                        "index": index,
                        **end,
                        "logprobs": None,
                        "finish_reason": choice.get("finish_reason", "stop"),
                    }
                ],
            }
        )
    if include_usage and response.get("usage"):
        events.append({**base, "choices": [], "usage": response["usage"]})
    return [_event(e) for e in events] + [b"data: [DONE]\n\n"]


async def first_event(chunks: AsyncIterator[bytes], *, limit: int = 1 << 20) -> tuple[bytes, str]:
    """Read a target's stream up to the end of its first data event: the bytes read, and
    what is wrong with that start ("" when nothing is). A stream whose first event is not
    a JSON object, is an error object, or that ends (or runs past ``limit`` bytes) first
    has failed before answering anything: the gateway may still try another target."""
    head = b""
    async for data in chunks:
        head += data
        while True:
            text = head.replace(b"\r\n", b"\n")
            end = text.find(b"\n\n", 0)
            if end < 0:
                break
            payload = _first_data(text)
            if payload is None:  # only comments and keep-alives so far
                if len(text) > limit:
                    return head, "sent no event in its first bytes"
                break
            return head, _start_problem(payload)
        if len(head) > limit:
            return head, "sent no event in its first bytes"
    return head, "closed the stream before its first event"


def _first_data(text: bytes) -> bytes | None:
    for event in text.split(b"\n\n")[:-1]:
        payload = _data_of(event)
        if payload is not None:
            return payload
    return None


def _start_problem(payload: bytes) -> str:
    if payload == _DONE:
        return ""
    try:
        chunk = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "sent an event that is not JSON"
    if not isinstance(chunk, dict):
        return "sent an event that is not a JSON object"
    if "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else error
        return f"answered with an error event: {str(message)[:200]}"
    return ""


async def replayed(head: bytes, rest: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """``head`` (what :func:`first_event` read), then the rest of the stream."""
    try:
        if head:
            yield head
        async for data in rest:
            yield data
    finally:
        aclose = getattr(rest, "aclose", None)
        if aclose is not None:
            await aclose()
