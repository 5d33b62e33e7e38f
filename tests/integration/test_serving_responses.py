"""``genai serve``'s ``/v1/responses``, driven by the official ``openai`` SDK over real HTTP:
the Responses API over the server's own chat path (a scripted FakeLLM behind it), answers
kept in memory for ``previous_response_id``, and OpenAI's error shape on every ``/v1``
refusal, unknown paths and methods included."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from genai.models import ToolCall
from genai.testing import FakeLLM

pytestmark = pytest.mark.sqlite_only

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM(default="Default answer.", context_window=64)


@pytest.fixture
def server(serve: Any, llm: FakeLLM) -> Any:
    return serve(llm)


@pytest.fixture
def sdk(server: Any) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0, timeout=30) as c:
        yield c


def chat_of(llm: FakeLLM) -> list[dict[str, Any]]:
    request = llm.requests[-1]
    assert request.messages is not None
    return [m.model_dump(exclude_none=True) for m in request.messages]


def test_a_response_with_instructions(sdk, llm):
    llm.add_replies("A short answer.")

    response = sdk.responses.create(model="fake-llm", input="Question?", instructions="Be short")

    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "fake-llm"
    assert response.output_text == "A short answer."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 4)
    assert chat_of(llm) == [
        {"role": "system", "content": "Be short"},
        {"role": "user", "content": "Question?"},
    ]
    assert sdk.responses.retrieve(response.id).output_text == "A short answer."


def test_a_function_call_round_trip_with_previous_response_id(sdk, llm):
    call = ToolCall(id="call_1", function={"name": "get_weather", "arguments": '{"city": "Rome"}'})
    llm.add_replies(call, "Warm in Rome.")

    first = sdk.responses.create(model="fake-llm", input="Weather in Rome?", tools=[WEATHER])
    [item] = first.output
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == (
        "call_1",
        "get_weather",
        '{"city": "Rome"}',
    )

    second = sdk.responses.create(
        model="fake-llm",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": "call_1", "output": "24 C"}],
    )

    assert second.output_text == "Warm in Rome."
    assert second.previous_response_id == first.id
    assert [m["role"] for m in chat_of(llm)] == ["user", "assistant", "tool"]
    assert chat_of(llm)[2] == {"role": "tool", "content": "24 C", "tool_call_id": "call_1"}


def test_streamed_events_and_the_final_response(sdk, llm):
    llm.add_replies("Streaming from the server.")

    with sdk.responses.stream(model="fake-llm", input="Stream") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()

    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds.count("response.output_text.delta") == 4
    assert kinds[-1] == "response.completed"
    assert final.output_text == "Streaming from the server."
    assert final.usage is not None and final.usage.output_tokens == 5
    # kept like a whole answer: the conversation goes on from it
    llm.add_replies("Next.")
    sdk.responses.create(model="fake-llm", input="More", previous_response_id=final.id)
    assert [m["content"] for m in chat_of(llm)] == [
        "Stream",
        "Streaming from the server.",
        "More",
    ]


def test_max_output_tokens_cuts_the_answer_and_says_so(sdk, llm):
    llm.add_replies("one two three four five six")

    response = sdk.responses.create(model="fake-llm", input="Count", max_output_tokens=2)

    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two"


def test_a_refusal_of_the_chat_path_names_the_responses_field(server, llm):
    body = {"model": "fake-llm", "input": "Hi", "max_output_tokens": 1000}
    answer = httpx.post(server.v1 + "/responses", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["param"] == "max_output_tokens"
    assert "context window is 64 tokens" in error["message"]


def test_unknown_ids_and_models_are_openai_shaped_404s(server, sdk):
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.create(model="fake-llm", input="x", previous_response_id="resp_gone")
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        sdk.responses.create(model="no-such-model", input="x")
    answer = httpx.delete(server.v1 + "/responses/resp_gone")
    assert answer.status_code == 404
    assert answer.json()["error"]["message"] == "Response with id 'resp_gone' not found."


def test_stored_false_keeps_nothing_and_delete_forgets(sdk, llm):
    kept = sdk.responses.create(model="fake-llm", input="Keep")
    loose = sdk.responses.create(model="fake-llm", input="Drop", store=False)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(loose.id)
    sdk.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(kept.id)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "seed": 1}, "seed"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"input": "x", "truncation": "auto"}, "truncation"),
        ({"input": "x", "reasoning": {"summary": "auto"}}, "reasoning.summary"),
        ({}, "input"),
    ],
)
def test_what_is_not_served_is_a_400_naming_the_field(server, llm, body, param):
    answer = httpx.post(server.v1 + "/responses", json={"model": "fake-llm", **body})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["param"] == param
    assert llm.requests == []


def test_unknown_paths_and_methods_answer_in_openais_shape(server):
    for method, path, status, message in [
        ("POST", "/v1/nonexistent", 404, "Invalid URL (POST /v1/nonexistent)"),
        ("GET", "/v1/chat/completions", 405, "Invalid method for URL (GET /v1/chat/completions)"),
        ("PUT", "/v1/responses", 405, "Invalid method for URL (PUT /v1/responses)"),
    ]:
        answer = httpx.request(method, server.url + path)
        assert answer.status_code == status
        assert answer.json() == {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    assert httpx.get(server.url + "/nowhere").json() == {"detail": "Not Found"}
