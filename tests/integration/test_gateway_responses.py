"""OpenAI's Responses API at the gateway, driven by the official ``openai`` SDK over real HTTP:
a real gateway in front of a real ``genai serve`` of the scripted FakeLLM (and the fake
vLLM server where a test needs to see the exact chat request a target received).

The request takes the gateway's chat path (its ledger row, its target's chat request are
checked), the answer comes back as a Response; conversations go on with
``previous_response_id`` inside one project only; a target that speaks the Responses API
gets it on its own endpoint. The chain test runs on SQLite and PostgreSQL; the others on
SQLite (what they check does not depend on the database).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from _clocks import wait_until
from _gateway_harness import new_project

from apps.admin import mount_admin
from genai.gateway import GatewayRequest, Stages
from genai.models import ToolCall
from genai.testing import FakeLLM, FakeOpenAIServer, running_server

sqlite_only = pytest.mark.sqlite_only
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
CALL = ToolCall(id="call_w1", function={"name": "get_weather", "arguments": '{"city": "Oslo"}'})


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM(default="I am a fake model.")


@pytest.fixture
def world(project: Any, settings: Any, gateway_server: Any, serve: Any, llm: FakeLLM) -> Any:
    """Project ``gateway`` (and project ``other``) deploy ``chat``: genai serve of ``llm``."""
    server = serve(llm)
    spec = {"targets": [{"name": "serve", "url": server.v1, "model": "fake-llm"}], "retries": 0}
    project.deploy(spec)
    other = new_project(project.admin, "other")
    other.deploy(spec)
    gw = gateway_server(settings, admin=mount_admin)
    return SimpleNamespace(
        gw=gw,
        project=project,
        client=client(gw.v1, project.key),
        other=client(gw.v1, other.key),
        headers={"authorization": f"Bearer {project.key}"},
    )


def client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def messages(llm: FakeLLM, index: int = -1) -> list[dict[str, Any]]:
    """The chat messages the model got in its ``index``-th request."""
    request = llm.requests[index]
    assert request.messages is not None
    return [m.model_dump(exclude_none=True) for m in request.messages]


# ------------------------------------------------------------------ whole answers


@sqlite_only
def test_a_plain_response_with_instructions_takes_the_chat_path(world, llm):
    llm.add_replies("Hello there, friend.")

    raw = world.client.responses.with_raw_response.create(
        model="chat", input="Hi", instructions="Be brief"
    )
    response = raw.parse()

    rid = raw.headers["x-request-id"]
    assert response.id == f"resp_{rid}"
    assert (response.object, response.status, response.model) == ("response", "completed", "chat")
    assert response.output_text == "Hello there, friend."
    [message] = response.output
    assert message.type == "message" and message.role == "assistant"
    assert message.id == f"msg_{rid}"
    assert response.instructions == "Be brief"
    # FakeLLM counts words and marks: "Be brief\nHi" is 3, the answer 5
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 5)
    assert response.usage.total_tokens == 8
    assert messages(llm) == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Hi"},
    ]
    # the chat path wrote its ledger row, under the same request id
    assert wait_until(lambda: any(r.request_id == rid for r in world.project.rows()), 10)
    row = next(r for r in world.project.rows() if r.request_id == rid)
    assert (row.prompt_tokens, row.completion_tokens, row.status) == (3, 5, "ok")


@sqlite_only
def test_a_function_tool_and_its_output_make_a_round_trip(world, llm):
    llm.add_replies(CALL, "It is sunny in Oslo.")

    first = world.client.responses.create(
        model="chat", input="Weather in Oslo?", tools=[WEATHER], tool_choice="auto"
    )

    [call] = first.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (
        "call_w1",
        "get_weather",
        '{"city": "Oslo"}',
    )
    assert llm.requests[-1].tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city.",
                "parameters": WEATHER["parameters"],
            },
        }
    ]

    second = world.client.responses.create(
        model="chat",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=[WEATHER],
    )

    assert second.output_text == "It is sunny in Oslo."
    assert messages(llm) == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_w1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_w1"},
    ]


@sqlite_only
def test_the_conversation_may_be_sent_back_whole_without_storing(world, llm):
    llm.add_replies(CALL, "Sunny.")
    first = world.client.responses.create(
        model="chat", input="Weather?", tools=[WEATHER], store=False
    )
    with pytest.raises(openai.NotFoundError):
        world.client.responses.retrieve(first.id)  # store: false keeps nothing

    again = world.client.responses.create(
        model="chat",
        input=[
            {"role": "user", "content": "Weather?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": "call_w1", "output": "sunny"},
        ],
        tools=[WEATHER],
    )

    assert again.output_text == "Sunny."
    assert [m["role"] for m in messages(llm)] == ["user", "assistant", "tool"]


@sqlite_only
def test_an_output_without_its_call_is_refused(world):
    with pytest.raises(openai.BadRequestError) as refused:
        world.client.responses.create(
            model="chat", input=[{"type": "function_call_output", "call_id": "c9", "output": "x"}]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["message"] == "No tool call found for function call output with call_id c9."
    assert error["param"] == "input[0].call_id"


# ------------------------------------------------------------------ streams


@sqlite_only
def test_a_stream_sends_openais_events_in_order(world, llm):
    llm.add_replies("One two three.")
    body = {"model": "chat", "input": "Count", "stream": True}

    with httpx.stream(
        "POST", world.gw.v1 + "/responses", json=body, headers=world.headers, timeout=30
    ) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        rid = answer.headers["x-request-id"]
        text = answer.read().decode()

    events = []
    for block in text.strip().split("\n\n"):
        kind, data = block.split("\n")
        assert kind.startswith("event: ") and data.startswith("data: ")
        event = json.loads(data.removeprefix("data: "))
        assert event["type"] == kind.removeprefix("event: ")
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "One two three." and len(deltas) == 3
    final = events[-1]["response"]
    assert final["id"] == f"resp_{rid}" and final["status"] == "completed"
    assert final["output"][0]["content"][0]["text"] == "One two three."
    assert final["usage"] == {
        "input_tokens": 1,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 5,
    }
    # the streamed response is stored: it can be read back and gone on from
    stored = world.client.responses.retrieve(final["id"])
    assert stored.output_text == "One two three."


@sqlite_only
def test_the_sdks_stream_helpers_read_it(world, llm):
    llm.add_replies("Streamed with the SDK.", "Managed stream.")

    events = list(world.client.responses.create(model="chat", input="Go", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Streamed with the SDK."

    with world.client.responses.stream(model="chat", input="Again") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Managed stream."
    assert final.usage is not None and final.usage.output_tokens == 3


@pytest.fixture
def vllm_world(project: Any, settings: Any, gateway_server: Any) -> Iterator[Any]:
    """Deployment ``chat`` on the fake vLLM server (which records each chat request)."""
    with FakeOpenAIServer(base_model="tiny", max_model_len=10_000) as fake:
        spec = {"targets": [{"name": "vllm", "url": fake.url + "/v1", "model": "tiny"}]}
        project.deploy({**spec, "retries": 0})
        gw = gateway_server(settings)
        yield SimpleNamespace(fake=fake, client=client(gw.v1, project.key))


@sqlite_only
def test_a_streamed_function_call_comes_as_argument_deltas(vllm_world):
    with vllm_world.client.responses.stream(
        model="chat", input="Weather?", tools=[WEATHER]
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()

    kinds = [e.type for e in events]
    assert kinds.count("response.function_call_arguments.delta") == 3
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert done.arguments == '{"city": "Paris", "unit": "celsius"}'
    [call] = final.output
    assert call.type == "function_call"
    assert (call.name, call.call_id, call.arguments) == (
        "get_weather",
        "call_fake_0",
        done.arguments,
    )


# ------------------------------------------------------------------ what the target gets


@sqlite_only
def test_text_format_json_schema_reaches_the_target_as_response_format(vllm_world):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}

    response = vllm_world.client.responses.create(
        model="chat",
        input="Answer in JSON",
        text={"format": {"type": "json_schema", "name": "reply", "schema": schema, "strict": True}},
        max_output_tokens=50,
        temperature=0.2,
        metadata={"ticket": "T-1"},
    )

    sent = vllm_world.fake.last("/v1/chat/completions")
    assert sent == {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Answer in JSON"}],
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": schema, "strict": True},
        },
    }
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert response.metadata == {"ticket": "T-1"}


@sqlite_only
def test_a_target_that_speaks_the_responses_api_gets_it_on_its_own_endpoint(
    project, settings, gateway_server
):
    """The deployment's target is genai serve behind a recorder of its paths; it serves
    /v1/responses itself, so the gateway sends the request there (nothing kept upstream)."""
    from genai.serving import create_app

    llm = FakeLLM(["Answered by the upstream.", "Streamed by the upstream."], default="Chat too.")
    seen: list[tuple[str, Any]] = []
    inner = create_app(llm)

    async def recorder(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        raw, more = b"", True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append((scope["path"], json.loads(raw) if raw else None))
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        return await inner(scope, replay, send)

    with running_server(recorder) as url:
        target = {"name": "rsp", "url": url + "/v1", "model": "fake-llm", "responses_api": True}
        project.deploy({"targets": [target], "retries": 0})
        gw = gateway_server(settings)
        sdk = client(gw.v1, project.key)

        whole = sdk.responses.create(model="chat", input="Hi", instructions="Be kind")
        with sdk.responses.stream(model="chat", input="Stream it") as stream:
            streamed = stream.get_final_response()
        chat = sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "and chat?"}]
        )

    assert whole.output_text == "Answered by the upstream."
    assert streamed.output_text == "Streamed by the upstream."
    assert chat.choices[0].message.content == "Chat too."  # a chat request goes there too
    paths = [path for path, _ in seen]
    assert paths == ["/v1/responses"] * 3
    first = seen[0][1]
    assert first == {
        "model": "fake-llm",
        "input": [
            {"type": "message", "role": "system", "content": "Be kind"},
            {"type": "message", "role": "user", "content": "Hi"},
        ],
        "store": False,
    }
    assert seen[1][1]["stream"] is True
    assert whole.id.startswith("resp_") and whole.usage is not None
    assert whole.usage.output_tokens == 5  # the upstream's usage, through the chat path


# ------------------------------------------------------------------ chains and tenancy


def test_previous_response_id_chains_within_the_project_only(world, llm):
    """On SQLite and PostgreSQL: the stored chain is read back in order, and another
    project's id is a 404 worded as for an id that never existed."""
    llm.add_replies("First answer.", "Second answer.", "Third answer.")
    first = world.client.responses.create(model="chat", input="One", instructions="Sys")
    second = world.client.responses.create(model="chat", input="Two", previous_response_id=first.id)
    third = world.client.responses.create(
        model="chat", input="Three", previous_response_id=second.id
    )

    assert third.previous_response_id == second.id
    assert messages(llm) == [  # instructions are not carried over, as at OpenAI
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "First answer."},
        {"role": "user", "content": "Two"},
        {"role": "assistant", "content": "Second answer."},
        {"role": "user", "content": "Three"},
    ]

    with pytest.raises(openai.NotFoundError) as theirs:
        world.other.responses.create(model="chat", input="Hi", previous_response_id=first.id)
    with pytest.raises(openai.NotFoundError) as never:
        world.other.responses.create(model="chat", input="Hi", previous_response_id="resp_nope")
    assert _without_id(theirs.value.body) == _without_id(never.value.body)
    assert isinstance(theirs.value.body, dict)
    assert theirs.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        world.other.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        world.other.responses.delete(first.id)
    calls_before = len(llm.requests)
    assert world.client.responses.retrieve(first.id).output_text == "First answer."

    world.client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        world.client.responses.create(model="chat", input="Four", previous_response_id=second.id)
    assert len(llm.requests) == calls_before  # refused before any model call


def _without_id(body: Any) -> Any:
    assert isinstance(body, dict)
    return {**body, "message": body["message"].split("'")[0]}


# ------------------------------------------------------------------ refusals


@sqlite_only
@pytest.mark.parametrize(
    ("extra", "param", "words"),
    [
        ({"seed": 1}, "seed", "Unrecognized request argument supplied: seed"),
        ({"text": {"foo": 1}}, "text.foo", "Unknown parameter: 'text.foo'."),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type", "built-in tool ('web_search')"),
        ({"background": True}, "background", "'background' is not supported"),
        ({"conversation": "conv_1"}, "conversation", "'conversation' is not supported"),
        ({"temperature": 3}, "temperature", "'temperature' is 3, but must be between 0 and 2"),
        (
            {"input": [{"type": "reasoning", "summary": []}]},
            "input[0].type",
            "item of type 'reasoning'",
        ),
        (
            {"text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "Missing required parameter: 'text.format.name'",
        ),
    ],
)
def test_what_is_not_served_is_refused_by_name(world, llm, extra, param, words):
    body = {"model": "chat", "input": "Hi", **extra}
    answer = httpx.post(world.gw.v1 + "/responses", json=body, headers=world.headers)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and words in error["message"]
    assert llm.requests == []


@sqlite_only
def test_a_targets_refusal_reaches_the_caller(vllm_world):
    vllm_world.fake.max_model_len = 5
    with pytest.raises(openai.BadRequestError) as refused:
        vllm_world.client.responses.create(model="chat", input="a b c d e f g h")
    assert "maximum context length" in str(refused.value)


@sqlite_only
def test_unknown_paths_and_methods_answer_in_openais_shape(world):
    for method, path, status, message in [
        ("POST", "/v1/nonexistent", 404, "Invalid URL (POST /v1/nonexistent)"),
        ("GET", "/v1/responses", 405, "Invalid method for URL (GET /v1/responses)"),
        ("GET", "/v1/chat/completions", 405, "Invalid method for URL (GET /v1/chat/completions)"),
    ]:
        answer = httpx.request(method, world.gw.url + path, headers=world.headers)
        assert answer.status_code == status
        assert answer.json() == {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            }
        }
    # the admin API keeps its own words, and other paths FastAPI's
    assert httpx.get(world.gw.url + "/nowhere").json() == {"detail": "Not Found"}
    api = httpx.get(world.gw.url + "/api/nowhere", headers=world.headers)
    assert api.status_code == 404 and "/docs" in api.json()["error"]["message"]
    # the SDK reads the shape
    with pytest.raises(openai.NotFoundError) as missing:
        world.client.post("/nonexistent", body={}, cast_to=object)
    assert "Invalid URL" in str(missing.value)


@sqlite_only
def test_feedback_takes_a_response_id(world, llm):
    response = world.client.responses.create(model="chat", input="Rate me")
    answer = httpx.post(
        world.gw.v1 + "/feedback",
        json={"response_id": response.id, "score": 1},
        headers=world.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["request_id"] == response.id.removeprefix("resp_")


# ------------------------------------------------------------------ stages and failures


class Redact:
    """A request stage as DLP is one: rewrites the chat request before any target sees it."""

    name = "redact"

    async def before(self, request: GatewayRequest) -> None:
        for message in request.body.get("messages") or []:
            if isinstance(message.get("content"), str):
                message["content"] = message["content"].replace("s3cret", "[REDACTED]")


class Shout:
    """A response stage as DLP's restore is one: rewrites whole answers and streamed text."""

    name = "shout"

    async def after(self, request: GatewayRequest, response: dict[str, Any]) -> dict[str, Any]:
        for choice in response.get("choices") or []:
            message = choice.get("message") or {}
            message["content"] = (message.get("content") or "").replace("answer", "ANSWER")
        return response

    def stream(self, request: GatewayRequest) -> Any:
        return SimpleNamespace(feed=lambda text: text.replace("answer", "ANSWER"), flush=str)


@sqlite_only
def test_request_and_response_stages_apply_as_for_chat(project, settings, gateway_server):
    with FakeOpenAIServer(base_model="tiny", max_model_len=10_000) as fake:
        target = {"name": "vllm", "url": fake.url + "/v1", "model": "tiny"}
        project.deploy({"targets": [target], "retries": 0})
        stages = Stages(request=[Redact()], response=[Shout()])
        sdk = client(gateway_server(settings, stages=stages).v1, project.key)

        whole = sdk.responses.create(model="chat", input="my s3cret is 42")
        with sdk.responses.stream(model="chat", input="again s3cret") as stream:
            streamed = stream.get_final_response()
        sent = [body["messages"] for body in fake.bodies("/v1/chat/completions")]

    assert whole.output_text == streamed.output_text == "the ANSWER is forty two"
    assert sent == [
        [{"role": "user", "content": "my [REDACTED] is 42"}],
        [{"role": "user", "content": "again [REDACTED]"}],
    ]


@sqlite_only
def test_a_stream_that_fails_midway_ends_with_error_and_response_failed(vllm_world):
    vllm_world.fake.mode = "error_event"

    events = list(vllm_world.client.responses.create(model="chat", input="Hi", stream=True))

    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]
    assert "died mid-stream" in events[-2].message
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    with pytest.raises(openai.NotFoundError):  # a failed response is not kept
        vllm_world.client.responses.retrieve(failed.id)
