"""Agent tools: the schema and descriptions ``@tool`` builds from a function, and what
``Tool.invoke`` gives back for good arguments, bad ones, failures, timeouts, big results and
cancellation (it never raises for the tool's own failures, but never swallows a cancel)."""

from __future__ import annotations

import asyncio
import enum
import threading
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest

from agents._tools import Tool, ToolOutcome, function_tool, tool
from genai.errors import ValidationError


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Place(pydantic.BaseModel):
    city: str
    country: str = "NO"


def forecast(
    city: str,
    days: list[int],
    unit: Literal["c", "f"] = "c",
    note: Optional[str] = None,  # noqa: UP045 (the Optional spelling is what users write)
) -> str:
    """Forecast for a city.

    Args:
        city: The city's name,
            e.g. "Oslo".
        days (list[int]): Days ahead.
        unit: Celsius or Fahrenheit.

    Returns:
        The forecast.
    """
    return f"{city} {days} {unit} {note}"


def book(
    place: Place,
    when: date,
    seats: Annotated[int, pydantic.Field(description="Seats to book.", ge=1)] = 1,
    unit: Unit = Unit.C,
    tags: dict[str, float] | None = None,
    confirm: bool = False,
) -> None:
    """Book a table.

    :param place: Where.
    :param int seats: Not this one: the Field's description wins.
    :param confirm: Ask first;
        then book.
    :returns: nothing
    """


SCHEMAS: dict[str, tuple[Any, dict[str, Any]]] = {
    "forecast": (
        forecast,
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"type": "string", "description": 'The city\'s name, e.g. "Oslo".'},
                "days": {
                    "type": "array",
                    "items": {"type": "integer"},
                    "description": "Days ahead.",
                },
                "unit": {
                    "type": "string",
                    "enum": ["c", "f"],
                    "default": "c",
                    "description": "Celsius or Fahrenheit.",
                },
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
            },
            "required": ["city", "days"],
        },
    ),
    "book": (
        book,
        {
            "type": "object",
            "additionalProperties": False,
            "$defs": {
                "Place": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string"},
                        "country": {"type": "string", "default": "NO"},
                    },
                    "required": ["city"],
                },
                "Unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "properties": {
                "place": {"$ref": "#/$defs/Place", "description": "Where."},
                "when": {"type": "string", "format": "date"},
                "seats": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 1,
                    "description": "Seats to book.",
                },
                "unit": {"$ref": "#/$defs/Unit", "default": "celsius"},
                "tags": {
                    "anyOf": [
                        {"type": "object", "additionalProperties": {"type": "number"}},
                        {"type": "null"},
                    ],
                    "default": None,
                },
                "confirm": {
                    "type": "boolean",
                    "default": False,
                    "description": "Ask first; then book.",
                },
            },
            "required": ["place", "when"],
        },
    ),
}


@pytest.mark.parametrize("fn, schema", SCHEMAS.values(), ids=SCHEMAS.keys())
def test_schema_from_type_hints_and_docstring(fn, schema):
    built = function_tool(fn)
    assert built.parameters == schema
    assert built.spec() == {
        "type": "function",
        "function": {"name": fn.__name__, "description": built.description, "parameters": schema},
    }


def two_paragraphs() -> None:
    """First line
    goes on.

    Second paragraph.

    Args:
        none: at all.
    """


def rest_only(x: int) -> None:
    """:param x: The x."""


def no_doc(x: int) -> None:
    pass


@pytest.mark.parametrize(
    "fn, description",
    [
        (forecast, "Forecast for a city."),
        (book, "Book a table."),
        (two_paragraphs, "First line goes on.\n\nSecond paragraph."),
        (rest_only, ""),
        (no_doc, ""),
    ],
)
def test_description_is_the_text_before_the_sections(fn, description):
    assert function_tool(fn).description == description


def test_decorator_forms_and_options():
    @tool
    async def plain(x: int) -> int:
        return x

    @tool(name="send-mail", description="Send it.", side_effects=True, requires_approval=True)
    def send(to: str) -> None:
        """Ignored."""

    options = tool(timeout_s=2.5, max_result_chars=10)(no_doc)
    assert isinstance(plain, Tool) and plain.name == "plain" and not plain.side_effects
    assert asyncio.run(plain.handler(4)) == 4  # the function stays reachable
    assert (send.name, send.description, send.side_effects, send.requires_approval) == (
        "send-mail",
        "Send it.",
        True,
        True,
    )
    assert (options.timeout_s, options.max_result_chars) == (2.5, 10)


class Opaque:
    pass


def untyped(x: int, y) -> None:
    pass


def star_args(*names: str) -> None:
    pass


def star_kwargs(x: int, **options: str) -> None:
    pass


def opaque(thing: Opaque) -> None:
    pass


@pytest.mark.parametrize(
    "fn, names",
    [
        (untyped, ["untyped", "'y'", "no type hint"]),
        (star_args, ["star_args", "'names'", "*args"]),
        (star_kwargs, ["star_kwargs", "'options'"]),
        (opaque, ["opaque", "no JSON schema"]),
        (lambda: None, ["<lambda>", "name="]),
    ],
)
def test_functions_that_cannot_be_tools(fn, names):
    with pytest.raises(ValidationError) as caught:
        function_tool(fn)
    for name in names:
        assert name in caught.value.message


@pytest.mark.parametrize("name", ["a", "get_weather-2", "x" * 64])
def test_valid_names(name):
    assert Tool(name, "", {"type": "object"}, no_doc).name == name


@pytest.mark.parametrize("name", ["", "x" * 65, "get weather", "f.g", "名前"])
def test_invalid_names(name):
    with pytest.raises(ValidationError, match="tool name"):
        Tool(name, "", {"type": "object"}, no_doc)


def test_parameter_names_that_shadow_basemodel_attributes():
    @tool
    def odd(json: str, schema: int, model_config: bool = False) -> str:
        return f"{json} {schema} {model_config}"

    assert asyncio.run(odd.invoke('{"json": "j", "schema": 2}')) == ToolOutcome("ok", "j 2 False")


@dataclass
class Point:
    x: int


class Reply(pydantic.BaseModel):
    day: date
    ok: bool


RESULTS: dict[str, tuple[Any, str]] = {
    "text as is": ("héllo", "héllo"),
    "None is empty": (None, ""),
    "a dict is JSON": ({"a": [1, "é"]}, '{"a": [1, "é"]}'),
    "a pydantic model": (Reply(day=date(2024, 1, 2), ok=True), '{"day": "2024-01-02", "ok": true}'),
    "a dataclass": (Point(1), '{"x": 1}'),
    "others by str": ([date(2024, 1, 2)], '["2024-01-02"]'),
    "a number": (3.5, "3.5"),
    "an enum by value": ({"unit": Unit.C}, '{"unit": "celsius"}'),
}


@pytest.mark.parametrize("result, content", RESULTS.values(), ids=RESULTS.keys())
def test_results_become_text(result, content):
    returns = Tool("r", "", {"type": "object"}, lambda: result)
    assert asyncio.run(returns.invoke(None)) == ToolOutcome("ok", content)


def test_arguments_are_validated_coerced_and_passed_as_keywords():
    seen: dict[str, Any] = {}

    @tool
    async def record(place: Place, seats: int, when: date | None = None) -> str:
        seen.update(place=place, seats=seats, when=when)
        return "done"

    outcome = asyncio.run(record.invoke('{"place": {"city": "Oslo"}, "seats": "3"}'))
    assert outcome == ToolOutcome("ok", "done")
    assert seen == {"place": Place(city="Oslo"), "seats": 3, "when": None}


@pytest.mark.parametrize("arguments", [None, "", "  ", {}])
def test_empty_arguments_mean_an_empty_object(arguments):
    @tool
    def defaults(unit: str = "c") -> str:
        return unit

    assert asyncio.run(defaults.invoke(arguments)) == ToolOutcome("ok", "c")


INVALID: dict[str, tuple[Any, list[str]]] = {
    "not JSON": ('{"city": ', ["not valid JSON"]),
    "not an object": ("[1, 2]", ["must be a JSON object", "not list"]),
    "a missing field": ('{"city": "Oslo"}', ["days: Field required"]),
    "a wrong type": ('{"city": "Oslo", "days": ["x"]}', ["days.0:", "integer"]),
    "a bad literal": ('{"city": "Oslo", "days": [], "unit": "k"}', ["unit:", "'c' or 'f'"]),
    "an unknown field": ('{"city": "Oslo", "days": [], "town": 1}', ["town: unexpected argument"]),
}


@pytest.mark.parametrize("arguments, fragments", INVALID.values(), ids=INVALID.keys())
def test_invalid_arguments_name_the_problem_and_the_schema(arguments, fragments):
    outcome = asyncio.run(function_tool(forecast).invoke(arguments))
    assert outcome.status == "invalid_arguments"
    expected = 'city (string, required), days (array of integer, required), unit ("c" | "f"'
    for fragment in [*fragments, "'forecast'", expected, "Call it again"]:
        assert fragment in outcome.content


def test_a_tool_without_validate_accepts_any_object():
    echo = Tool("echo", "", {"type": "object"}, lambda **kw: kw)
    assert asyncio.run(echo.invoke({"a": 1})) == ToolOutcome("ok", '{"a": 1}')
    assert asyncio.run(echo.invoke("3")).status == "invalid_arguments"


def test_a_custom_validate_that_raises():
    def check(arguments: Any) -> Any:
        raise ValueError("x must be even")

    checked = Tool("checked", "", {"type": "object"}, no_doc, validate=check)
    outcome = asyncio.run(checked.invoke({"x": 1}))
    assert outcome.status == "invalid_arguments" and "x must be even" in outcome.content


def failing_sync() -> None:
    raise KeyError("missing")


async def failing_async() -> None:
    raise TimeoutError("the upstream timed out")  # the handler's own: an error, not a timeout


@pytest.mark.parametrize(
    "handler, message",
    [
        (failing_sync, "Tool 'f' failed: KeyError: 'missing'"),
        (failing_async, "Tool 'f' failed: TimeoutError: the upstream timed out"),
    ],
)
def test_handler_errors_are_reported_without_traceback(handler, message):
    outcome = asyncio.run(Tool("f", "", {"type": "object"}, handler).invoke(None))
    assert outcome == ToolOutcome("error", message)


def test_an_async_handler_past_its_timeout():
    async def scenario() -> ToolOutcome:
        never = asyncio.Event()

        async def wait() -> None:
            await never.wait()

        return await Tool("wait", "", {}, wait, timeout_s=0.05).invoke(None)

    outcome = asyncio.run(scenario())
    assert outcome.status == "timeout"
    assert "'wait'" in outcome.content and "0.05 s" in outcome.content


def test_a_sync_handler_past_its_timeout_is_abandoned_in_its_thread():
    release, finished = threading.Event(), threading.Event()

    def block() -> str:
        release.wait(10)
        finished.set()
        return "late"

    async def scenario() -> ToolOutcome:
        outcome = await Tool("block", "", {}, block, timeout_s=0.05).invoke(None)
        assert not finished.is_set()  # still running in its thread
        release.set()
        return outcome

    assert asyncio.run(scenario()).status == "timeout"
    assert finished.wait(10)


@pytest.mark.parametrize(
    "size, content, truncated",
    [
        (10, "x" * 10, False),
        (11, "x" * 10 + "\n… [truncated: 11 chars, showing the first 10]", True),
    ],
)
def test_long_results_are_cut_with_a_marker(size, content, truncated):
    big = Tool("big", "", {}, lambda: "x" * size, max_result_chars=10)
    assert asyncio.run(big.invoke(None)) == ToolOutcome("ok", content, truncated)


def test_a_handler_cancelled_inside_propagates():
    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(Tool("c", "", {}, cancelled).invoke(None))


def test_cancelling_the_caller_propagates():
    started = threading.Event()

    async def scenario() -> None:
        never = asyncio.Event()

        async def wait() -> None:
            started.set()
            await never.wait()

        task = asyncio.create_task(Tool("wait", "", {}, wait).invoke(None))
        while not started.is_set():
            await asyncio.sleep(0)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(scenario())
