"""OpenAI's Responses API over chat completions: a Responses request as a chat request, a
chat answer as a Response object, and a chat stream as the Responses API's events.

Both servers use it (``genai serve`` and the gateway, whose targets speak chat): the request
is checked (:mod:`genai.serving._responses_schema`), turned into a chat request with
:func:`chat_request` (``instructions`` → a system message, ``input`` items → messages,
function tools → chat tools, ``text.format`` → ``response_format``), answered by the
server's own chat path, and the answer turned back with :func:`response_object` or, event
by event, with :class:`ResponsesStream`.

Ids follow the answer's: ``resp_<hex>`` for the response, ``msg_<hex>`` for its message
and ``fc_<hex>_<n>`` for its function calls, streamed or not.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from genai.errors import NotFoundError, ValidationError

__all__ = [
    "ResponseNotFound",
    "chat_request",
    "input_items",
    "response_object",
    "response_param",
    "skeleton",
    "usage_of",
]


class ResponseNotFound(NotFoundError):
    """No such stored response (or one of another project: worded the same)."""

    def __init__(self, response_id: str, *, previous: bool = False) -> None:
        what = "Previous response" if previous else "Response"
        super().__init__(f"{what} with id '{response_id}' not found.")
        self.field = "previous_response_id" if previous else None


# ------------------------------------------------------------------ request → chat


def input_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's own input items (a text input is one user message), as kept for a
    conversation that goes on with ``previous_response_id``."""
    given = body.get("input")
    if given is None:
        return []
    if isinstance(given, str):
        return [{"type": "message", "role": "user", "content": given}]
    return [item if "type" in item else {"type": "message", **item} for item in given]


def chat_request(body: dict[str, Any], history: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """The chat request for a checked Responses request ``body``; ``history`` is the stored
    conversation it goes on from (input and output items of earlier responses)."""
    earlier = list(history)
    items = [*earlier, *input_items(body)]
    if not items:
        raise ValidationError(
            "Missing required parameter: 'input' (or 'previous_response_id').", field="input"
        )
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    messages.extend(_messages(items, offset=len(earlier)))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "service_tier"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_completion_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [_chat_tool(tool) for tool in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif choice is not None:
        chat["tool_choice"] = choice
    form = (body.get("text") or {}).get("format")
    if form is not None and form["type"] != "text":
        chat["response_format"] = _response_format(form)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("top_logprobs") or "message.output_text.logprobs" in (body.get("include") or []):
        chat["logprobs"] = True
        if body.get("top_logprobs"):
            chat["top_logprobs"] = body["top_logprobs"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if k in tool}
    return {"type": "function", "function": {k: v for k, v in function.items() if v is not None}}


def _response_format(form: dict[str, Any]) -> dict[str, Any]:
    if form["type"] != "json_schema":
        return {"type": form["type"]}
    schema = {k: form[k] for k in ("name", "description", "schema", "strict") if k in form}
    kept = {k: v for k, v in schema.items() if v is not None}
    return {"type": "json_schema", "json_schema": kept}


def _messages(items: list[dict[str, Any]], *, offset: int) -> list[dict[str, Any]]:
    """Chat messages for input items; consecutive function calls (and the assistant message
    right before them) are one assistant message, as chat has it."""
    messages: list[dict[str, Any]] = []
    calls: set[str] = set()
    for i, item in enumerate(items):
        where = f"input[{i - offset}]" if i >= offset else "previous_response_id"
        kind = item.get("type") or "message"
        if kind == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            calls.add(item["call_id"])
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            if item["call_id"] not in calls:
                raise ValidationError(
                    f"No tool call found for function call output with call_id {item['call_id']}.",
                    field=f"{where}.call_id",
                )
            output = item["output"]
            text = output if isinstance(output, str) else "".join(p["text"] for p in output)
            messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": text})
        else:
            messages.append(_message(item, where))
    return messages


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role, content = item["role"], item["content"]
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part["type"]
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part["text"]})
            continue
        if kind == "refusal" and role == "assistant":
            parts.append({"type": "refusal", "refusal": part["refusal"]})
            continue
        if kind == "refusal" or role != "user":
            holder = "an assistant" if kind == "refusal" else "a user"
            raise ValidationError(
                f"'{where}.content[{j}]' is a {kind} part, which a {role} message cannot "
                f"hold: only {holder} message holds them",
                field=f"{where}.content[{j}].type",
            )
        if kind == "input_image":
            image = {"url": part["image_url"]}
            if part.get("detail"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:  # input_file
            names = ("file_data", "file_id", "filename")
            parts.append({"type": "file", "file": {k: part[k] for k in names if part.get(k)}})
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": parts[0]["text"]}
    return {"role": role, "content": parts}


#: Where a chat request's field came from in the Responses request.
_PARAMS = {
    "messages": "input",
    "response_format": "text.format",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "reasoning_effort": "reasoning.effort",
    "logprobs": "top_logprobs",
    "stream_options": "stream",
}


def response_param(param: Any) -> Any:
    """The Responses request's name of a chat request's field (``messages[2].content`` →
    ``input``, ``response_format.json_schema`` → ``text.format``, ``tools[0].function.name``
    → ``tools[0].name``), for an error the chat path raised."""
    if not isinstance(param, str):
        return param
    head = param.split(".", 1)[0].split("[", 1)[0]
    if head in _PARAMS:
        return _PARAMS[head]
    return param.replace(".function.", ".").replace(".function", "")


# ------------------------------------------------------------------ chat answer → response


def skeleton(body: dict[str, Any], *, response_id: str, created_at: int) -> dict[str, Any]:
    """The response to ``body`` before its output: what it echoes of the request."""
    text = body.get("text") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "model": body["model"],
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "service_tier": body.get("service_tier") or "default",
        "store": body.get("store") is not False,
        "temperature": 1.0 if body.get("temperature") is None else body["temperature"],
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "top_logprobs": body.get("top_logprobs") or 0,
        "top_p": 1.0 if body.get("top_p") is None else body["top_p"],
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
    }


def response_object(base: dict[str, Any], chat: dict[str, Any], *, suffix: str) -> dict[str, Any]:
    """The whole Response for a chat completion ``chat``: ``base`` (:func:`skeleton`) with
    the answer's output items, status and usage; fields a target adds to its answer (a
    knowledge bot's ``citations``) are kept."""
    choices = chat.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    status, incomplete = finish_status(choice.get("finish_reason"))
    item_status = "incomplete" if status == "incomplete" else "completed"
    logprobs = (choice.get("logprobs") or {}).get("content") or []
    output = _output_items(message, suffix, item_status, logprobs)
    extra = {k: v for k, v in chat.items() if k not in _CHAT_FIELDS and k not in base}
    if status == "completed":
        extra["completed_at"] = int(time.time())
    return {
        **base,
        **extra,
        "status": status,
        "incomplete_details": incomplete,
        "output": output,
        "service_tier": chat.get("service_tier") or base["service_tier"],
        "usage": usage_of(chat.get("usage")),
    }


_CHAT_FIELDS = frozenset(
    {"id", "object", "created", "model", "choices", "usage", "system_fingerprint"}
    | {"service_tier", "prompt_filter_results"}
)


def finish_status(finish_reason: Any) -> tuple[str, dict[str, str] | None]:
    """A response's status and ``incomplete_details`` for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def _output_items(
    message: dict[str, Any], suffix: str, status: str, logprobs: list[Any]
) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    refusal = message.get("refusal")
    calls = list(message.get("tool_calls") or [])
    if isinstance(message.get("function_call"), dict):  # the legacy single function call
        calls.append({"id": f"call_{suffix}", "function": message["function_call"]})
    items: list[dict[str, Any]] = []
    if content or refusal or not calls:
        parts: list[dict[str, Any]] = []
        if content or not refusal:
            parts.append(output_text(content or "", logprobs))
        if refusal:
            parts.append({"type": "refusal", "refusal": refusal})
        items.append(
            {
                "id": f"msg_{suffix}",
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": parts,
            }
        )
    for n, call in enumerate(calls):
        function = call.get("function") or {}
        items.append(
            {
                "id": f"fc_{suffix}_{n}",
                "type": "function_call",
                "status": "completed",
                "call_id": call.get("id") or f"call_{suffix}_{n}",
                "name": function.get("name") or "",
                "arguments": function.get("arguments") or "",
            }
        )
    return items


def output_text(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def usage_of(usage: Any) -> dict[str, Any] | None:
    """A chat usage object in the Responses API's words."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details") or {}
    cached, written = details.get("cached_tokens") or 0, details.get("cache_write_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached), "cache_write_tokens": int(written)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }
