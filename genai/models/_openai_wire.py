"""The OpenAI wire format: request bodies, streamed events, errors and headers."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from genai.errors import (
    ConfigError,
)
from genai.models._types import (
    ChatMessage,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
    TokenLogprob,
    ToolCall,
    TopLogprob,
)

log = logging.getLogger(__name__)


_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "content_filter": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "abort": "cancelled",
}


class _NoRoute(Exception):
    """The server lacks an optional route (/tokenize, /v1/models)."""


class _ToolCalls:
    """Assembles streamed tool-call deltas into whole calls, by their ``index``."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: list[dict[str, Any]]) -> None:
        for delta in deltas:
            index = delta.get("index")
            if not isinstance(index, int):  # servers that omit it send whole calls
                index = len(self._calls) if delta.get("id") or not self._calls else max(self._calls)
            slot = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            slot["id"] = delta.get("id") or slot["id"]
            function = delta.get("function") or {}
            slot["name"] += function.get("name") or ""
            slot["arguments"] += function.get("arguments") or ""

    def result(self) -> list[ToolCall] | None:
        if not self._calls:
            return None
        return [
            ToolCall(
                id=slot["id"] or f"call_{index}",
                function={"name": slot["name"], "arguments": slot["arguments"]},
            )
            for index, slot in sorted(self._calls.items())
        ]


class _StreamState:
    """What a stream has said so far: its finish reason, usage and tool calls."""

    def __init__(self) -> None:
        self.finish_reason: FinishReason | None = None
        self.usage: dict[str, int] = {}
        self.tools = _ToolCalls()
        self.done = False

    def feed(self, event: dict[str, Any], *, chat: bool) -> GenerationChunk | None:
        """The text chunk of one event (None when it has no text)."""
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.usage = {
                k: int(usage[k])
                for k in ("prompt_tokens", "completion_tokens")
                if isinstance(usage.get(k), int)
            }
        text = ""
        logprobs: list[TokenLogprob] | None = None
        for choice in event.get("choices") or []:
            if chat:
                delta = choice.get("delta") or {}
                text += delta.get("content") or ""
                self.tools.add(delta.get("tool_calls") or [])
                scored = _chat_logprobs(choice.get("logprobs"))
            else:
                text += choice.get("text") or ""
                entries = _text_logprobs(choice.get("logprobs"))
                scored = None if entries is None else [e for e in entries if e is not None]
            if scored:
                logprobs = (logprobs or []) + scored
            if choice.get("finish_reason"):
                self.finish_reason = _finish_reason(choice["finish_reason"])
        return GenerationChunk(text=text, logprobs=logprobs) if text or logprobs else None


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event; a line that is no SSE field is garbage."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
            continue
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
        elif field not in ("", "event", "id", "retry"):
            raise ValueError(f"not a server-sent event: {line[:80]!r}")
    if data:
        yield "\n".join(data)


def _chat_logprobs(raw: Any) -> list[TokenLogprob] | None:
    """Chat's ``logprobs.content`` as token entries."""
    if not isinstance(raw, dict) or not isinstance(raw.get("content"), list):
        return None
    return [
        TokenLogprob(
            token=str(e.get("token", "")),
            logprob=float(e.get("logprob", 0.0)),
            top=[
                TopLogprob(token=str(t.get("token", "")), logprob=float(t.get("logprob", 0.0)))
                for t in e.get("top_logprobs") or []
            ],
        )
        for e in raw["content"]
    ]


def _text_logprobs(raw: Any) -> list[TokenLogprob | None] | None:
    """Completions' ``logprobs`` (tokens, token_logprobs, top_logprobs) as token entries;
    an entry without a log-probability (a prompt's first token) is None."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), list):
        return None
    values = raw.get("token_logprobs") or []
    tops = raw.get("top_logprobs") or []
    out: list[TokenLogprob | None] = []
    for i, token in enumerate(raw["tokens"]):
        value = values[i] if i < len(values) else None
        top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
        out.append(
            None
            if value is None
            else TokenLogprob(
                token=str(token),
                logprob=float(value),
                top=sorted(
                    (TopLogprob(token=str(t), logprob=float(v)) for t, v in top.items()),
                    key=lambda entry: -entry.logprob,
                ),
            )
        )
    return out


def _generation(data: dict[str, Any], *, chat: bool, echo: bool = False) -> Generation:
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    scored: list[TokenLogprob] | None = None
    prompt_scored: list[TokenLogprob | None] | None = None
    prompt_text = None
    if chat:
        message = choice["message"]
        text = message.get("content") or ""
        raw_calls = message.get("tool_calls") or []
        calls = [ToolCall.model_validate(c) for c in raw_calls] or None
        scored = _chat_logprobs(choice.get("logprobs"))
    else:
        text, calls = choice.get("text") or "", None
        entries = _text_logprobs(choice.get("logprobs"))
        if echo:  # the prompt's tokens come first, in the text and in the entries
            cut = prompt_tokens if entries is not None else 0
            prompt_scored = entries[:cut] if entries is not None else None
            head = "".join(e.token for e in (entries or [])[cut:] if e is not None)
            prompt_text = text[: len(text) - len(head)] if head else text
            text = text[len(prompt_text) :]
            entries = entries[cut:] if entries is not None else None
        if entries is not None:
            scored = [e for e in entries if e is not None]
    return Generation(
        text=text,
        tool_calls=calls,
        finish_reason=_finish_reason(choice.get("finish_reason") or "stop"),
        prompt_tokens=prompt_tokens,
        completion_tokens=int(usage.get("completion_tokens") or 0),
        logprobs=scored,
        prompt_logprobs=prompt_scored,
        prompt_text=prompt_text,
    )


def _sampling(params: SamplingParams) -> dict[str, Any]:
    """The body fields of ``params``: those the caller set or that differ from OpenAI's
    defaults, so the server's own defaults (vLLM's generation config) apply to the rest."""
    fields: dict[str, Any] = {}
    for name, info in SamplingParams.model_fields.items():
        value = getattr(params, name)
        if value is None or value == []:
            continue
        if name in params.model_fields_set or value != info.get_default(call_default_factory=True):
            fields[name] = value
    return fields


def _message(message: ChatMessage) -> dict[str, Any]:
    return message.model_dump(mode="json", exclude_none=True)


def _finish_reason(value: str) -> FinishReason:
    return _FINISH.get(str(value), "stop")


def _estimate_tokens(request: GenerationRequest) -> int:
    if request.messages is None:
        return math.ceil(len(request.prompt or "") / 4)
    return 3 + sum(4 + math.ceil(len(m.text()) / 4) for m in request.messages)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _message_of(body: Any) -> str:
    """The error message of an upstream body: OpenAI's, vLLM's old and new, FastAPI's."""
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            if key in body:
                return _message_of(body[key])
        return json.dumps(body)[:300]
    if isinstance(body, list):
        return "; ".join(
            _message_of(item.get("msg", item) if isinstance(item, dict) else item) for item in body
        )[:500]
    return str(body).strip()[:500] or "(no message)"


def _retry_after(headers: httpx.Headers, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds, or an HTTP date compared with the
    wall-clock ``now()``) or ``retry-after-ms``."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if not value:
            continue
        try:
            return max(float(value) / scale, 0.0)
        except ValueError:
            pass
        try:
            return max(email.utils.parsedate_to_datetime(value).timestamp() - now(), 0.0)
        except (TypeError, ValueError):
            pass
    return None


def _root_url(base_url: str) -> httpx.URL:
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigError(f"base_url {base_url!r} is not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            f"base_url must be an http(s) URL such as http://127.0.0.1:8000, not {base_url!r}"
        )
    if url.query:
        raise ConfigError(
            f"base_url must not carry a query ({base_url!r}): pass credentials as api_key, "
            "and other parameters as headers"
        )
    path = url.path.rstrip("/").removesuffix("/v1")
    return url.copy_with(path=path or "/", fragment=None)
