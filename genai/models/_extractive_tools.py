"""Tool calls without weights: how the ``extractive`` backend takes an agent's turns.

An agent's model must choose a tool, fill in its arguments, and then answer from what the
tool returned. The extractive backend does each of these the way it answers questions, by
embedding similarity and quoting, never by generating text:

- **choose**: the tool whose name and description are most similar to the question (the
  last user message), if that similarity reaches ``min_tool_similarity``; otherwise the
  search tool, if the request has one (a tool whose one required argument is a query),
  since a question that no tool's description matches is a question for the documents.
  ``tool_choice`` ``required`` takes the most similar tool whatever its score; a named
  function takes that function. A tool whose required arguments cannot be filled is passed
  over for the next one.
- **fill**: a string argument named or described as a query gets the whole question; another
  string gets the first quoted or code-like word of the question (``support-lora``,
  ``adapter:faq@2``: a word with ``-``, ``_``, ``@``, ``:``, ``/``, ``.`` or a digit), else
  its first capitalised name inside a sentence ("the weather in Paris"); an enum, a value
  the question names; a number gets the number the question writes
  beside the argument's name ("the last 30 days" → ``days=30``). Optional arguments are
  left out unless the question gives them so.
- **answer**: once tool results follow the last user message, the answer quotes them.
  Results that are passages (JSON records with a ``text``) are quoted sentence by sentence
  like context passages, cited by their ``n``; other JSON becomes short ``key: value``
  lines; plain text is quoted as it is. It never calls a second tool, so an agent on this
  backend ends after one tool turn.

This is what ``genai up``'s project assistant runs on when no LLM is given: a router, not
a reasoner. A deployment of a model that calls tools (vLLM, transformers with a tools
template, any OpenAI-compatible server) replaces it without changing the agent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from genai.models._tools import _call
from genai.models._types import ChatMessage, ContextPassage, FunctionChoice, ToolCall, ToolChoice

__all__ = ["ToolResult", "pick_call", "render_results", "tool_results"]

# the cosine similarity of a question to each of some texts
Similar = Callable[[str, Sequence[str]], list[float]]

_QUERY_WORDS = re.compile(r"\b(query|question|search|text|prompt|input|message)\b", re.I)
_QUOTED = re.compile(  # `x`, "x", “x”, 'x' (not an apostrophe: What's)
    r"`([^`\n]{1,120})`|[\"“]([^\"“”\n]{1,120})[\"”]|(?<!\w)'([^'\n]{1,120})'(?!\w)"
)
_PROPER = re.compile(r"\b[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*")
_CODE_WORD = re.compile(r"[A-Za-z0-9][\w.:@/-]*[\w@]")
_MAX_ROWS = 10
_MAX_TEXT = 1500


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer in the conversation: the tool's name and the text it returned."""

    name: str
    content: str


def tool_results(messages: Sequence[ChatMessage]) -> list[ToolResult]:
    """The tool results after the last user message (empty if there are none)."""
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    names: dict[str, str] = {}
    results: list[ToolResult] = []
    for message in messages[last_user + 1 :]:
        for call in message.tool_calls or []:
            names[call.id] = str(call.function.get("name", ""))
        if message.role == "tool":
            name = names.get(message.tool_call_id or "", message.name or "tool")
            results.append(ToolResult(name, message.text()))
    return results


def pick_call(
    question: str,
    tools: Sequence[dict[str, Any]],
    choice: ToolChoice | None,
    similar: Similar,
    *,
    min_similarity: float,
) -> ToolCall | None:
    """The call the question asks for (see the module's docstring), or None."""
    functions = [t.get("function", t) for t in tools if isinstance(t, dict)]
    functions = [f for f in functions if isinstance(f, dict) and f.get("name")]
    if not functions:
        return None
    if isinstance(choice, FunctionChoice):
        named = [f for f in functions if f["name"] == choice.name]
        arguments = _fill(question, named[0].get("parameters") or {}) if named else None
        return _call(choice.name, arguments or {})
    scores = similar(question, [_describe(f) for f in functions])
    ranked = sorted(enumerate(scores), key=lambda pair: -pair[1])
    forced = choice == "required"
    for i, score in ranked:
        if score < min_similarity and not forced:
            break
        arguments = _fill(question, functions[i].get("parameters") or {})
        if arguments is not None:
            return _call(functions[i]["name"], arguments)
    for function in functions:  # nothing matched: the search tool, if there is one
        parameters = function.get("parameters") or {}
        if _is_search(parameters):
            return _call(function["name"], _fill(question, parameters) or {})
    return None


def _describe(function: dict[str, Any]) -> str:
    name = str(function["name"]).replace("_", " ")
    return f"{name}: {function.get('description') or ''}".strip()


def _is_search(parameters: dict[str, Any]) -> bool:
    required = list(parameters.get("required") or [])
    properties = parameters.get("properties") or {}
    return len(required) == 1 and _is_query(required[0], properties.get(required[0]) or {})


def _is_query(name: str, schema: dict[str, Any]) -> bool:
    return schema.get("type", "string") == "string" and bool(
        _QUERY_WORDS.search(name.replace("_", " ")) or _QUERY_WORDS.search(schema.get("title", ""))
    )


def _fill(question: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments the question gives; None where a required one cannot be filled."""
    properties: dict[str, Any] = parameters.get("properties") or {}
    required = set(parameters.get("required") or [])
    arguments: dict[str, Any] = {}
    for name, schema in properties.items():
        value = _value(question, name, schema if isinstance(schema, dict) else {})
        if value is not None:
            arguments[name] = value
        elif name in required:
            if "default" not in schema:
                return None
            arguments[name] = schema["default"]
    return arguments


def _value(question: str, name: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type", "string")
    if "enum" in schema:
        lowered = question.lower()
        named = [v for v in schema["enum"] if str(v).lower() in lowered]
        return named[0] if named else None
    if kind in ("integer", "number"):
        word = re.escape(name.replace("_", " ").rstrip("s"))
        number = r"(\d+(?:\.\d+)?)"
        found = re.search(rf"{number}\s+{word}s?\b|\b{word}s?\W{{1,3}}{number}", question, re.I)
        if found is None:
            return None
        number = found.group(1) or found.group(2)
        return int(float(number)) if kind == "integer" else float(number)
    if kind != "string":
        return None
    if _is_query(name, schema):
        return question
    quoted = _QUOTED.search(question)
    if quoted:
        return next(group for group in quoted.groups() if group is not None).strip()
    for word in _CODE_WORD.findall(question):
        if re.search(r"[-_@:/.\d]", word) and not re.fullmatch(r"[\d.]+", word):
            return word
    for name_ in _PROPER.finditer(question):  # "the weather in Paris": a name
        before = question[: name_.start()].rstrip()
        if before and not before.endswith((".", "!", "?", ":")) and name_.group() != "I":
            return name_.group()
    return None


# ---------------------------------------------------------------------- answers


def render_results(
    results: Sequence[ToolResult], quote: Callable[[Sequence[ContextPassage]], str]
) -> str:
    """The answer from the tool results: passages quoted by ``quote``, the rest as lines."""
    parts: list[str] = []
    for result in results:
        try:
            value = json.loads(result.content)
        except ValueError:
            parts.append(f"{result.name}: {_cut(result.content.strip())}")
            continue
        passages = _passages(value)
        if passages:
            parts.append(quote(passages))
        else:
            parts.append(_render(result.name, value))
    return "\n\n".join(part for part in parts if part)


def _passages(value: Any) -> list[ContextPassage]:
    if not isinstance(value, list) or not value:
        return []
    if not all(isinstance(row, dict) and isinstance(row.get("text"), str) for row in value):
        return []
    return [
        ContextPassage(id=str(row.get("n", i)), text=row["text"]) for i, row in enumerate(value, 1)
    ]


def _render(name: str, value: Any) -> str:
    if isinstance(value, list):
        if not value:
            return f"{name}: none found."
        rows = [f"- {_inline(row)}" for row in value[:_MAX_ROWS]]
        more = len(value) - _MAX_ROWS
        tail = [f"- … and {more} more"] if more > 0 else []
        return "\n".join([f"{name} ({len(value)}):", *rows, *tail])
    if isinstance(value, dict):
        lines = [f"- {k}: {_inline(v)}" for k, v in value.items() if v not in (None, "", [], {})]
        return "\n".join([f"{name}:", *lines])
    return f"{name}: {_cut(str(value))}"


def _inline(value: Any, depth: int = 0) -> str:
    """One line for a value: records as ``key=value`` pairs, lists comma-separated."""
    if isinstance(value, dict):
        if depth > 2:
            return "{…}"
        pairs = [
            f"{key}={_inline(item, depth + 1)}"
            for key, item in value.items()
            if item not in (None, "", [], {})
        ]
        return _cut(", ".join(pairs[:8]) + (", …" if len(pairs) > 8 else ""), 400)
    if isinstance(value, list):
        if depth > 2:
            return "[…]"
        return (
            "["
            + ", ".join(_inline(item, depth + 1) for item in value[:6])
            + (", …]" if len(value) > 6 else "]")
        )
    return _cut(str(value), 200)


def _cut(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
