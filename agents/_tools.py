"""Tools an agent can call: :class:`Tool`, the ``@tool`` decorator and :func:`function_tool`.

A :class:`Tool` is a name, a description and a JSON schema the model sees (:meth:`Tool.spec`
is the OpenAI ``tools`` entry), plus the Python handler the engine calls. Models make
mistakes, so :meth:`Tool.invoke` never raises for the tool's own failures: it returns a
:class:`ToolOutcome` whose ``content`` goes back to the model as the tool message. Arguments
that are not a JSON object or fail validation are ``invalid_arguments`` (naming the bad
fields and the expected ones, so the model can retry); a handler that raises is ``error``
(the exception's type and message, never a traceback); one that runs past ``timeout_s`` is
``timeout``. Results are text: a string as is, ``None`` as ``""``, anything else as JSON, cut
at ``max_result_chars`` with a visible marker so a huge result cannot flood the context.
Cancellation (``asyncio.CancelledError``) always propagates.

    @tool
    def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, float]:
        \"\"\"Current weather in a city.

        Args:
            city: The city's name, e.g. "Paris".
            unit: Celsius or Fahrenheit.
        \"\"\"

    outcome = await get_weather.invoke('{"city": "Paris"}')   # get_weather is a Tool

The decorator builds the schema from the type hints with pydantic (``str``, numbers, ``bool``,
lists, dicts, ``Literal``, enums, ``Optional``, pydantic models, ``Annotated[..., Field()]``),
takes parameter descriptions from the docstring (Google ``Args:`` or reST ``:param x:``) and
validates the model's arguments with the same pydantic model, refusing unknown ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import inspect
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, overload

import pydantic

from genai.errors import ValidationError

__all__ = ["Tool", "ToolOutcome", "function_tool", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call gave: a status and the text that goes back to the model."""

    status: Literal["ok", "invalid_arguments", "error", "timeout"]
    content: str
    truncated: bool = False


@dataclass(frozen=True)
class Tool:
    """A function the model may call. See the module docstring; ``@tool`` builds most."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    handler: Callable[..., Any]
    validate: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    side_effects: bool = False
    requires_approval: bool = False
    timeout_s: float = 30.0
    max_result_chars: int = 8000

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValidationError(
                f"tool name {self.name!r} is not allowed: use 1 to 64 letters, digits, '_' "
                "or '-' (pass name=... to choose another)",
                field="name",
            )
        for option, ok in (
            ("timeout_s", self.timeout_s > 0),
            ("max_result_chars", self.max_result_chars >= 1),
        ):
            if not ok:
                raise ValidationError(
                    f"tool {self.name!r}: {option} must be positive, got {getattr(self, option)!r}",
                    field=option,
                )

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    async def invoke(self, arguments: str | Mapping[str, Any] | None) -> ToolOutcome:
        """Validate ``arguments`` (JSON text or a mapping; empty means ``{}``) and call the
        handler, within ``timeout_s``. Never raises for the tool's own failures.

        A sync handler runs in a worker thread (``asyncio.to_thread``); at the timeout this
        stops waiting for it, but a Python thread cannot be killed: the function keeps running
        in its thread until it returns, and its result is then dropped. Give blocking tools
        their own timeouts (e.g. on their HTTP client) so they end soon after.
        """
        try:
            args = self._arguments(arguments)
        except _BadArguments as exc:
            problem = _cut(f"Tool {self.name!r} was called with invalid arguments: {exc}", 1000)
            expected = _cut(f"Expected a JSON object {_schema_hint(self.parameters)}.", 1000)
            return ToolOutcome(
                "invalid_arguments",
                f"{problem[0]} {expected[0]} Call it again with corrected arguments.",
            )
        try:
            result = await asyncio.wait_for(self._call(args), timeout=self.timeout_s)
        except _HandlerFailed as failed:
            cause = failed.__cause__
            message = f"Tool {self.name!r} failed: {type(cause).__name__}: {cause}"
            return ToolOutcome("error", _cut(message, _MAX_ERROR_CHARS)[0])
        except TimeoutError:
            return ToolOutcome(
                "timeout",
                f"Tool {self.name!r} did not finish within {self.timeout_s:g} s and was "
                "abandoned. Try again with a smaller request, or go on without it.",
            )
        text, truncated = _cut(_render(result), self.max_result_chars)
        return ToolOutcome("ok", text, truncated)

    def _arguments(self, arguments: str | Mapping[str, Any] | None) -> Mapping[str, Any]:
        if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
            args: object = {}
        elif isinstance(arguments, str):
            try:
                args = json.loads(arguments)
            except (ValueError, RecursionError) as exc:
                raise _BadArguments(f"they are not valid JSON ({exc}).") from None
        else:
            args = arguments
        if not isinstance(args, Mapping):
            raise _BadArguments(f"they must be a JSON object, not {type(args).__name__}.")
        if self.validate is None:
            return args
        try:
            return self.validate(args)
        except pydantic.ValidationError as exc:
            raise _BadArguments(_pydantic_problems(exc)) from None
        except Exception as exc:
            raise _BadArguments(f"{exc}.") from None

    async def _call(self, args: Mapping[str, Any]) -> Any:
        try:
            if inspect.iscoroutinefunction(self.handler):
                return await self.handler(**args)
            result = await asyncio.to_thread(self.handler, **args)
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as exc:  # wrapped so the handler's own TimeoutError stays an error
            raise _HandlerFailed from exc


class _BadArguments(Exception):
    pass


class _HandlerFailed(Exception):
    pass


def _pydantic_problems(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        message = "unexpected argument" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{where}: {message}")
    return "; ".join(problems) + "."


def _schema_hint(schema: Mapping[str, Any]) -> str:
    """A one-line summary of an object schema: its fields, their types, which are required."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping) or not properties:
        return "(no fields required)"
    required = schema.get("required") or ()
    defs = schema.get("$defs") or {}
    fields = [
        f"{name} ({_type_hint(sub, defs)}, {'required' if name in required else 'optional'})"
        for name, sub in properties.items()
    ]
    return "with " + ", ".join(fields)


def _type_hint(schema: Any, defs: Mapping[str, Any], depth: int = 0) -> str:
    if not isinstance(schema, Mapping) or depth > 3:
        return "any"
    if "$ref" in schema:
        target = defs.get(str(schema["$ref"]).rsplit("/", 1)[-1])
        return _type_hint(target, defs, depth + 1) if target is not None else "object"
    if "enum" in schema:
        return " | ".join(json.dumps(value) for value in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(_type_hint(sub, defs, depth + 1) for sub in schema[key])
    kind = schema.get("type", "any")
    if kind == "array" and "items" in schema:
        return f"array of {_type_hint(schema['items'], defs, depth + 1)}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def _render(result: Any) -> str:
    if isinstance(result, str):
        return result
    if result is None:
        return ""
    try:
        return json.dumps(_plain(result), default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return str(result)


def _plain(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value.value if isinstance(value, enum.Enum) else value


def _json_default(value: Any) -> Any:
    plain = _plain(value)
    return str(value) if plain is value else plain


def _cut(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return f"{text[:limit]}\n… [truncated: {len(text)} chars, showing the first {limit}]", True


# --- building a Tool from a function -------------------------------------------------------


def function_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    description: str | None = None,
    side_effects: bool = False,
    requires_approval: bool = False,
    timeout_s: float = 30.0,
    max_result_chars: int = 8000,
) -> Tool:
    """Make a :class:`Tool` of a sync or async function: the schema from its type hints, the
    description and parameter descriptions from its docstring. Every parameter needs a type
    hint; ``*args`` and ``**kwargs`` are refused (a model can only send named fields)."""
    fn_name = getattr(fn, "__name__", type(fn).__name__)
    model, names = _arguments_model(fn, fn_name)
    schema = _clean_schema(model.model_json_schema())

    def validate(arguments: Mapping[str, Any]) -> Mapping[str, Any]:
        validated = model.model_validate(arguments)
        return {names[field]: getattr(validated, field) for field in validated.model_fields_set}

    summary, _ = _parse_docstring(inspect.getdoc(fn) or "")
    return Tool(
        name=fn_name if name is None else name,
        description=summary if description is None else description,
        parameters=schema,
        handler=fn,
        validate=validate,
        side_effects=side_effects,
        requires_approval=requires_approval,
        timeout_s=timeout_s,
        max_result_chars=max_result_chars,
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    side_effects: bool = False,
    requires_approval: bool = False,
    timeout_s: float = 30.0,
    max_result_chars: int = 8000,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None, /, **options: Any
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Decorate a function into a :class:`Tool`: ``@tool`` or ``@tool(side_effects=True)``
    (the options of :func:`function_tool`). The function stays reachable as ``handler``."""
    if fn is None:
        return lambda func: function_tool(func, **options)
    return function_tool(fn, **options)


def _arguments_model(
    fn: Callable[..., Any], fn_name: str
) -> tuple[type[pydantic.BaseModel], dict[str, str]]:
    """A pydantic model of ``fn``'s parameters, and its field names → the parameter names.

    Fields are named ``p0``, ``p1``, … with the parameter name as alias, so any parameter name
    works (``json``, ``schema``, ``model_config``, …) without clashing with BaseModel."""
    try:
        signature = inspect.signature(fn)
        hints = typing.get_type_hints(fn, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ValidationError(f"cannot make a tool of {fn_name!r}: {exc}", field=fn_name) from exc
    _, param_docs = _parse_docstring(inspect.getdoc(fn) or "")
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for position, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ValidationError(
                f"cannot make a tool of {fn_name!r}: parameter {param.name!r} is *args or "
                "**kwargs; a tool takes named parameters only",
                field=param.name,
            )
        if param.name not in hints:
            raise ValidationError(
                f"cannot make a tool of {fn_name!r}: parameter {param.name!r} has no type "
                "hint; annotate it so the model knows what to send",
                field=param.name,
            )
        field = f"p{position}"
        names[field] = param.name
        default = ... if param.default is param.empty else param.default
        fields[field] = (_with_alias(hints[param.name], param.name, param_docs), default)
    config = pydantic.ConfigDict(extra="forbid", populate_by_name=False)
    try:
        model = pydantic.create_model(f"{fn_name}_arguments", __config__=config, **fields)
        model.model_json_schema()
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError) as exc:
        raise ValidationError(
            f"cannot make a tool of {fn_name!r}: a parameter's type has no JSON schema ({exc})",
            field=fn_name,
        ) from exc
    return model, names


def _with_alias(hint: Any, param: str, docs: Mapping[str, str]) -> Any:
    """``hint`` annotated with the alias and the docstring's description, placed before any
    ``Field`` the hint carries so that the hint's own description wins."""
    base, extras = hint, ()
    if typing.get_origin(hint) is Annotated:
        base, extras = hint.__origin__, hint.__metadata__
    field = pydantic.Field(alias=param, description=docs.get(param))
    annotated: Any = Annotated
    return annotated[(base, field, *extras)]


def _clean_schema(schema: Any) -> Any:
    """Drop pydantic's generated ``title`` keys (noise for the model), keep everything else."""
    if isinstance(schema, list):
        return [_clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):
            cleaned[key] = {name: _clean_schema(sub) for name, sub in value.items()}
        else:
            cleaned[key] = _clean_schema(value)
    return cleaned


_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns?|Yields?|"
    r"Raises|Examples?|Notes?|Attributes|See Also|Warnings?)\s*:?\s*$"
)
_REST_FIELD = re.compile(r"^:(param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?(\w+)\s*:")
_REST_ANY = re.compile(r"^:\w+")
_ARGS_HEADERS = frozenset(
    ("Args:", "Arguments:", "Parameters:", "Params:", "Keyword Args:", "Keyword Arguments:")
)
_GOOGLE_ARG = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (the text before the first section or ``:field:``, paragraphs kept)
    and each parameter's description, from a Google-style or reST docstring."""
    lines = doc.expandtabs().splitlines()
    starts = (i for i, line in enumerate(lines) if _SECTION.match(line.strip()))
    rest = (i for i, line in enumerate(lines) if _REST_ANY.match(line.strip()))
    end = min(next(starts, len(lines)), next(rest, len(lines)))
    paragraphs = "\n".join(lines[:end]).strip().split("\n\n")
    summary = "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())
    docs: dict[str, str] = {}
    _google_args(lines, docs)
    _rest_params(lines, docs)
    return summary, docs


def _google_args(lines: list[str], docs: dict[str, str]) -> None:
    in_args, base, current = False, -1, ""
    for line in lines:
        indent, text = len(line) - len(line.lstrip()), line.strip()
        if text in _ARGS_HEADERS:
            in_args, base, current = True, -1, ""
            continue
        if not in_args or not text:
            continue
        if base == -1:
            base = indent  # the first entry's indentation
        if indent < base:  # dedented: the next section
            in_args = False
            continue
        match = _GOOGLE_ARG.match(text) if indent == base else None
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current:
            docs[current] = f"{docs[current]} {text}".strip()


def _rest_params(lines: list[str], docs: dict[str, str]) -> None:
    current = ""
    for line in lines:
        text = line.strip()
        match = _REST_FIELD.match(text)
        if match:
            current = match.group(2)
            docs[current] = text[match.end() :].strip()
        elif _REST_ANY.match(text) or not text:
            current = ""
        elif current:
            docs[current] = f"{docs[current]} {text}"
