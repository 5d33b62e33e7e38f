"""The Responses API ↔ chat completions translation, case by case: requests to chat requests,
chat answers and streams to Responses objects and events (each event checked against the
openai SDK's own types), targets that speak the Responses API, and FastAPI's own refusals
on /v1 in OpenAI's shape."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from openai.types.responses import Response as SdkResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from genai.errors import ValidationError
from genai.gateway import TargetSpec
from genai.gateway._responses_wire import chat_answer, chat_stream, responses_body
from genai.serving._responses import chat_request, response_object, response_param, skeleton
from genai.serving._responses_schema import refuse_unsupported
from genai.serving._responses_stream import ResponsesStream
from genai.serving._v1_errors import install_v1_errors

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
BASE = {"model": "m"}


# ------------------------------------------------------------------ requests


@pytest.mark.parametrize(
    ("given", "chat"),
    [
        ({"input": "Hi"}, {"messages": [{"role": "user", "content": "Hi"}]}),
        (
            {"input": "Hi", "instructions": "Sys", "temperature": 0, "max_output_tokens": 9},
            {
                "messages": [
                    {"role": "system", "content": "Sys"},
                    {"role": "user", "content": "Hi"},
                ],
                "temperature": 0,
                "max_completion_tokens": 9,
            },
        ),
        (
            {
                "input": [
                    {
                        "role": "developer",
                        "content": [{"type": "input_text", "text": "Rule"}],
                    },
                    {
                        "type": "message",
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "Look:"},
                            {"type": "input_image", "image_url": "data:x", "detail": "low"},
                        ],
                    },
                ]
            },
            {
                "messages": [
                    {"role": "developer", "content": "Rule"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "Look:"},
                            {"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}},
                        ],
                    },
                ]
            },
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Go"},
                    {
                        "type": "message",
                        "role": "assistant",
                        "id": "msg_1",
                        "status": "completed",
                        "content": [{"type": "output_text", "text": "On it", "annotations": []}],
                    },
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "one"},
                    {
                        "type": "function_call_output",
                        "call_id": "c2",
                        "output": [{"type": "input_text", "text": "two"}],
                    },
                ],
                "tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}],
                "tool_choice": {"type": "function", "name": "f"},
                "parallel_tool_calls": False,
            },
            {
                "messages": [
                    {"role": "user", "content": "Go"},
                    {
                        "role": "assistant",
                        "content": "On it",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            },
                            {
                                "id": "c2",
                                "type": "function",
                                "function": {"name": "g", "arguments": "{}"},
                            },
                        ],
                    },
                    {"role": "tool", "tool_call_id": "c1", "content": "one"},
                    {"role": "tool", "tool_call_id": "c2", "content": "two"},
                ],
                "tools": [
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {}, "strict": True},
                    }
                ],
                "tool_choice": {"type": "function", "function": {"name": "f"}},
                "parallel_tool_calls": False,
            },
        ),
        (
            {"input": "Hi", "text": {"format": {"type": "json_object"}}, "stream": True},
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "response_format": {"type": "json_object"},
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        ),
        (
            {
                "input": "Hi",
                "text": {"format": {"type": "text"}},
                "reasoning": {"effort": "low"},
                "include": ["message.output_text.logprobs"],
                "top_logprobs": 2,
                "store": False,
                "metadata": {"a": "b"},
            },
            {
                "messages": [{"role": "user", "content": "Hi"}],
                "reasoning_effort": "low",
                "logprobs": True,
                "top_logprobs": 2,
            },
        ),
    ],
)
def test_a_request_becomes_the_chat_request(given, chat):
    assert chat_request({**BASE, **given}) == {**BASE, **chat}


def test_history_comes_before_the_new_input_and_errors_name_the_new_input():
    history = [{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]
    body = {**BASE, "input": [{"type": "function_call_output", "call_id": "c1", "output": "x"}]}
    assert [m["role"] for m in chat_request(body, history)["messages"]] == ["assistant", "tool"]
    with pytest.raises(ValidationError) as refused:
        chat_request({**BASE, "input": [{"role": "assistant", "content": [_image()]}]})
    assert refused.value.field == "input[0].content[0].type"
    with pytest.raises(ValidationError, match="'input'"):
        chat_request(BASE)


def _image() -> dict[str, Any]:
    return {"type": "input_image", "image_url": "https://x/y.png"}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "code_interpreter"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"text": {"verbosity": "low"}}, "text.verbosity"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
    ],
)
def test_what_openai_has_and_the_platform_does_not_is_refused_by_name(extra, field):
    with pytest.raises(ValidationError) as refused:
        refuse_unsupported({**BASE, **extra})
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("chat", "responses"),
    [
        ("messages[3].content", "input"),
        ("response_format.json_schema", "text.format"),
        ("max_tokens", "max_output_tokens"),
        ("tools[0].function.name", "tools[0].name"),
        ("temperature", "temperature"),
        (None, None),
    ],
)
def test_a_chat_field_is_named_as_the_responses_request_names_it(chat, responses):
    assert response_param(chat) == responses


# ------------------------------------------------------------------ whole answers


def test_a_chat_answer_becomes_a_response_the_sdk_reads():
    chat = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "upstream",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "logprobs": {
                    "content": [
                        {"token": "Let", "logprob": -0.1, "bytes": [76], "top_logprobs": []}
                    ]
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 3,
            "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 2},
        },
        "citations": [{"id": "doc-1"}],
    }
    base = skeleton({**BASE, "input": "x", "tools": []}, response_id="resp_ab", created_at=1)

    response = response_object(base, chat, suffix="ab")

    parsed = SdkResponse.model_validate(response)
    assert parsed.output_text == "Let me check."
    assert [item.type for item in parsed.output] == ["message", "function_call"]
    assert parsed.output[1].model_dump(exclude_none=True) == {
        "id": "fc_ab_0",
        "type": "function_call",
        "status": "completed",
        "call_id": "c1",
        "name": "f",
        "arguments": "{}",
    }
    assert parsed.usage is not None
    assert (parsed.usage.input_tokens, parsed.usage.output_tokens) == (7, 3)
    assert parsed.usage.input_tokens_details.cached_tokens == 2
    assert response["output"][0]["content"][0]["logprobs"][0]["token"] == "Let"
    assert response["citations"] == [{"id": "doc-1"}]
    assert response["model"] == "m"  # the model the caller named


def test_a_cut_answer_is_incomplete():
    chat = {"choices": [{"message": {"content": "a b"}, "finish_reason": "length"}]}
    response = response_object(skeleton(BASE, response_id="r", created_at=0), chat, suffix="s")
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["output"][0]["status"] == "incomplete"


# ------------------------------------------------------------------ streams


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    body = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def decoded(events: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        head, data = event.decode().rstrip("\n").split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        EVENTS.validate_python(payload)  # the SDK's own model of each event
        out.append(payload)
    return out


def test_a_chat_stream_becomes_openais_events():
    stream = ResponsesStream(skeleton(BASE, response_id="resp_s", created_at=0), suffix="s")
    chat = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(
            {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": ""}}]}
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]}),
        chunk(
            {"tool_calls": [{"index": 1, "id": "c2", "function": {"name": "g", "arguments": "{}"}}]}
        ),
        chunk({}, "tool_calls"),
        b'data: {"id": "c", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 5,'
        b' "total_tokens": 7}}\n\n',
        b"data: [DONE]\n\n",
    ]
    events = stream.start()
    joined = b"".join(chat)
    for cut in range(0, len(joined), 7):  # any split of the bytes
        events.extend(stream.feed(joined[cut : cut + 7]))
    events.extend(stream.end())

    out = decoded(events)
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = SdkResponse.model_validate(out[-1]["response"])
    assert final.output_text == "Hello"
    assert [(o.type, getattr(o, "arguments", None)) for o in final.output] == [
        ("message", None),
        ("function_call", '{"a": 1}'),
        ("function_call", "{}"),
    ]
    assert final.usage is not None and final.usage.total_tokens == 7
    assert stream.final == out[-1]["response"]


@pytest.mark.parametrize(
    ("tail", "code"),
    [
        (
            b'data: {"error": {"message": "engine died", "code": "upstream_error"}}\n\n',
            "upstream_error",
        ),
        (b"", "stream_ended"),
    ],
)
def test_a_failed_chat_stream_ends_with_an_error_and_response_failed(tail, code):
    stream = ResponsesStream(skeleton(BASE, response_id="r", created_at=0), suffix="s")
    events = stream.start() + stream.feed(chunk({"content": "par"}) + tail) + stream.end()
    out = decoded(events)
    assert [e["type"] for e in out[-2:]] == ["error", "response.failed"]
    assert out[-2]["code"] == code
    assert out[-1]["response"]["status"] == "failed"


def test_an_empty_answer_is_an_empty_message_as_when_not_streamed():
    stream = ResponsesStream(skeleton(BASE, response_id="r", created_at=0), suffix="s")
    out = decoded(stream.start() + stream.feed(chunk({}, "stop") + b"data: [DONE]\n\n"))
    assert out[-1]["response"]["output"][0]["content"] == [
        {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ]


# ------------------------------------------------------------------ targets that speak it

TARGET = TargetSpec(
    name="vendor", url="https://api.example.com/v1", model="gpt", responses_api=True
)


def test_a_chat_request_goes_to_such_a_target_as_a_responses_request():
    chat = {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Sys"},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": {}}},
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
        "n": 1,
    }
    assert responses_body(chat, TARGET) == {
        "model": "gpt",
        "input": [
            {"type": "message", "role": "system", "content": "Sys"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
        "store": False,
        "stream": True,
        "tools": [{"type": "function", "name": "f", "parameters": {}}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {}}},
        "max_output_tokens": 5,
    }


@pytest.mark.parametrize("field", ["stop", "seed", "presence_penalty", "logit_bias"])
def test_what_the_responses_api_cannot_say_is_refused(field):
    with pytest.raises(ValidationError) as refused:
        responses_body({"model": "gpt", "messages": [], field: 1}, TARGET)
    assert refused.value.field == field and "'vendor'" in refused.value.message


def test_its_answer_and_its_stream_come_back_as_chat():
    base = skeleton({**BASE, "input": "x"}, response_id="resp_u", created_at=5)
    chat_in = {
        "choices": [
            {
                "message": {
                    "content": "Hi!",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    response = response_object(base, chat_in, suffix="u")
    chat = chat_answer(json.dumps(response).encode(), TARGET)
    message = chat["choices"][0]["message"]
    assert (message["content"], chat["choices"][0]["finish_reason"]) == ("Hi!", "tool_calls")
    assert message["tool_calls"][0]["id"] == "c1"
    assert chat["usage"]["total_tokens"] == 3

    stream = ResponsesStream(base, suffix="u")
    events = stream.start() + stream.feed(
        chunk({"content": "Hi!"})
        + chunk(
            {"tool_calls": [{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]}
        )
        + chunk(
            {}, "tool_calls", usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        )
        + b"data: [DONE]\n\n"
    )

    async def relay() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    async def collect() -> list[bytes]:
        return [piece async for piece in chat_stream(relay())]

    pieces = asyncio.run(collect())
    assert pieces[-1] == b"data: [DONE]\n\n"
    chunks = [json.loads(p.removeprefix(b"data: ")) for p in pieces[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hi!"
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0]["id"] == "c1" and "".join(c["function"]["arguments"] for c in calls) == "{}"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["usage"]["total_tokens"] == 3


# ------------------------------------------------------------------ the framework's refusals


def test_fastapis_own_refusals_on_v1_are_openai_shaped():
    app = FastAPI()
    install_v1_errors(app)

    @app.get("/v1/things/{number}")
    async def thing(number: int) -> dict[str, int]:
        return {"number": number}

    @app.get("/v1/bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        bad = client.get("/v1/things/seven")
        missing = client.delete("/v1/things/7")
        off_v1 = client.get("/nowhere")
        crashed = client.get("/v1/bug")

    assert bad.status_code == 400
    error = bad.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "number")
    assert missing.status_code == 405
    assert missing.json()["error"]["message"] == "Invalid method for URL (DELETE /v1/things/7)"
    assert off_v1.json() == {"detail": "Not Found"}
    assert crashed.status_code == 500
    assert crashed.json()["error"] == {
        "message": "internal error: RuntimeError",
        "type": "server_error",
        "param": None,
        "code": None,
    }
