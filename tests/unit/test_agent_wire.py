"""The agent's wire parsing: streamed chunks and whole completions from OpenAI-compatible
servers become one ModelTurn, whatever quirk the server has (split, repeated or run-together
arguments, missing indexes and ids, usage-only chunks, dict arguments)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from agents._wire import ModelTurn, StreamAssembler, ToolCallRequest, parse_message
from genai.errors import ValidationError

_NO = object()  # "leave the key out"
_DERIVED = re.compile(r"^call_[0-9a-f]{12}$")


def tc(index: Any = _NO, id: Any = _NO, name: Any = _NO, arguments: Any = _NO) -> dict[str, Any]:
    """One tool-call delta; keys given as _NO are left out, as some servers do."""
    delta: dict[str, Any] = {"type": "function"}
    function: dict[str, Any] = {}
    if index is not _NO:
        delta["index"] = index
    if id is not _NO:
        delta["id"] = id
    if name is not _NO:
        function["name"] = name
    if arguments is not _NO:
        function["arguments"] = arguments
    delta["function"] = function
    return delta


def chunk(
    content: str | None = None,
    calls: list[dict[str, Any]] | None = None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant", "content": content}
    if calls is not None:
        delta["tool_calls"] = calls
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": usage,
    }


def assemble(chunks: list[Any], *, turn: int = 0) -> ModelTurn:
    assembler = StreamAssembler(turn=turn)
    for item in chunks:
        assembler.add(item)
    return assembler.finish()


def calls_of(turn: ModelTurn) -> list[tuple[str, str, str]]:
    """(id or "derived", name, arguments) of each call."""
    return [
        ("derived" if _DERIVED.match(c.id) else c.id, c.name, c.arguments) for c in turn.tool_calls
    ]


ARGS = '{"city": "Par\\u00e9s 😀", "days": [1, 2], "note": "a \\"quoted\\" word"}'

STREAMS: dict[str, tuple[list[dict[str, Any]], list[tuple[str, str, str]]]] = {
    "arguments split into many deltas": (
        [chunk(calls=[tc(0, "c1", "weather", "")])]
        + [chunk(calls=[tc(0, arguments=ARGS[i : i + 3])]) for i in range(0, len(ARGS), 3)]
        + [chunk(finish="tool_calls")],
        [("c1", "weather", ARGS)],
    ),
    "parallel calls by index, interleaved": (
        [
            chunk(calls=[tc(0, "c1", "weather", '{"city"'), tc(1, "c2", "time", '{"tz"')]),
            chunk(calls=[tc(1, arguments=': "UTC"}')]),
            chunk(calls=[tc(0, arguments=': "Oslo"}')]),
        ],
        [("c1", "weather", '{"city": "Oslo"}'), ("c2", "time", '{"tz": "UTC"}')],
    ),
    "no index: a new id starts a call, a delta without one continues": (
        [
            chunk(calls=[tc(id="c1", name="weather", arguments='{"city":')]),
            chunk(calls=[tc(arguments=' "Oslo"}')]),
            chunk(calls=[tc(id="c2", name="time", arguments="{}")]),
        ],
        [("c1", "weather", '{"city": "Oslo"}'), ("c2", "time", "{}")],
    ),
    "no index, no ids: a name starts a call, a repeated name mid-call continues it": (
        [
            chunk(calls=[tc(name="weather", arguments='{"city":')]),
            chunk(calls=[tc(name="weather", arguments=' "Oslo"}')]),
            chunk(calls=[tc(name="weather", arguments='{"city": "Rome"}')]),
            chunk(calls=[tc(name="time", arguments="{}")]),
        ],
        [
            ("derived", "weather", '{"city": "Oslo"}'),
            ("derived", "weather", '{"city": "Rome"}'),
            ("derived", "time", "{}"),
        ],
    ),
    "the same id on every chunk continues the call": (
        [
            chunk(calls=[tc(id="c1", name="weather", arguments='{"ci')]),
            chunk(calls=[tc(id="c1", arguments='ty": "Oslo"')]),
            chunk(calls=[tc(id="c1", name="weather", arguments="}")]),
        ],
        [("c1", "weather", '{"city": "Oslo"}')],
    ),
    "the same id and index on every chunk continues the call": (
        [
            chunk(calls=[tc(0, "c1", "weather", '{"ci')]),
            chunk(calls=[tc(0, "c1", "weather", 'ty": "Oslo"')]),
            chunk(calls=[tc(0, "c1", arguments="}")]),
        ],
        [("c1", "weather", '{"city": "Oslo"}')],
    ),
    "same index but a different id is another call": (
        [
            chunk(calls=[tc(0, "c1", "weather", '{"city": "Oslo"}')]),
            chunk(calls=[tc(0, "c2", "weather", '{"city": "Rome"}')]),
        ],
        [("c1", "weather", '{"city": "Oslo"}'), ("c2", "weather", '{"city": "Rome"}')],
    ),
    "arguments whole, then repeated in full in the final chunk": (
        [
            chunk(calls=[tc(0, "c1", "weather", '{"city": "Oslo"}')]),
            chunk(calls=[tc(0, "c1", "weather", '{"city": "Oslo"}')], finish="tool_calls"),
        ],
        [("c1", "weather", '{"city": "Oslo"}')],
    ),
    "streamed, then repeated in full without index": (
        [
            chunk(calls=[tc(name="weather", arguments='{"city"')]),
            chunk(calls=[tc(arguments=': "Oslo"}')]),
            chunk(calls=[tc(name="weather", arguments='{"city": "Oslo"}')], finish="stop"),
        ],
        [("derived", "weather", '{"city": "Oslo"}')],
    ),
    "two objects run together under one index": (
        [
            chunk(calls=[tc(0, "c1", "weather", '{"a": 1}')]),
            chunk(calls=[tc(0, arguments='{"b": 2}')]),
        ],
        [("c1", "weather", '{"a": 1}'), ("c1_2", "weather", '{"b": 2}')],
    ),
    "empty objects run together": (
        [chunk(calls=[tc(0, "c1", "now", "{}{} {}")])],
        [("c1", "now", "{}"), ("c1_2", "now", "{}"), ("c1_3", "now", "{}")],
    ),
    "missing and empty ids are derived": (
        [chunk(calls=[tc(0, name="now", arguments="{}"), tc(1, "", "weather", "{}")])],
        [("derived", "now", "{}"), ("derived", "weather", "{}")],
    ),
    "arguments given as an object": (
        [chunk(calls=[tc(0, "c1", "weather", {"city": "Zürich"})])],
        [("c1", "weather", '{"city": "Zürich"}')],
    ),
    "invalid arguments stay raw": (
        [chunk(calls=[tc(0, "c1", "weather", "{city: Oslo")])],
        [("c1", "weather", "{city: Oslo")],
    ),
    "the same id twice in a turn is made unique": (
        [chunk(calls=[tc(0, "c", "a", "{}"), tc(1, "c", "b", "{}")])],
        [("c", "a", "{}"), ("c_2", "b", "{}")],
    ),
}


@pytest.mark.parametrize("chunks, expected", STREAMS.values(), ids=STREAMS.keys())
def test_stream_assembles_tool_calls(chunks, expected):
    turn = assemble(chunks)
    assert calls_of(turn) == expected
    assert len({call.id for call in turn.tool_calls}) == len(turn.tool_calls)


def test_split_arguments_parse_back():
    turn = assemble(STREAMS["arguments split into many deltas"][0])
    assert turn.tool_calls[0].parsed() == json.loads(ARGS)


def test_surrogate_pair_split_across_deltas():
    assembler = StreamAssembler()
    assert assembler.add(chunk("smile \ud83d")) == "smile "
    assert assembler.add(chunk("\ude00!")) == "😀!"
    assembler.add(chunk(calls=[tc(0, "c1", "say", '{"e": "\ud83d')]))
    assembler.add(chunk(calls=[tc(0, arguments='\ude00"}')]))
    turn = assembler.finish()
    assert turn.text == "smile 😀!"
    assert turn.tool_calls[0].parsed() == {"e": "😀"}


def test_add_returns_each_text_delta():
    assembler = StreamAssembler()
    deltas = [assembler.add(c) for c in (chunk("Hel"), chunk(None), chunk("lo"), chunk(""))]
    assert deltas == ["Hel", "", "lo", ""]
    assert assembler.finish().text == "Hello"


def test_usage_in_a_last_chunk_with_empty_choices():
    usage_only = {"id": "x", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5}}
    turn = assemble([chunk("Hi"), {"choices": []}, chunk(finish="stop"), usage_only])
    assert (turn.text, turn.finish_reason) == ("Hi", "stop")
    assert (turn.prompt_tokens, turn.completion_tokens) == (12, 5)


@pytest.mark.parametrize("reason", ["tool_calls", "stop", None])
def test_tool_calls_decide_not_the_finish_reason(reason):
    turn = assemble([chunk(calls=[tc(0, "c1", "now", "{}")]), chunk(finish=reason)])
    assert turn.finish_reason == reason
    assert [call.name for call in turn.tool_calls] == ["now"]


def test_derived_ids_are_stable_per_turn():
    chunks = [chunk(calls=[tc(0, name="now", arguments="{}"), tc(1, name="now", arguments="{}")])]
    first, again, later = assemble(chunks), assemble(chunks), assemble(chunks, turn=3)
    assert [c.id for c in first.tool_calls] == [c.id for c in again.tool_calls]
    assert len({c.id for c in first.tool_calls}) == 2
    assert first.tool_calls[0].id != later.tool_calls[0].id


def test_bad_chunks_never_raise():
    garbage: list[Any] = [
        None,
        "text",
        {"choices": None},
        {"choices": [None, {"index": 0, "delta": None}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [None, {"function": None}]}}]},
        {"choices": [{"index": 0, "delta": {"content": 3}}], "usage": {"prompt_tokens": "x"}},
    ]
    turn = assemble([*garbage, chunk("ok")])
    assert (turn.text, turn.tool_calls, turn.prompt_tokens) == ("ok", (), 0)


def test_other_choices_are_ignored():
    second = chunk("other")
    second["choices"][0]["index"] = 1
    assert assemble([chunk("first"), second]).text == "first"


def test_sdk_chunk_objects():
    chunks = [
        ChatCompletionChunk.model_validate(c)
        for c in STREAMS["parallel calls by index, interleaved"][0]
    ]
    turn = assemble(chunks)
    assert [c.id for c in turn.tool_calls] == ["c1", "c2"]


def completion(message: dict[str, Any], finish: str = "stop", usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


def full_call(id: Any, name: str, arguments: Any) -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}


MESSAGES: dict[str, tuple[dict[str, Any], str, list[tuple[str, str, str]]]] = {
    "text only": ({"role": "assistant", "content": "Hello"}, "Hello", []),
    "tool calls, content null": (
        {"role": "assistant", "content": None, "tool_calls": [full_call("c1", "now", "{}")]},
        "",
        [("c1", "now", "{}")],
    ),
    "arguments as an object, no id": (
        {"role": "assistant", "tool_calls": [full_call(None, "weather", {"city": "Oslo"})]},
        "",
        [("derived", "weather", '{"city": "Oslo"}')],
    ),
    "run-together arguments": (
        {"role": "assistant", "tool_calls": [full_call("c1", "w", '{"a": 1}{"b": 2}')]},
        "",
        [("c1", "w", '{"a": 1}'), ("c1_2", "w", '{"b": 2}')],
    ),
    "content as parts": (
        {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"text": "b"}]},
        "ab",
        [],
    ),
    "legacy function_call": (
        {"role": "assistant", "function_call": {"name": "now", "arguments": "{}"}},
        "",
        [("derived", "now", "{}")],
    ),
}


@pytest.mark.parametrize("message, text, expected", MESSAGES.values(), ids=MESSAGES.keys())
def test_parse_message(message, text, expected):
    turn = parse_message(completion(message))
    assert (turn.text, calls_of(turn)) == (text, expected)
    assert (turn.prompt_tokens, turn.completion_tokens, turn.finish_reason) == (7, 3, "stop")


def test_parse_message_accepts_raw_json_and_sdk_objects():
    body = completion({"role": "assistant", "tool_calls": [full_call("c1", "now", "{}")]})
    from_json = parse_message(json.dumps(body))
    from_sdk = parse_message(ChatCompletion.model_validate(body))  # type: ignore[arg-type]
    assert from_json == from_sdk == parse_message(body)


@pytest.mark.parametrize("body", ["{not json", "[1, 2]"])
def test_parse_message_refuses_a_body_that_is_not_an_object(body):
    with pytest.raises(ValidationError, match="chat completion"):
        parse_message(body)


def test_parse_message_without_choices_or_usage():
    turn = parse_message({"choices": [], "usage": None})
    assert turn == ModelTurn("", (), None, 0, 0)


@pytest.mark.parametrize(
    "arguments, parsed",
    [("", {}), ("  ", {}), ('{"a": 1}', {"a": 1}), ("[1]", None), ("{bad", None), ("3", None)],
)
def test_parsed_arguments(arguments, parsed):
    assert ToolCallRequest("c1", "f", arguments).parsed() == parsed


def test_assistant_message():
    call = ToolCallRequest("c1", "now", "{}")
    with_calls = ModelTurn("", (call,), "tool_calls", 1, 1).assistant_message()
    assert with_calls == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "now", "arguments": "{}"}}
        ],
    }
    text_only = ModelTurn("Hi", (), "stop", 1, 1).assistant_message()
    assert text_only == {"role": "assistant", "content": "Hi"}
