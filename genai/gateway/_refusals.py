"""How the gateway words a refusal of a ``/v1`` body: pydantic's errors (from the models
of :mod:`genai.gateway._schemas`) turned into one OpenAI-style message and ``param``.

A value that fits none of a union's shapes reports at the deepest place any of them got
to (``messages[0].content[1].text``), or, when several got somewhere, the field as a whole
with the shapes it may take. Numbers out of range state the whole range.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from genai.errors import ValidationError

__all__ = ["explain"]

_ROLES = "'system', 'developer', 'user', 'assistant', 'tool' or 'function'"

#: How a field with several accepted shapes is described when a value fits none of them.
_SHAPES = {
    "prompt": "a string, an array of strings, an array of token ids (integers) or an array "
    "of such arrays",
    "input": "a string, an array of strings, an array of token ids (integers) or an array "
    "of such arrays",
    "content": "a string or an array of content parts (objects with a 'type')",
    "stop": "a string or an array of at most 4 strings",
    "tool_choice": "'none', 'auto', 'required' or an object naming a function",
    "function_call": "'none', 'auto' or an object naming a function",
}
_PHRASES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "none_required": "null",
}
_BOUND_TYPES = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


@functools.cache
def _bounds(model: type[BaseModel]) -> dict[str, tuple[float, float]]:
    """Each top-level number's (minimum, maximum), as the model's JSON schema states them."""
    out = {}
    for name, prop in model.model_json_schema()["properties"].items():
        for choice in [prop, *prop.get("anyOf", [])]:
            if "minimum" in choice and "maximum" in choice:
                out[name] = (choice["minimum"], choice["maximum"])
    return out


@dataclass(frozen=True)
class _Found:
    path: tuple[str | int, ...]  # where in the body (union branches and tags left out)
    branches: tuple[str, ...]  # the union branches (and tags) on the way
    fork: int | None  # where in the error's loc the first union branch is
    error: ErrorDetails


def explain(
    endpoint: str, model: type[BaseModel], body: dict[str, Any], errors: list[ErrorDetails]
) -> ValidationError:
    """One error, the one a caller most needs: an unknown field first (as OpenAI), then the
    first field in error, at the deepest place any of its alternatives reached."""
    for error in errors:
        if error["type"] == "extra_forbidden" and len(error["loc"]) == 1:
            name = str(error["loc"][0])
            return ValidationError(f"Unrecognized request argument supplied: {name}", field=name)
    first = _locate(body, errors[0])
    if first.fork is None:  # no union on the way: the error is what it says
        return _single(endpoint, model, first)
    # the errors of the first error's union (each alternative's), and nothing else
    fork = errors[0]["loc"][: first.fork]
    found = [_locate(body, e) for e in errors if e["loc"][: first.fork] == fork]
    deepest = max(len(f.path) for f in found)
    top = [f for f in found if len(f.path) == deepest]
    if len(top) == 1 or all(f.branches == top[0].branches for f in top):
        return _single(endpoint, model, top[0])  # one way in got furthest: its first problem
    if all(f.path == top[0].path for f in top):
        return _alternatives(body, top[0].path, [f.error for f in top])
    # alternatives that each got somewhere: the field as a whole fits none of its shapes
    return _alternatives(body, _common_prefix([f.path for f in top]), [f.error for f in found])


def _locate(body: dict[str, Any], error: ErrorDetails) -> _Found:
    node: Any = body
    path: list[str | int] = []
    branches: list[str] = []
    fork: int | None = None
    loc = error["loc"]
    for i, part in enumerate(loc):
        if _holds(node, part):
            node = node[part]
            path.append(part)
        elif i == len(loc) - 1 and isinstance(node, dict) and error["type"] == "missing":
            path.append(part)
        else:  # a branch of a union (or a tag of a tagged one): not a place
            fork = i if fork is None else fork
            branches.append(str(part))
    return _Found(tuple(path), tuple(branches), fork, error)


def _holds(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return isinstance(part, str) and part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _at(body: dict[str, Any], path: tuple[str | int, ...]) -> Any:
    node: Any = body
    for part in path:
        node = node[part] if _holds(node, part) else None
    return node


def _common_prefix(paths: list[tuple[str | int, ...]]) -> tuple[str | int, ...]:
    prefix: list[str | int] = []
    for parts in zip(*paths, strict=False):
        if any(p != parts[0] for p in parts):
            break
        prefix.append(parts[0])
    return tuple(prefix)


def _param(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _field(path: tuple[str | int, ...]) -> str:
    """The ``param`` of an error: the place, except that a message which is not a message
    at all is reported against ``messages``."""
    if len(path) == 2 and path[0] == "messages":
        return "messages"
    return _param(path)


def _single(endpoint: str, model: type[BaseModel], found: _Found) -> ValidationError:
    error, path = found.error, found.path
    kind, param, value = error["type"], _param(found.path), error.get("input")
    ctx = error.get("ctx") or {}
    if endpoint == "chat" and path == ("prompt",):  # the platform's own field
        message = '\'prompt\' names a registered prompt, e.g. "qa@production" or "qa@3"'
        return ValidationError(f"{message}, not {value!r}", field="prompt")
    if kind == "extra_forbidden":  # inside an object that names its fields (OpenAI's words)
        return ValidationError(f"Unknown parameter: '{param}'.", field=param)
    if kind == "missing":
        if path == ("model",):
            return ValidationError("you must provide a model parameter", field="model")
        return ValidationError(f"Missing required parameter: '{param}'.", field=param)
    if _past_64_bits(kind, value):
        value = "an integer past 64 bits"  # the JSON parser could only read it as a float
        return ValidationError(_out_of_bounds(model, path, value, ctx), field=param)
    if kind in _BOUND_TYPES:
        return ValidationError(_out_of_bounds(model, path, value, ctx), field=param)
    if kind in ("literal_error", "union_tag_invalid"):
        expected = ctx.get("expected") or ctx.get("expected_tags")
        if kind == "union_tag_invalid":
            tag = str(ctx.get("discriminator", "'type'")).strip("'")
            param, value = f"{param}.{tag}", ctx.get("tag")
        return ValidationError(
            f"Invalid value for '{param}': {value!r}. Supported values are: {expected}.",
            field=param,
        )
    if kind == "union_tag_not_found":
        tag = str(ctx.get("discriminator", "'type'")).strip("'")
        if path[:1] == ("messages",) and len(path) == 2:
            message = f"'{param}' needs a 'role': one of {_ROLES}"
        else:
            message = f"Missing required parameter: '{param}.{tag}'."
        return ValidationError(message, field=_field(path) if tag == "role" else f"{param}.{tag}")
    if kind == "string_pattern_mismatch":
        message = f"'{param}' is {value!r}, which does not match {ctx.get('pattern')}"
        return ValidationError(message, field=param)
    return _alternatives(None, path, [error])


def _alternatives(
    body: dict[str, Any] | None, path: tuple[str | int, ...], errors: list[ErrorDetails]
) -> ValidationError:
    """``'param' must be <what it may be>, not <what it is>``."""
    param = _param(path)
    value = errors[0].get("input") if body is None else _at(body, path)
    named = [p for p in path if isinstance(p, str)]
    shape = _SHAPES.get(named[-1]) if named and len(errors) > 1 else None
    if shape is None:
        phrases = list(dict.fromkeys(_phrase(e) for e in errors))
        shape = " or ".join(phrases)
    return ValidationError(f"'{param}' must be {shape}, not {_kind(value)}", field=_field(path))


def _phrase(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    kind = error["type"]
    if kind == "literal_error":
        return f"one of {ctx.get('expected')}"
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} items long"
    if kind in ("too_short", "string_too_short"):
        return "non-empty"
    return _PHRASES.get(kind, error["msg"].removeprefix("Input should be ").lower())


def _past_64_bits(kind: str, value: Any) -> bool:
    """Whether an integer was wanted and ``value`` is one the parser read as a float."""
    return kind == "int_type" and isinstance(value, float) and abs(value) >= 2**63


def _out_of_bounds(
    model: type[BaseModel], path: tuple[str | int, ...], value: Any, ctx: dict[str, Any]
) -> str:
    param = _param(path)
    bounds = _bounds(model).get(param) if len(path) == 1 else None
    if bounds is not None:
        low, high = (_number(b) for b in bounds)
        return f"'{param}' is {value}, but must be between {low} and {high}"
    limits = [f"{word} {_number(ctx[key])}" for key, word in _LIMIT_WORDS.items() if key in ctx]
    return f"'{param}' is {value}, but must be {' and '.join(limits)}"


_LIMIT_WORDS = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return f"an array of {len(value)} items" if value else "an empty array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
