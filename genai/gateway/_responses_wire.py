"""Targets that speak OpenAI's Responses API (``responses_api: true`` in a deployment's
target): the gateway's chat request (after its request stages) goes to the upstream's
``/v1/responses`` as a Responses request, and the answer (or its event stream) comes back
as a chat answer, so that response stages, the cache, usage and fallbacks to chat targets
work as for any target. A ``/v1/responses`` request reaches such a target as the caller
sent it (its conversation resolved here); nothing is stored upstream (``store: false``).

What a chat request can say and the Responses API cannot (``n`` > 1, ``stop``, ``seed``,
penalties, ``logit_bias``...) is refused by name rather than dropped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson

from genai.errors import ValidationError
from genai.gateway._spec import TargetSpec
from genai.gateway._targets import TargetFailed

__all__ = ["chat_answer", "chat_stream", "responses_body"]

_SAME = ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier", "metadata")
_LEFT = ("model", "messages", "stream_options", "store", "stream")


# ------------------------------------------------------------------ the request


def responses_body(chat: dict[str, Any], target: TargetSpec) -> dict[str, Any]:
    """The Responses request for a chat request (the target's model name already in it)."""
    body: dict[str, Any] = {"model": chat["model"], "input": _items(chat["messages"], target)}
    body["store"] = False
    if chat.get("stream"):
        body["stream"] = True
    for name, value in chat.items():
        if value is None or name in _LEFT:
            continue
        if name in _SAME:
            body[name] = value
        elif name in ("max_tokens", "max_completion_tokens"):
            body["max_output_tokens"] = value
        elif name == "tools":
            body["tools"] = [_tool(tool, target) for tool in value]
        elif name == "tool_choice":
            body["tool_choice"] = _choice(value)
        elif name == "response_format":
            body["text"] = {"format": _format(value)}
        elif name == "reasoning_effort":
            body["reasoning"] = {"effort": value}
        elif name == "logprobs":
            if value:
                body["include"] = ["message.output_text.logprobs"]
        elif name == "top_logprobs":
            body["top_logprobs"] = value
        elif not (name == "n" and value == 1):
            raise _cannot(name, target)
    return body


def _cannot(field: str, target: TargetSpec) -> ValidationError:
    return ValidationError(
        f"'{field}' cannot be sent to this deployment's target {target.name!r}: it speaks "
        "OpenAI's Responses API, which has no such field",
        field=field,
    )


def _items(messages: list[dict[str, Any]], target: TargetSpec) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, content = message["role"], message.get("content")
        if role in ("system", "developer", "user"):
            parts = _parts(content, f"messages[{i}]", target)
            items.append({"type": "message", "role": role, "content": parts})
        elif role == "assistant":
            text = _text(content)
            if text:
                items.append({"type": "message", "role": "assistant", "content": text})
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                items.append(
                    {
                        "type": "function_call",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments") or "",
                    }
                )
        elif role == "tool":
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": message.get("tool_call_id"),
                    "output": _text(content),
                }
            )
        else:
            raise _cannot(f"messages[{i}].role", target)
    return items


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _parts(content: Any, where: str, target: TargetSpec) -> Any:
    if not isinstance(content, list):
        return content
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url":
            image = part["image_url"]
            given = {"type": "input_image", "image_url": image.get("url")}
            parts.append({**given, "detail": image.get("detail") or "auto"})
        elif kind == "file":
            names = ("file_data", "file_id", "filename")
            parts.append(
                {"type": "input_file", **{k: v for k, v in part["file"].items() if k in names}}
            )
        else:
            raise _cannot(f"{where}.content[{j}].type", target)
    return parts


def _tool(tool: dict[str, Any], target: TargetSpec) -> dict[str, Any]:
    function = tool.get("function")
    if tool.get("type") != "function" or not isinstance(function, dict):
        raise _cannot("tools", target)
    names = ("name", "description", "parameters", "strict")
    return {"type": "function", **{k: function[k] for k in names if k in function}}


def _choice(choice: Any) -> Any:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def _format(form: dict[str, Any]) -> dict[str, Any]:
    if form.get("type") != "json_schema":
        return {"type": form.get("type")}
    return {"type": "json_schema", **(form.get("json_schema") or {})}


# ------------------------------------------------------------------ the answer


def chat_answer(raw: bytes, target: TargetSpec) -> dict[str, Any]:
    """The chat completion for a Responses answer's body (a :class:`TargetFailed` when it is
    not one, or the upstream says it failed: another target may answer)."""
    try:
        response = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TargetFailed(
            f"{target.name} answered with something that is not JSON", "garbage"
        ) from None
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise TargetFailed(
            f"{target.name} answered with JSON that is not a Responses API response", "garbage"
        )
    if response.get("status") == "failed":
        error = response.get("error") or {}
        raise TargetFailed(f"{target.name} failed: {error.get('message', 'no reason')}", "failed")
    text, refusal = "", ""
    calls: list[dict[str, Any]] = []
    logprobs: list[Any] = []
    for item in response["output"]:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    text += part.get("text") or ""
                    logprobs.extend(part.get("logprobs") or [])
                elif part.get("type") == "refusal":
                    refusal += part.get("refusal") or ""
        elif item.get("type") == "function_call":
            calls.append(_call(item))
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    message["refusal"] = refusal or None
    if calls:
        message["tool_calls"] = calls
    choice = {
        "index": 0,
        "message": message,
        "logprobs": {"content": logprobs} if logprobs else None,
        "finish_reason": _finish(response, bool(calls)),
    }
    return {
        "id": response.get("id") or "",
        "object": "chat.completion",
        "created": int(response.get("created_at") or 0),
        "model": response.get("model"),
        "choices": [choice],
        "usage": _usage(response.get("usage")),
    }


def _call(item: dict[str, Any]) -> dict[str, Any]:
    function = {"name": item.get("name") or "", "arguments": item.get("arguments") or ""}
    return {"id": item.get("call_id") or item.get("id"), "type": "function", "function": function}


def _finish(response: dict[str, Any], called: bool) -> str:
    if called:
        return "tool_calls"
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete":
        return "content_filter" if reason == "content_filter" else "length"
    return "stop"


def _usage(usage: Any) -> dict[str, Any] | None:
    if not isinstance(usage, dict):
        return None
    given, made = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {
        "prompt_tokens": given,
        "completion_tokens": made,
        "total_tokens": usage.get("total_tokens") or given + made,
        "prompt_tokens_details": {
            "cached_tokens": (usage.get("input_tokens_details") or {}).get("cached_tokens") or 0
        },
        "completion_tokens_details": {
            "reasoning_tokens": (usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            or 0
        },
    }


# ------------------------------------------------------------------ the stream


async def chat_stream(events: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    """A Responses event stream's bytes as a chat completion's stream (``[DONE]`` once the
    response is completed; an error event if it failed; nothing more if it just ends)."""
    chunks = _Chunks()
    buffer = b""
    try:
        async for data in events:
            buffer += data.replace(b"\r\n", b"\n")
            while (end := buffer.find(b"\n\n")) >= 0:
                event, buffer = buffer[:end], buffer[end + 2 :]
                lines = [x[5:].strip() for x in event.split(b"\n") if x.startswith(b"data:")]
                payload = b"\n".join(lines)
                if not lines or payload == b"[DONE]" or chunks.ended:
                    continue
                try:
                    parsed = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    yield b"data: " + payload + b"\n\n"  # the relay refuses it as not JSON
                    continue
                for chunk in chunks.of(parsed):
                    yield chunk
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


class _Chunks:
    """Responses events → chat chunks (SSE bytes)."""

    def __init__(self) -> None:
        self.base: dict[str, Any] = {"id": "", "object": "chat.completion.chunk", "created": 0}
        self.calls: dict[Any, int] = {}  # a function call item's id → its tool-call index
        self.ended = False

    def of(self, event: Any) -> list[bytes]:
        if not isinstance(event, dict):
            return []
        kind = event.get("type")
        if kind == "response.created":
            response = event.get("response") or {}
            self.base.update(
                id=response.get("id") or "",
                created=int(response.get("created_at") or 0),
                model=response.get("model"),
            )
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            logprobs = event.get("logprobs") or []
            return [self._chunk({"content": event.get("delta") or ""}, logprobs=logprobs)]
        if kind == "response.refusal.delta":
            return [self._chunk({"refusal": event.get("delta") or ""})]
        if kind == "response.output_item.added":
            return self._call_added(event.get("item") or {})
        if kind == "response.function_call_arguments.delta":
            index = self.calls.get(event.get("item_id"), self.calls.get(event.get("output_index")))
            if index is None:
                return []
            piece = {"index": index, "function": {"arguments": event.get("delta") or ""}}
            return [self._chunk({"tool_calls": [piece]})]
        if kind in ("response.completed", "response.incomplete"):
            return self._end(event.get("response") or {})
        if kind in ("error", "response.failed"):
            self.ended = True
            error = event if kind == "error" else (event.get("response") or {}).get("error") or {}
            body = {
                "error": {
                    "message": str(error.get("message") or "the upstream response failed"),
                    "type": "server_error",
                    "param": None,
                    "code": error.get("code"),
                }
            }
            return [b"data: " + orjson.dumps(body) + b"\n\n"]
        return []

    def _call_added(self, item: dict[str, Any]) -> list[bytes]:
        if item.get("type") != "function_call":
            return []
        index = len(self.calls)
        self.calls[item.get("id")] = index
        head = {
            "index": index,
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name") or "", "arguments": item.get("arguments") or ""},
        }
        return [self._chunk({"tool_calls": [head]})]

    def _end(self, response: dict[str, Any]) -> list[bytes]:
        self.ended = True
        finish = _finish(response, bool(self.calls))
        out = [self._chunk({}, finish=finish)]
        usage = _usage(response.get("usage"))
        if usage is not None:
            out.append(
                b"data: " + orjson.dumps({**self.base, "choices": [], "usage": usage}) + b"\n\n"
            )
        out.append(b"data: [DONE]\n\n")
        return out

    def _chunk(
        self, delta: dict[str, Any], *, finish: str | None = None, logprobs: list[Any] | None = None
    ) -> bytes:
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": {"content": logprobs} if logprobs else None,
            "finish_reason": finish,
        }
        return b"data: " + orjson.dumps({**self.base, "choices": [choice]}) + b"\n\n"
