"""Tool calls in generated text: the parsers of the formats models are trained on, the
schemas that force a call, and the stream that turns held text into calls."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from genai.errors import ValidationError
from genai.models import ChatMessage, FunctionChoice, GenerationChunk, GenerationRequest
from genai.models._tools import (
    TOOL_PARSERS,
    forced_calls,
    forced_schema,
    parser_for_template,
    template_messages,
    template_supports_tools,
    tool_call_stream,
)
from genai.testing import CHATML_TEMPLATE, HERMES_TOOLS_TEMPLATE


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TIME: dict[str, Any] = {"type": "function", "function": {"name": "get_time"}}


def _calls(text: str, parser: str) -> tuple[str, list[tuple[str, dict[str, object]]]]:
    content, calls = TOOL_PARSERS[parser].parse(text)
    return content, [(c.function["name"], json.loads(c.function["arguments"])) for c in calls]


@pytest.mark.parametrize(
    ("parser", "text", "content", "calls"),
    [
        (
            "hermes",
            'Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}'
            '\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
            "Let me look.",
            [("get_weather", {"city": "Paris"}), ("get_time", {})],
        ),
        (  # cut before the closing tag (max_tokens, or a stop sequence on it)
            "hermes",
            '<tool_call>{"name": "get_time", "arguments": {"zone": "UTC"}}',
            "",
            [("get_time", {"zone": "UTC"})],
        ),
        (
            "llama3_json",
            '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}; '
            '{"name": "get_time", "parameters": {}}',
            "",
            [("get_weather", {"city": "Oslo"}), ("get_time", {})],
        ),
        (
            "llama3_json",
            '  {"name": "get_weather", "parameters": {"city": "Rome"}}',
            "",
            [("get_weather", {"city": "Rome"})],
        ),
        (
            "mistral",
            '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Nice"}}, '
            '{"name": "get_time", "arguments": {}}]',
            "",
            [("get_weather", {"city": "Nice"}), ("get_time", {})],
        ),
        (  # the marker is a special token that decoding dropped
            "mistral",
            '[{"name": "get_time", "arguments": {"zone": "CET"}}]',
            "",
            [("get_time", {"zone": "CET"})],
        ),
    ],
)
def test_parsers_find_the_calls(parser: str, text: str, content: str, calls: list[Any]) -> None:
    assert _calls(text, parser) == (content, calls)


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        ("hermes", "The weather is sunny."),
        ("hermes", "<tool_call>not json</tool_call>"),  # no valid call: the text is content
        ("llama3_json", 'I would call {"name": "x"} later'),  # not at the start
        ("mistral", "[1, 2, 3] are numbers"),
    ],
)
def test_text_without_valid_calls_is_content(parser: str, text: str) -> None:
    assert _calls(text, parser) == (text, [])


def test_the_parser_follows_the_template_or_the_name() -> None:
    assert parser_for_template(HERMES_TOOLS_TEMPLATE).name == "hermes"
    assert parser_for_template("{{ '[TOOL_CALLS]' }} {{ tools }}").name == "mistral"
    assert parser_for_template("<|python_tag|>{{ tools }}").name == "llama3_json"
    assert parser_for_template(None, "mistral").name == "mistral"
    with pytest.raises(ValidationError, match="hermes, llama3_json, mistral"):
        parser_for_template(None, "nope")
    assert template_supports_tools(HERMES_TOOLS_TEMPLATE)
    assert not template_supports_tools(CHATML_TEMPLATE) and not template_supports_tools(None)


def test_markers_are_held_back_until_they_are_not() -> None:
    hermes = TOOL_PARSERS["hermes"]
    assert hermes.held("Sure <tool") == len("<tool") and hermes.held("Sure.") == 0
    llama = TOOL_PARSERS["llama3_json"]
    assert llama.held('  {"na') == len('  {"na') and llama.held("Hello") == 0


def _request(**options: object) -> GenerationRequest:
    messages = [ChatMessage(role="user", content="hi")]
    return GenerationRequest(messages=messages, tools=[WEATHER, TIME], **options)


def test_forced_schemas_and_their_calls() -> None:
    assert forced_schema(_request()) is None
    assert forced_schema(_request(tool_choice="auto")) is None
    named = _request(tool_choice=FunctionChoice(name="get_weather"))
    assert forced_schema(named) == WEATHER["function"]["parameters"]
    [call] = forced_calls(named, ' {"city": "Paris"} ')
    assert call.function == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    required = forced_schema(_request(tool_choice="required", parallel_tool_calls=False))
    assert required is not None and required["maxItems"] == 1 and required["minItems"] == 1
    names = [s["properties"]["name"]["enum"] for s in required["items"]["anyOf"]]
    assert names == [["get_weather"], ["get_time"]]
    text = '[{"name": "get_time", "parameters": {}}]'
    assert [c.function["name"] for c in forced_calls(_request(tool_choice="required"), text)] == [
        "get_time"
    ]
    with pytest.raises(ValidationError) as caught:
        forced_schema(_request(tool_choice=FunctionChoice(name="nope")))
    assert caught.value.field == "tool_choice"
    with pytest.raises(ValidationError, match="tool_choice needs tools"):
        forced_schema(GenerationRequest(prompt="x", tool_choice="required"))


def test_template_messages_carry_calls_as_objects() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    messages = [
        ChatMessage(role="assistant", content=None, tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="c1", content="42"),
    ]
    rendered = template_messages(messages)
    assert rendered[0]["tool_calls"][0]["function"] == {"name": "f", "arguments": {"a": 1}}
    assert rendered[1] == {"role": "tool", "content": "42", "tool_call_id": "c1"}


async def _chunks(*texts: str, finish: str = "stop") -> AsyncGenerator[GenerationChunk, None]:
    for text in texts:
        yield GenerationChunk(text=text)
    yield GenerationChunk(finish_reason=finish, prompt_tokens=3, completion_tokens=len(texts))


async def _run(stream: AsyncGenerator[GenerationChunk, None]) -> list[GenerationChunk]:
    return [chunk async for chunk in stream]


@pytest.mark.anyio
async def test_the_stream_sends_content_then_holds_the_calls() -> None:
    parts = ["Checking", " now <tool", "_call>\n", '{"name": "get_time", ', '"arguments": {}}']
    out = await _run(tool_call_stream(_chunks(*parts), _request(), TOOL_PARSERS["hermes"]))
    assert "".join(c.text for c in out) == "Checking now"
    assert all("<" not in c.text for c in out)
    last = out[-1]
    assert last.finish_reason == "tool_calls" and last.tool_calls is not None
    assert last.tool_calls[0].function["name"] == "get_time" and last.completion_tokens == 5


@pytest.mark.anyio
async def test_the_stream_without_calls_is_the_text() -> None:
    out = await _run(
        tool_call_stream(_chunks("a <to", "ol> b"), _request(), TOOL_PARSERS["hermes"])
    )
    assert "".join(c.text for c in out) == "a <tool> b" and out[-1].finish_reason == "stop"


@pytest.mark.anyio
async def test_a_forced_call_cut_by_max_tokens_is_text_not_a_call() -> None:
    forced = _request(tool_choice="required")
    text = '[{"name": "get_time", "parameters": {}}]'
    whole = await _run(tool_call_stream(_chunks(text), forced, None))
    assert whole[-1].finish_reason == "tool_calls" and whole[-1].tool_calls
    cut = await _run(tool_call_stream(_chunks('[{"name": "get_', finish="length"), forced, None))
    assert cut[-1].finish_reason == "length" and cut[-1].tool_calls is None
    assert "".join(c.text for c in cut) == '[{"name": "get_'


def test_a_required_call_keeps_each_tools_definitions() -> None:
    """Pydantic models with nested models write ``$defs`` and ``$ref``s: nested under the
    call's ``parameters`` they must still resolve, and two tools may name theirs alike."""
    import llguidance

    def tool(name: str, field: str) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": name,
                "parameters": {
                    "$defs": {
                        "Inner": {"type": "object", "properties": {field: {"type": "integer"}}}
                    },
                    "type": "object",
                    "properties": {"inner": {"$ref": "#/$defs/Inner"}},
                    "required": ["inner"],
                },
            },
        }

    messages = [ChatMessage(role="user", content="hi")]
    request = GenerationRequest(
        messages=messages, tools=[tool("a", "x"), tool("b", "y")], tool_choice="required"
    )
    schema = forced_schema(request)
    assert schema is not None and set(schema["$defs"]) >= {"a.Inner", "b.Inner"}
    grammar = llguidance.LLMatcher.grammar_from_json_schema(json.dumps(schema))
    assert llguidance.LLMatcher.validate_grammar(grammar) == ""
    calls = [c["properties"]["parameters"] for c in schema["items"]["anyOf"]]
    assert [c["properties"]["inner"]["$ref"] for c in calls] == [
        "#/$defs/a.Inner",
        "#/$defs/b.Inner",
    ]
