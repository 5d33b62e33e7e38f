"""Light, fast checks of OpenAI request bodies at the gateway (the target checks the rest).

Unknown fields are refused as OpenAI refuses them; numbers out of OpenAI's ranges are
refused with the field named. Fields the gateway itself adds (``prompt``, ``variables``,
``context``) are allowed on top.
"""

from __future__ import annotations

from typing import Any

from genai.errors import ValidationError

__all__ = ["check_request"]

_COMMON = {
    "model",
    "stream",
    "stream_options",
    "temperature",
    "top_p",
    "n",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "user",
    "max_tokens",
    "context",  # passages for grounded answers (an extension the platform's targets read)
}
_FIELDS = {
    "chat": _COMMON
    | {
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "service_tier",
        "store",
        "metadata",
        "reasoning_effort",
        "modalities",
        "functions",
        "function_call",
        "audio",
        "prediction",
        "web_search_options",
        "prompt",
        "variables",
    },
    "completions": _COMMON | {"prompt", "echo", "suffix", "best_of"},
    "embeddings": {"model", "input", "encoding_format", "dimensions", "user"},
}
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
    "n": (1, 128),
    "max_tokens": (1, 10_000_000),
    "max_completion_tokens": (1, 10_000_000),
}


def check_request(endpoint: str, body: Any) -> str:
    """Check ``body`` for ``endpoint``; returns its ``model``."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    unknown = [key for key in body if key not in _FIELDS[endpoint]]
    if unknown:
        raise ValidationError(
            f"Unrecognized request argument supplied: {unknown[0]}", field=unknown[0]
        )
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("you must provide a model parameter", field="model")
    for name, (low, high) in _RANGES.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"'{name}' must be a number, not {value!r}", field=name)
        if not low <= value <= high:
            raise ValidationError(
                f"'{name}' is {value}, but must be between {low:g} and {high:g}", field=name
            )
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ValidationError("'stream' must be true or false", field="stream")
    _check_shape(endpoint, body)
    return model


def _check_shape(endpoint: str, body: dict[str, Any]) -> None:
    if endpoint == "chat":
        messages = body.get("messages")
        if body.get("prompt") is None and (not isinstance(messages, list) or not messages):
            raise ValidationError("'messages' must be a non-empty list", field="messages")
        if isinstance(messages, list) and not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
        ):
            raise ValidationError("each message needs a 'role'", field="messages")
    elif endpoint == "completions":
        if not isinstance(body.get("prompt"), (str, list)):
            raise ValidationError("'prompt' must be a string or a list of strings", field="prompt")
    else:
        value = body.get("input")
        if not (isinstance(value, str) or (isinstance(value, list) and value)):
            raise ValidationError("'input' must be a string or a non-empty list", field="input")
