"""Tool calling for models served here: chat-template messages with tools, the JSON
schemas that force a tool call, and parsers that find tool calls in generated text.

The parsers follow the formats models are trained on, as vLLM's tool parsers do:

- ``hermes`` (Hermes, Qwen 2/2.5/3): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
  one block per call;
- ``llama3_json`` (Llama 3.1+): ``{"name": ..., "parameters": {...}}`` (after an optional
  ``<|python_tag|>``), calls separated by ``;``;
- ``mistral``: ``[TOOL_CALLS]`` then a JSON array of ``{"name", "arguments"}``.

``tool_choice`` ``required`` and a named function are enforced by constrained decoding on
a JSON schema instead (vLLM does the same): the model writes a JSON array of calls, or the
named function's arguments, whatever format its template would use.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from genai.errors import ValidationError
from genai.models._types import (
    ChatMessage,
    FunctionChoice,
    GenerationChunk,
    GenerationRequest,
    TokenLogprob,
    ToolCall,
)

__all__ = [
    "TOOL_PARSERS",
    "ToolParser",
    "forced_calls",
    "forced_schema",
    "parser_for_template",
    "request_schema",
    "template_messages",
    "template_supports_tools",
    "tool_call_stream",
]


def _call(name: str, arguments: Any) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", function={"name": name, "arguments": text})


def _objects(text: str) -> list[Any]:
    """The JSON values written one after another in ``text`` (separators skipped)."""
    decoder = json.JSONDecoder()
    values, i = [], 0
    while i < len(text):
        if text[i] in " \t\r\n;,":
            i += 1
            continue
        value, i = decoder.raw_decode(text, i)
        values.append(value)
    return values


def _as_call(value: Any, arguments_key: str) -> ToolCall:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ValueError("not a tool call")
    arguments = value.get(arguments_key, value.get("arguments", value.get("parameters", {})))
    return _call(value["name"], arguments if arguments is not None else {})


@dataclass(frozen=True)
class ToolParser:
    """Finds the tool calls in a generation written in one model family's format."""

    name: str
    markers: tuple[str, ...]  # where calls begin; text before the first is content
    arguments_key: str
    at_start_only: bool = False  # calls only when the text begins with a marker

    def start(self, text: str) -> int:
        """Where the first tool call begins in ``text``, or -1."""
        if self.at_start_only:
            stripped = text.lstrip()
            hit = any(stripped.startswith(m) for m in self.markers)
            return len(text) - len(stripped) if hit else -1
        found = [i for i in (text.find(m) for m in self.markers) if i >= 0]
        return min(found) if found else -1

    def held(self, text: str) -> int:
        """How many characters at the end of ``text`` could begin a marker (stream them
        only once it is clear they do not)."""
        if self.at_start_only:
            stripped = text.lstrip()
            return len(text) if any(m.startswith(stripped) for m in self.markers) else 0
        best = 0
        for marker in self.markers:
            for size in range(min(len(marker) - 1, len(text)), best, -1):
                if text.endswith(marker[:size]):
                    best = size
                    break
        return best

    def parse(self, text: str) -> tuple[str, list[ToolCall]]:
        """The content before the calls, and the calls; text that does not parse as calls
        is content (the model wrote no valid call)."""
        begin = self.start(text)
        if begin < 0:
            return text, []
        try:
            calls = self._calls(text[begin:])
        except (ValueError, json.JSONDecodeError):
            return text, []
        return (text[:begin].rstrip() if calls else text), calls

    def _calls(self, text: str) -> list[ToolCall]:
        if self.name == "hermes":
            blocks = re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, flags=re.DOTALL)
            return [_as_call(v, "arguments") for b in blocks for v in _objects(b.strip())]
        body = text.strip()
        for tag in ("<|python_tag|>", "[TOOL_CALLS]"):  # tags, not JSON, before the calls
            if body.startswith(tag):
                body = body[len(tag) :]
        values = _objects(body.strip())
        flat = [v for value in values for v in (value if isinstance(value, list) else [value])]
        return [_as_call(v, self.arguments_key) for v in flat]


TOOL_PARSERS = {
    "hermes": ToolParser("hermes", ("<tool_call>",), "arguments"),
    "llama3_json": ToolParser(
        "llama3_json", ("<|python_tag|>", '{"name"', '{ "name"'), "parameters", at_start_only=True
    ),
    "mistral": ToolParser("mistral", ("[TOOL_CALLS]", '[{"name"'), "arguments", at_start_only=True),
}


def template_supports_tools(template: str | None) -> bool:
    """Whether a chat template renders ``tools`` (templates without them drop them)."""
    return bool(template) and re.search(r"\btools\b", template or "") is not None


def parser_for_template(template: str | None, name: str | None = None) -> ToolParser:
    """The parser named (``hermes``, ``llama3_json``, ``mistral``), or the one whose
    format the chat template writes."""
    if name is not None:
        if name not in TOOL_PARSERS:
            raise ValidationError(
                f"unknown tool parser {name!r}: use one of {', '.join(sorted(TOOL_PARSERS))}",
                field="tool_parser",
            )
        return TOOL_PARSERS[name]
    text = template or ""
    if "[TOOL_CALLS]" in text:
        return TOOL_PARSERS["mistral"]
    if "<|python_tag|>" in text or "ipython" in text:
        return TOOL_PARSERS["llama3_json"]
    return TOOL_PARSERS["hermes"]


def template_messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """Messages as Hugging Face chat templates take them: text content, and tool calls with
    their arguments as objects (what templates serialise with ``tojson``)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.text()}
        if m.tool_calls:
            item["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.function.get("name", ""),
                        "arguments": _arguments(c.function.get("arguments")),
                    },
                }
                for c in m.tool_calls
            ]
        if m.tool_call_id:
            item["tool_call_id"] = m.tool_call_id
        if m.name:
            item["name"] = m.name
        out.append(item)
    return out


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw if raw is not None else {}


def _functions(request: GenerationRequest) -> dict[str, dict[str, Any]]:
    functions: dict[str, dict[str, Any]] = {}
    for tool in request.tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise ValidationError(
                "only function tools are supported: {'type': 'function', 'function': {...}}",
                field="tools",
            )
        functions[str(function.get("name", ""))] = function
    return functions


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    return parameters if isinstance(parameters, dict) and parameters else {"type": "object"}


def forced_schema(request: GenerationRequest) -> dict[str, Any] | None:
    """The JSON schema the generation must follow for ``tool_choice`` ``required`` (an
    array of calls) or a named function (its arguments); None when the model may choose."""
    choice = request.tool_choice
    if not request.tools:
        if choice not in (None, "none", "auto"):
            raise ValidationError("tool_choice needs tools", field="tool_choice")
        return None
    functions = _functions(request)
    if isinstance(choice, FunctionChoice):
        if choice.name not in functions:
            raise ValidationError(
                f"tool_choice names {choice.name!r}, which is not among the tools "
                f"({', '.join(sorted(functions))})",
                field="tool_choice",
            )
        return _parameters(functions[choice.name])
    if choice != "required":
        return None
    definitions: dict[str, Any] = {}
    call_schemas = []
    for name, function in functions.items():
        parameters = _hoisted(_parameters(function), f"{name}.", definitions)
        call_schemas.append(
            {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": [name]},
                    "parameters": parameters,
                },
                "required": ["name", "parameters"],
                "additionalProperties": False,
            }
        )
    schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": call_schemas}}
    if definitions:
        schema["$defs"] = definitions
    if not request.parallel_tool_calls:
        schema["maxItems"] = 1
    return schema


def _hoisted(parameters: dict[str, Any], prefix: str, definitions: dict[str, Any]) -> Any:
    """``parameters`` nested in a larger schema: its ``$defs`` (or ``definitions``) move to
    the root under ``prefix`` (two tools may name a definition alike), and its local
    references (``#/$defs/X``, ``#`` itself) follow them."""
    own = {**parameters.get("definitions", {}), **parameters.get("$defs", {})}
    root = f"{prefix}root"

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(n) for n in node]
        if not isinstance(node, dict):
            return node
        out = {k: rewrite(v) for k, v in node.items() if k not in ("$defs", "definitions")}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#"):
            path = ref[1:].lstrip("/").split("/", 1)
            if ref == "#":
                out["$ref"] = f"#/$defs/{root}"
            elif len(path) == 2 and path[0] in ("$defs", "definitions"):
                out["$ref"] = f"#/$defs/{prefix}{path[1]}"
        return out

    for key, definition in own.items():
        definitions[f"{prefix}{key}"] = rewrite(definition)
    body = rewrite(parameters)
    if _refers_to_root(parameters):  # a recursive schema: "#" is the parameters
        definitions[root] = body
    return body


def _refers_to_root(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == "#" or any(_refers_to_root(v) for v in node.values())
    return isinstance(node, list) and any(_refers_to_root(v) for v in node)


def forced_calls(request: GenerationRequest, text: str) -> list[ToolCall]:
    """The calls of a generation made under :func:`forced_schema`."""
    choice = request.tool_choice
    if isinstance(choice, FunctionChoice):
        return [_call(choice.name, text.strip())]
    return [_call(c["name"], c.get("parameters", {})) for c in json.loads(text)]


def request_schema(request: GenerationRequest) -> tuple[dict[str, Any], str] | None:
    """The JSON schema a request's output must follow, and the field that asked for it."""
    forced = forced_schema(request)
    if forced is not None:
        return forced, "tool_choice"
    fmt = request.response_format
    if fmt is None or not fmt.constrained:
        return None
    if fmt.type == "json_object":
        return {"type": "object"}, "response_format"
    assert fmt.json_schema is not None
    return fmt.json_schema, "response_format"


async def tool_call_stream(
    chunks: AsyncGenerator[GenerationChunk, None],
    request: GenerationRequest,
    parser: ToolParser | None,
) -> AsyncGenerator[GenerationChunk, None]:
    """A stream whose tool calls come out as calls: text before a call streams as content;
    from where a call begins (or all of it, for a forced call) the text is held, and the
    last chunk carries the parsed calls with ``finish_reason`` ``tool_calls``."""
    text, sent = "", 0
    held: list[TokenLogprob] | None = None
    begin = -1
    try:
        async for chunk in chunks:
            text += chunk.text
            if chunk.finish_reason is None:
                limit = 0
                if parser is not None:
                    begin = parser.start(text) if begin < 0 else begin
                    # whitespace before a call is not content: held until text follows
                    limit = len(
                        text[: begin if begin >= 0 else len(text) - parser.held(text)].rstrip()
                    )
                if limit > sent:
                    yield GenerationChunk(text=text[sent:limit], logprobs=chunk.logprobs)
                    sent = limit
                elif chunk.logprobs is not None:
                    held = (held or []) + chunk.logprobs
                continue
            calls: list[ToolCall] = []
            content = text
            if parser is not None:
                content, calls = parser.parse(text)
            elif chunk.finish_reason != "length":  # a forced call, complete
                try:
                    content, calls = "", forced_calls(request, text)
                except (ValueError, KeyError, TypeError):  # not the schema's JSON after all
                    content, calls = text, []
            if calls and not request.parallel_tool_calls:
                calls = calls[:1]
            if len(content) > sent:
                yield GenerationChunk(text=content[sent:])
            logprobs = (held or []) + (chunk.logprobs or []) if held or chunk.logprobs else None
            yield chunk.model_copy(
                update={
                    "text": "",
                    "tool_calls": calls or None,
                    "finish_reason": "tool_calls" if calls else chunk.finish_reason,
                    "logprobs": logprobs,
                }
            )
            return
    finally:
        await chunks.aclose()
