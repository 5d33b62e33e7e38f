"""What the model server refuses, and how: OpenAI-style error bodies with the offending
field, raised before any token is generated; and clients that leave mid-generation, whose
rows the engine must drop at once while other requests carry on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

BASE = "tiny-llama"
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is my invoice?"}]
LONG_PROMPT = "Hello, world!"  # greedy decoding runs to any max_tokens without an end token


@pytest.fixture(scope="module")
def srv(tiny, run_server) -> Iterator[Any]:
    with run_server(tiny.model, adapters={"a1": tiny.adapters["a1"]}) as server:
        yield server


@pytest.fixture(scope="module")
def client(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=30)


def refused(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    """The ``error`` object of an OpenAI-style error answer."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]
    return dict(error)


def post(srv: Any, path: str, body: Any) -> httpx.Response:
    if isinstance(body, bytes):
        return httpx.post(
            srv.v1 + path, content=body, timeout=30, headers={"content-type": "application/json"}
        )
    return httpx.post(srv.v1 + path, json=body, timeout=30)


# ------------------------------------------------------------------ bad input


def test_unknown_model_is_404_with_an_openai_error(srv, client) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-9", messages=CHAT)
    assert caught.value.status_code == 404
    assert "gpt-9" in caught.value.message and caught.value.type == "invalid_request_error"
    error = refused(post(srv, "/completions", {"model": "gpt-9", "prompt": "x"}), 404)
    assert error["message"] == "The model `gpt-9` does not exist."
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    "raw", [b'{"model": "tiny-llama", "prompt": ', b"\xff\xfe", b"", b"[1, 2]"]
)
def test_malformed_json_is_400(srv, raw: bytes) -> None:
    error = refused(post(srv, "/completions", raw))
    assert "JSON" in error["message"]


@pytest.mark.parametrize(
    ("path", "patch", "param"),
    [
        ("/chat/completions", {"max_tokens": "many"}, "max_tokens"),
        ("/chat/completions", {"messages": "hi"}, "messages"),
        ("/chat/completions", {"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ("/chat/completions", {"temperature": "hot"}, "temperature"),
        ("/chat/completions", {"stream": "sometimes"}, "stream"),
        ("/chat/completions", {"messages": []}, "messages"),
        ("/chat/completions", {"messages": [{"role": "user", "content": 7}]}, "messages.0.content"),
        ("/chat/completions", {"messages": [{"content": "x"}]}, "messages.0.role"),
        ("/chat/completions", {"stop": 42}, "stop"),
        ("/completions", {"prompt": 42}, "prompt"),
        ("/completions", {"prompt": [1, "a"]}, "prompt"),
        ("/completions", {"prompt": [[1], "a"]}, "prompt"),
        ("/completions", {"max_tokens": 0}, "max_tokens"),
        ("/completions", {"model": None}, "model"),
    ],
)
def test_wrong_types_are_400_naming_the_field(
    srv, path: str, patch: dict[str, Any], param: str
) -> None:
    body = (
        {"model": BASE, "messages": CHAT}
        if path == "/chat/completions"
        else {"model": BASE, "prompt": "Hello"}
    )
    error = refused(post(srv, path, {**body, **patch}))
    assert error["param"] == param and param.split(".", maxsplit=1)[0] in error["message"]


def test_missing_field_is_400(srv) -> None:
    error = refused(post(srv, "/chat/completions", {"model": BASE}))
    assert error["param"] == "messages" and "required" in error["message"]


def test_unknown_field_is_refused_with_openais_wording(srv, client) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=BASE, messages=CHAT, extra_body={"frobnicate": 1})
    assert caught.value.param == "frobnicate"
    assert "Unrecognized request argument supplied: frobnicate" in caught.value.message
    error = refused(post(srv, "/completions", {"model": BASE, "prompt": "x", "top_k": 5}))
    assert error["message"] == "Unrecognized request argument supplied: top_k"


def test_prompt_and_max_tokens_beyond_the_context_window(srv, client) -> None:
    prompt_tokens = client.completions.create(
        model=BASE, prompt=LONG_PROMPT, max_tokens=1, temperature=0
    ).usage.prompt_tokens
    for stream in (False, True):
        body = {"model": BASE, "prompt": LONG_PROMPT, "max_tokens": 2048, "stream": stream}
        error = refused(post(srv, "/completions", body))
        assert error["param"] == "max_tokens"
        assert "2048" in error["message"] and str(prompt_tokens + 2048) in error["message"]
        assert f"{prompt_tokens} in the prompt" in error["message"]
        huge = refused(
            post(
                srv,
                "/chat/completions",
                {
                    "model": BASE,
                    "messages": [{"role": "user", "content": "yes " * 2100}],
                    "stream": stream,
                },
            )
        )
        assert "2048" in huge["message"]
    fits = client.completions.create(
        model=BASE, prompt=LONG_PROMPT, temperature=0, max_tokens=2048 - prompt_tokens
    )
    assert fits.choices[0].finish_reason == "length"  # the window's last token is usable


@pytest.mark.parametrize(
    ("patch", "param"),
    [
        ({"n": 9}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"42": 5}}, "logit_bias"),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 1}}}},
            "response_format",
        ),
        ({"presence_penalty": 3}, "presence_penalty"),
    ],
)
def test_unsupported_or_out_of_range_options_are_400(
    srv, patch: dict[str, Any], param: str
) -> None:
    for stream in (False, True):
        body = {"model": BASE, "messages": CHAT, "max_tokens": 2, "stream": stream, **patch}
        assert refused(post(srv, "/chat/completions", body))["param"] == param


def test_completion_logprobs_and_suffix_are_400(client) -> None:
    for options, param in (
        ({"logprobs": 21}, "logprobs"),
        ({"max_tokens": 0}, "max_tokens"),  # generates nothing without echo
        ({"suffix": "end"}, "suffix"),
        ({"best_of": 3}, "best_of"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(model=BASE, prompt="x", **{"max_tokens": 2, **options})
        assert caught.value.param == param


@pytest.mark.parametrize("stream", [False, True])
def test_tools_are_refused_by_a_template_without_tools(client, stream: bool) -> None:
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="a1", messages=CHAT, tools=[tool], stream=stream)
    assert caught.value.param == "tools"
    assert "chat template does not render tools" in caught.value.message
    # with tool_choice none the tools are not rendered, and the model answers
    reply = client.chat.completions.create(
        model="a1", messages=CHAT, tools=[tool], tool_choice="none", max_tokens=2
    )
    assert reply.choices[0].message.tool_calls is None


def test_the_server_still_answers_after_refusals(srv, client) -> None:
    for _ in range(3):
        post(srv, "/chat/completions", b"{")
        post(srv, "/chat/completions", {"model": BASE, "messages": CHAT, "n": 99})
    reply = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=3, temperature=0)
    assert reply.usage is not None and reply.usage.completion_tokens == 3
    assert srv.metric("genai_serve_requests_in_flight") == 0
    assert srv.backend._engine.running == 0 and srv.backend._engine.waiting == 0


def test_missing_chat_template_refuses_chat_only(tiny, serve) -> None:
    plain = serve(tiny.plain_model)
    client = openai.OpenAI(base_url=plain.v1, api_key="unused", max_retries=0)
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=3, stream=stream)
        assert caught.value.param == "messages" and "chat template" in caught.value.message
        assert "/v1/completions" in caught.value.message
    reply = client.completions.create(model=BASE, prompt="Hello", max_tokens=3)
    assert reply.usage is not None and reply.usage.completion_tokens == 3


# ------------------------------------------------------------------ clients that leave


def _steps(srv: Any) -> float:
    return float(srv.metric("genai_serve_batch_rows_count"))


def _concurrent_request(srv: Any, results: list[Any]) -> threading.Thread:
    def run() -> None:
        other = openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=30)
        results.append(
            other.completions.create(
                model="a1", prompt="Yes, no, maybe.", max_tokens=200, temperature=0
            )
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_stream_whose_client_leaves_is_cancelled(srv, client, wait_until) -> None:
    engine = srv.backend._engine
    gone, steps = srv.metric("genai_serve_client_disconnects_total"), _steps(srv)
    stream = client.completions.create(
        model=BASE, prompt=LONG_PROMPT, max_tokens=2000, temperature=0, stream=True
    )
    chunks = iter(stream)
    received = [next(chunks) for _ in range(5)]
    assert all(r.choices[0].finish_reason is None for r in received)
    results: list[Any] = []
    other = _concurrent_request(srv, results)
    assert wait_until(lambda: engine.running == 2, timeout=10)
    stream.close()  # the client hangs up mid-stream
    assert wait_until(lambda: engine.running <= 1, timeout=5), "the row was not dropped"
    assert wait_until(lambda: srv.metric("genai_serve_client_disconnects_total") == gone + 1)
    other.join(timeout=30)
    (result,) = results
    assert result.choices[0].finish_reason == "length" and result.usage.completion_tokens == 200
    assert wait_until(lambda: engine.running == 0, timeout=5)
    assert _steps(srv) - steps < 1000  # far fewer than the 2000 tokens asked for
    assert wait_until(lambda: srv.metric("genai_serve_requests_in_flight") == 0)


def test_a_request_whose_client_times_out_is_cancelled(srv, wait_until) -> None:
    engine = srv.backend._engine
    gone, steps = srv.metric("genai_serve_client_disconnects_total"), _steps(srv)
    impatient = openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=0.4)
    results: list[Any] = []
    other = _concurrent_request(srv, results)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(
            model=BASE,
            max_tokens=2000,
            temperature=0,
            messages=[{"role": "user", "content": LONG_PROMPT}],
        )
    assert wait_until(lambda: srv.metric("genai_serve_client_disconnects_total") == gone + 1)
    other.join(timeout=30)
    (result,) = results
    assert result.usage.completion_tokens == 200
    assert wait_until(lambda: engine.running == 0, timeout=5), "the row was not dropped"
    assert _steps(srv) - steps < 1000
    assert wait_until(lambda: srv.metric("genai_serve_requests_in_flight") == 0)
