"""The ``openai`` backend against a real HTTP server on 127.0.0.1 that speaks like vLLM's
OpenAI server (a fake at the vendor-API boundary): every mapping and every error translation."""

from __future__ import annotations

import asyncio
import email.utils
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from _clocks import ManualClock

from genai.errors import BackendError, ConfigError, NotFoundError, ValidationError
from genai.models import (
    ChatMessage,
    ContextPassage,
    GenerationChunk,
    GenerationRequest,
    LLMBackend,
    LoadedAdapter,
    OpenAIBackend,
    SamplingParams,
    ToolCall,
    create_backend,
)
from genai.testing import FakeOpenAIServer, LLMBackendSuite, running_server

pytestmark = pytest.mark.anyio

KEY = "sk-test-0123456789"
REPLY = "the answer is forty two"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[list[FakeOpenAIServer], str]]:
    """One real server for the module; each test swaps in a fresh fake behind it."""
    current: list[FakeOpenAIServer] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await current[-1].app(scope, receive, send)

    with running_server(app) as url:
        yield current, url


@pytest.fixture
def fake(served: tuple[list[FakeOpenAIServer], str]) -> FakeOpenAIServer:
    current, url = served
    server = FakeOpenAIServer(
        adapters={"support-bot": "/adapters/support-bot"}, api_key=KEY, reply=REPLY
    )
    server.url = url
    current.append(server)
    return server


def make(fake: FakeOpenAIServer, **options: Any) -> OpenAIBackend:
    values: dict[str, Any] = {"base_url": fake.url, "api_key": KEY, "timeout": 5.0}
    values.update(options)
    return OpenAIBackend(**values)


@pytest.fixture
async def backend(fake: FakeOpenAIServer) -> AsyncIterator[OpenAIBackend]:
    llm = make(fake)
    await llm.start()
    yield llm
    await llm.close()


class TestOpenAIBackend(LLMBackendSuite):
    """The LLMBackend contract (``genai.testing.LLMBackendSuite``) against the fake server."""

    @pytest.fixture
    async def backend(self, fake: FakeOpenAIServer) -> AsyncIterator[LLMBackend]:
        llm = make(fake)
        await llm.start()
        yield llm
        await llm.close()

    @pytest.fixture
    def adapter_path(self) -> str:
        return "/adapters/suite-adapter"


def chat(text: str = "what is the answer", **options: Any) -> GenerationRequest:
    return GenerationRequest(messages=[ChatMessage(role="user", content=text)], **options)


async def collect(llm: OpenAIBackend, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in llm.stream(request)]


# ------------------------------------------------------------------ start and models


async def test_start_learns_base_model_window_and_adapters(backend: OpenAIBackend) -> None:
    assert backend.model_id == "fake-base"
    assert backend.context_window == 64
    assert backend.adapters() == [
        LoadedAdapter(name="support-bot", path="/adapters/support-bot", base_model="fake-base")
    ]


async def test_the_registry_builds_it(fake: FakeOpenAIServer) -> None:
    llm = create_backend("openai", base_url=fake.url + "/v1/", api_key=KEY)
    assert isinstance(llm, OpenAIBackend)
    await llm.start()
    try:
        assert llm.model_id == "fake-base"  # a trailing /v1 is the same server
    finally:
        await llm.close()


async def test_a_configured_model_chooses_among_several_bases(fake: FakeOpenAIServer) -> None:
    fake.other_bases = ("other-base",)
    with pytest.raises(ConfigError, match=r"2 base models \(fake-base, other-base\)"):
        await make(fake).start()
    llm = make(fake, model="other-base")
    await llm.start()
    assert llm.model_id == "other-base"
    assert llm.adapters() == []  # support-bot's parent is fake-base
    await llm.close()


async def test_a_configured_model_the_server_lacks_is_not_found(fake: FakeOpenAIServer) -> None:
    with pytest.raises(NotFoundError, match=r"does not serve the model 'nope'.*fake-base"):
        await make(fake, model="nope").start()


async def test_a_server_without_a_model_list_needs_the_model_option(
    fake: FakeOpenAIServer,
) -> None:
    fake.list_models = False
    with pytest.raises(ConfigError, match="configure the backend's model option"):
        await make(fake).start()
    llm = make(fake, model="fake-base")
    await llm.start()
    assert (llm.model_id, llm.context_window, llm.adapters()) == ("fake-base", None, [])
    assert (await llm.generate(chat())).text == REPLY
    await llm.close()


@pytest.mark.parametrize("url", ["ftp://example.com", "not a url", "http://h:1/?key=secret"])
def test_a_bad_base_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIBackend(base_url=url)


async def test_calls_before_start_say_so(fake: FakeOpenAIServer) -> None:
    llm = make(fake)
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await llm.generate(chat())
    with pytest.raises(ValidationError, match=r"call start\(\) first"):
        await llm.load_adapter("x", "/adapters/x")


# ------------------------------------------------------------------ request mapping


async def test_chat_generation_maps_text_finish_and_usage(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    result = await backend.generate(chat("what is the answer"))
    assert (result.text, result.finish_reason) == (REPLY, "stop")
    assert (result.prompt_tokens, result.completion_tokens) == (4, 5)
    assert result.tool_calls is None
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body == {
        "model": "fake-base",
        "messages": [{"role": "user", "content": "what is the answer"}],
    }


async def test_prompt_generation_goes_to_completions(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    result = await backend.generate(
        GenerationRequest(prompt="one two three", params=SamplingParams(max_tokens=2))
    )
    assert (result.text, result.finish_reason) == ("the answer", "length")
    assert (result.prompt_tokens, result.completion_tokens) == (3, 2)
    assert fake.last("/v1/completions") == {
        "model": "fake-base",
        "prompt": "one two three",
        "max_tokens": 2,
    }


async def test_every_sampling_parameter_is_sent(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    params = SamplingParams(
        max_tokens=10,
        temperature=0.0,
        top_p=0.5,
        stop=["forty"],
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
    )
    result = await backend.generate(chat(params=params))
    assert result.text == "the answer is"  # the fake honours stop
    body = fake.last("/v1/chat/completions")
    assert {k: body[k] for k in params.model_dump()} == params.model_dump()


async def test_unset_sampling_defaults_are_left_to_the_server(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    await backend.generate(chat(params=SamplingParams(temperature=1.0)))
    body = fake.last("/v1/chat/completions")
    assert body["temperature"] == 1.0  # set explicitly: sent
    assert not {"top_p", "stop", "seed", "max_tokens", "presence_penalty"} & set(body)


async def test_messages_keep_their_fields(fake: FakeOpenAIServer, backend: OpenAIBackend) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": "{}"},
    }
    messages = [
        ChatMessage(role="system", content="be brief"),
        ChatMessage(role="user", content=[{"type": "text", "text": "hi"}]),
        ChatMessage(role="assistant", tool_calls=[ToolCall.model_validate(call)]),
        ChatMessage(role="tool", content="sunny", tool_call_id="call_1", name="get_weather"),
    ]
    await backend.generate(GenerationRequest(messages=messages))
    assert fake.last("/v1/chat/completions")["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1", "name": "get_weather"},
    ]


async def test_an_adapter_is_named_in_model(fake: FakeOpenAIServer, backend: OpenAIBackend) -> None:
    result = await backend.generate(chat(adapter="support-bot"))
    assert result.text == f"[support-bot] {REPLY}"
    assert fake.last("/v1/chat/completions")["model"] == "support-bot"
    await backend.generate(chat(adapter="fake-base"))
    assert fake.last("/v1/chat/completions")["model"] == "fake-base"


async def test_context_passages_travel_as_a_body_field(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    passages = [
        ContextPassage(id="kb-1", text="Refunds take 5 days."),
        ContextPassage(id="kb-2", text="Cards renew yearly."),
    ]
    await backend.generate(chat(context=passages))
    assert fake.last("/v1/chat/completions")["context"] == [
        {"id": "kb-1", "text": "Refunds take 5 days."},
        {"id": "kb-2", "text": "Cards renew yearly."},
    ]


async def test_tools_go_up_and_tool_calls_come_back(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    result = await backend.generate(chat("weather in Paris?", tools=[WEATHER_TOOL]))
    assert fake.last("/v1/chat/completions")["tools"] == [WEATHER_TOOL]
    assert (result.text, result.finish_reason) == ("", "tool_calls")
    assert result.tool_calls is not None
    [call] = result.tool_calls
    assert call.id == "call_fake_0"
    assert call.function == {"name": "get_weather", "arguments": fake.tool_arguments}


async def test_tools_with_a_prompt_are_refused_here(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    before = len(fake.requests)
    with pytest.raises(ValidationError, match="tools need chat messages"):
        await backend.generate(GenerationRequest(prompt="hi", tools=[WEATHER_TOOL]))
    assert len(fake.requests) == before


# ------------------------------------------------------------------ streaming


async def test_a_chat_stream_has_text_then_a_final_chunk_with_usage(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    chunks = await collect(backend, chat("what is the answer"))
    assert [c.text for c in chunks[:-1]] == ["the", " answer", " is", " forty", " two"]
    assert all(c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert (last.text, last.finish_reason) == ("", "stop")
    assert (last.prompt_tokens, last.completion_tokens) == (4, 5)
    body = fake.last("/v1/chat/completions")
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_a_completion_stream_and_its_length_finish(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    chunks = await collect(
        backend,
        GenerationRequest(prompt="a b", adapter="support-bot", params=SamplingParams(max_tokens=3)),
    )
    assert "".join(c.text for c in chunks) == "[support-bot] the answer"
    assert chunks[-1].finish_reason == "length"
    assert (chunks[-1].prompt_tokens, chunks[-1].completion_tokens) == (2, 3)
    assert fake.last("/v1/completions")["model"] == "support-bot"


async def test_streamed_tool_call_deltas_become_whole_calls(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    chunks = await collect(backend, chat("weather?", tools=[WEATHER_TOOL]))
    assert all(c.tool_calls is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason == "tool_calls"
    assert last.tool_calls is not None
    [call] = last.tool_calls
    assert call.id == "call_fake_0"
    assert call.function == {"name": "get_weather", "arguments": fake.tool_arguments}


# ------------------------------------------------------------------ tokens


async def test_count_tokens_asks_the_server(fake: FakeOpenAIServer, backend: OpenAIBackend) -> None:
    assert await backend.count_tokens(chat("one two three")) == 3
    assert fake.last("/tokenize") == {
        "model": "fake-base",
        "add_generation_prompt": True,
        "messages": [{"role": "user", "content": "one two three"}],
    }
    assert await backend.count_tokens(GenerationRequest(prompt="a b c d e")) == 5
    assert fake.last("/tokenize") == {"model": "fake-base", "prompt": "a b c d e"}
    await backend.count_tokens(chat("x", tools=[WEATHER_TOOL]))
    assert fake.last("/tokenize")["tools"] == [WEATHER_TOOL]


async def test_count_tokens_estimates_without_a_tokenize_route(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.tokenize = False
    assert await backend.count_tokens(GenerationRequest(prompt="x" * 41)) == 11  # ⌈41/4⌉
    # 3 for the reply's priming + per message 4 + ⌈chars/4⌉
    assert await backend.count_tokens(chat("y" * 8)) == 3 + 4 + 2
    assert len(fake.bodies("/tokenize")) == 1  # asked once, then remembered


# ------------------------------------------------------------------ adapters


async def test_load_and_unload_adapters(fake: FakeOpenAIServer, backend: OpenAIBackend) -> None:
    info = await backend.load_adapter("billing", "/adapters/billing")
    assert info == LoadedAdapter(name="billing", path="/adapters/billing", base_model="fake-base")
    assert fake.last("/v1/load_lora_adapter") == {
        "lora_name": "billing",
        "lora_path": "/adapters/billing",
    }
    assert [a.name for a in backend.adapters()] == ["support-bot", "billing"]
    assert (await backend.generate(chat(adapter="billing"))).text.startswith("[billing]")

    await backend.unload_adapter("billing")
    assert fake.last("/v1/unload_lora_adapter") == {"lora_name": "billing"}
    assert [a.name for a in backend.adapters()] == ["support-bot"]


async def test_replace_reloads_in_place(fake: FakeOpenAIServer, backend: OpenAIBackend) -> None:
    with pytest.raises(ValidationError, match="has already been loaded"):
        await backend.load_adapter("support-bot", "/adapters/support-bot-v2")
    info = await backend.load_adapter("support-bot", "/adapters/support-bot-v2", replace=True)
    assert fake.last("/v1/load_lora_adapter")["load_inplace"] is True
    assert info.path == "/adapters/support-bot-v2"
    assert backend.adapters()[0].path == "/adapters/support-bot-v2"


async def test_adapter_errors_are_translated(backend: OpenAIBackend) -> None:
    with pytest.raises(ValidationError, match="No adapter found for /elsewhere/x"):
        await backend.load_adapter("x", "/elsewhere/x")
    with pytest.raises(NotFoundError, match="The lora adapter 'ghost' cannot be found"):
        await backend.unload_adapter("ghost")
    assert [a.name for a in backend.adapters()] == ["support-bot"]


async def test_the_adapter_list_follows_the_server(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.adapters["loaded-elsewhere"] = "/adapters/elsewhere"
    await backend.load_adapter("mine", "/adapters/mine")
    assert {a.name for a in backend.adapters()} == {"support-bot", "loaded-elsewhere", "mine"}


# ------------------------------------------------------------------ error translation


async def test_a_server_error_is_retryable_and_names_the_url(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.mode = "error500"
    with pytest.raises(BackendError) as caught:
        await backend.generate(chat())
    error = caught.value
    assert (error.status, error.retryable, error.backend) == (500, True, "openai")
    assert f"{fake.url}/v1/chat/completions" in error.message
    assert "The engine died unexpectedly" in error.message
    with pytest.raises(BackendError) as caught:
        await collect(backend, chat())
    assert (caught.value.status, caught.value.retryable) == (500, True)


@pytest.mark.parametrize("stream", [False, True])
async def test_rate_limits_carry_retry_after(
    fake: FakeOpenAIServer, backend: OpenAIBackend, stream: bool
) -> None:
    fake.mode = "ratelimit"
    with pytest.raises(BackendError) as caught:
        await (collect(backend, chat()) if stream else backend.generate(chat()))
    error = caught.value
    assert (error.status, error.retryable, error.retry_after) == (429, True, 7.0)
    assert "retry in 7 s" in error.message


@pytest.mark.parametrize(("in_s", "retry_after"), [(30, 30.0), (-30, 0.0)])
async def test_retry_after_as_an_http_date(
    fake: FakeOpenAIServer, in_s: int, retry_after: float
) -> None:
    """Counted from the backend's clock (the wall clock, here one that stands still)."""
    clock = ManualClock(start=1_800_000_000.0)  # a whole second: HTTP dates have no fraction
    llm = make(fake, clock=clock)
    await llm.start()
    fake.mode = "ratelimit"
    fake.retry_after = email.utils.formatdate(clock() + in_s, usegmt=True)
    with pytest.raises(BackendError) as caught:
        await llm.generate(chat())
    await llm.close()
    assert caught.value.retry_after == retry_after


async def test_a_refused_key_is_not_retryable_and_not_echoed(fake: FakeOpenAIServer) -> None:
    with pytest.raises(BackendError) as caught:
        await make(fake, api_key="sk-wrong-key-42").start()
    error = caught.value
    assert (error.status, error.retryable) == (401, False)
    assert "refused the API key" in error.message
    assert "sk-wrong-key-42" not in error.message


async def test_keys_in_extra_headers_are_not_echoed(fake: FakeOpenAIServer) -> None:
    fake.api_key = None
    fake.mode = "forbidden"
    fake.reply = "unused"
    llm = make(fake, api_key=None, headers={"X-Api-Key": "vendor-secret-77"})
    await llm.start()
    fake.forbidden_message = "key vendor-secret-77 may not use this model"
    with pytest.raises(BackendError) as caught:
        await llm.generate(chat())
    assert "***" in caught.value.message and "vendor-secret-77" not in caught.value.message
    await llm.close()


async def test_a_forbidden_model_is_not_retryable(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.mode = "forbidden"
    with pytest.raises(BackendError) as caught:
        await backend.generate(chat())
    assert (caught.value.status, caught.value.retryable) == (403, False)
    assert "This key may not use this model" in caught.value.message


async def test_extra_headers_are_sent(fake: FakeOpenAIServer) -> None:
    llm = make(fake, api_key=None, headers={"Authorization": f"Bearer {KEY}", "X-Team": "t1"})
    await llm.start()
    await llm.generate(chat())
    assert fake.requests[-1].headers["x-team"] == "t1"
    await llm.close()


async def test_a_bad_request_is_a_validation_error_with_the_upstream_message(
    backend: OpenAIBackend,
) -> None:
    too_long = SamplingParams(max_tokens=1000)
    with pytest.raises(ValidationError, match="maximum context length is 64 tokens"):
        await backend.generate(chat(params=too_long))
    with pytest.raises(ValidationError, match="maximum context length is 64 tokens"):
        await collect(backend, chat(params=too_long))


async def test_an_unprocessable_request_quotes_the_field_errors(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.mode = "unprocessable"
    with pytest.raises(ValidationError, match=r"\(422\): Field required"):
        await backend.generate(chat())


async def test_a_garbage_answer_is_a_backend_error(
    fake: FakeOpenAIServer, backend: OpenAIBackend
) -> None:
    fake.mode = "garbage"
    with pytest.raises(BackendError, match="not JSON") as caught:
        await backend.generate(chat())
    assert caught.value.retryable is False


async def test_a_timeout_is_retryable_and_names_the_url(fake: FakeOpenAIServer) -> None:
    # the hang outlasts the timeout many times over: an answer (no error) means no timeout;
    # the timeout itself leaves a busy machine room to connect (no clock is read here)
    llm = make(fake, timeout=1.0)
    await llm.start()
    fake.mode, fake.hang_s = "hang", 8.0
    for attempt in (llm.generate(chat()), collect(llm, chat())):
        with pytest.raises(BackendError, match=r"did not answer within 1 s") as caught:
            await attempt
        assert caught.value.retryable is True
        assert f"{fake.url}/v1/chat/completions" in caught.value.message
    await llm.close()


async def test_an_unreachable_server_is_retryable_and_credentials_are_masked() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    llm = OpenAIBackend(base_url=f"http://alice:hunter2@127.0.0.1:{port}", api_key=KEY)
    with pytest.raises(BackendError) as caught:
        await llm.start()
    error = caught.value
    assert error.retryable is True
    assert f"cannot connect to http://***@127.0.0.1:{port}/v1/models" in error.message
    assert "hunter2" not in error.message and KEY not in error.message


# ------------------------------------------------------------------ broken streams


@pytest.mark.parametrize(
    ("mode", "retryable", "message"),
    [
        ("drop", True, "the connection to .* broke"),
        ("unfinished", True, r"sent \[DONE\] before the generation finished"),
        ("eof", True, "closed the stream before the generation finished"),
        ("garbage", False, "a stream event that is not JSON"),
        ("not_sse", False, "not a server-sent event"),
        ("error_event", True, r"failed \(500\): The engine died mid-stream"),
    ],
)
async def test_a_broken_stream_is_a_backend_error(
    fake: FakeOpenAIServer, backend: OpenAIBackend, mode: str, retryable: bool, message: str
) -> None:
    fake.mode = mode
    received: list[GenerationChunk] = []
    with pytest.raises(BackendError, match=message) as caught:
        async for chunk in backend.stream(chat()):
            received.append(chunk)
    assert caught.value.retryable is retryable
    assert all(c.finish_reason is None for c in received)
    fake.mode = "ok"  # the connection pool survives a broken stream
    assert (await backend.generate(chat())).text == REPLY


async def test_concurrent_streams_share_one_client(backend: OpenAIBackend) -> None:
    results = await asyncio.gather(*(collect(backend, chat()) for _ in range(8)))
    assert all("".join(c.text for c in chunks) == REPLY for chunks in results)
