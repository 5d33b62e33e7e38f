"""``genai.testing.FakeLLM``: the LLMBackend contract, and what a scripted backend promises
its users: replies in order, tool calls, errors, word-piece streams, deterministic token
counts, adapters, the recorded requests, and its name in the backend registry."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from genai.errors import BackendError, ConfigError, NotFoundError, ValidationError
from genai.models import (
    ChatMessage,
    ContextPassage,
    GenerationRequest,
    LLMBackend,
    SamplingParams,
    ToolCall,
    backend_names,
    create_backend,
)
from genai.testing import FakeLLM, FakeReply, LLMBackendSuite

pytestmark = pytest.mark.anyio

WEATHER = ToolCall(
    id="call_1", function={"name": "get_weather", "arguments": '{"city": "Paris"}'}
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def chat(text: str = "hello there", **options: object) -> GenerationRequest:
    return GenerationRequest(messages=[ChatMessage(role="user", content=text)], **options)


class TestFakeLLM(LLMBackendSuite):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[LLMBackend]:
        llm = FakeLLM(default="Paris is the capital of France, and its largest city.")
        await llm.start()
        yield llm
        await llm.close()

    @pytest.fixture
    def adapter_path(self) -> str:
        return "/adapters/suite"


async def test_replies_come_in_order_then_the_script_runs_out() -> None:
    llm = FakeLLM(["first", "second"])
    assert (await llm.generate(chat())).text == "first"
    assert llm.remaining() == 1
    assert (await llm.generate(chat())).text == "second"
    with pytest.raises(ConfigError, match="ran out at request 3"):
        await llm.generate(chat())
    llm.add_replies("third")
    assert (await llm.generate(chat())).text == "third"


async def test_the_default_answers_once_the_script_is_used() -> None:
    llm = FakeLLM(["scripted"], default="fallback")
    texts = [(await llm.generate(chat())).text for _ in range(3)]
    assert texts == ["scripted", "fallback", "fallback"]


async def test_tool_calls_finish_with_tool_calls() -> None:
    second = ToolCall(id="call_2", function={"name": "get_time", "arguments": "{}"})
    llm = FakeLLM([WEATHER, [WEATHER, second], FakeReply("Let me check.", (WEATHER,))])
    one = await llm.generate(chat(tools=[{"type": "function"}]))
    assert (one.text, one.finish_reason, one.tool_calls) == ("", "tool_calls", [WEATHER])
    assert one.completion_tokens > 0
    two = await llm.generate(chat())
    assert two.tool_calls == [WEATHER, second]
    chunks = [c async for c in llm.stream(chat())]
    assert "".join(c.text for c in chunks) == "Let me check."
    assert all(c.tool_calls is None for c in chunks[:-1])
    assert (chunks[-1].finish_reason, chunks[-1].tool_calls) == ("tool_calls", [WEATHER])


async def test_an_exception_in_the_script_is_raised_where_the_reply_would_be() -> None:
    failure = BackendError("upstream down", backend="fake", retryable=True)
    llm = FakeLLM([failure, "recovered", failure])
    with pytest.raises(BackendError, match="upstream down"):
        await llm.generate(chat())
    assert (await llm.generate(chat())).text == "recovered"
    with pytest.raises(BackendError, match="upstream down"):
        [c async for c in llm.stream(chat())]


async def test_a_stream_comes_in_word_pieces_and_ends_with_the_usage() -> None:
    llm = FakeLLM(["The answer is 42."])
    chunks = [c async for c in llm.stream(chat("one two three"))]
    assert [c.text for c in chunks[:-1]] == ["The", " answer", " is", " 42."]
    last = chunks[-1]
    assert (last.text, last.finish_reason, last.prompt_tokens, last.completion_tokens) == (
        "",
        "stop",
        3,
        5,  # The answer is 42 .
    )


async def test_max_tokens_and_stop_cut_a_text_reply() -> None:
    llm = FakeLLM(default="Refunds take ten days, sometimes more.")
    cut = await llm.generate(chat(params=SamplingParams(max_tokens=3)))
    assert (cut.text, cut.finish_reason, cut.completion_tokens) == ("Refunds take ten", "length", 3)
    stopped = await llm.generate(chat(params=SamplingParams(stop=[","])))
    assert (stopped.text, stopped.finish_reason) == ("Refunds take ten days", "stop")


async def test_tokens_are_words_and_punctuation_of_every_message_and_passage() -> None:
    llm = FakeLLM()
    request = GenerationRequest(
        messages=[
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content=[{"type": "text", "text": "Hi, you"}]),
        ],
        context=[ContextPassage(id="kb-1", text="Refunds take ten days")],
    )
    # Be brief . / Hi , you / [ kb - 1 ] Refunds take ten days
    assert await llm.count_tokens(request) == 3 + 3 + 9
    assert await llm.count_tokens(GenerationRequest(prompt="")) == 0


async def test_the_context_window_and_unknown_adapters_are_refused_before_any_reply() -> None:
    llm = FakeLLM(["kept"], context_window=10)
    with pytest.raises(ValidationError, match="context window is 10 tokens"):
        await llm.generate(chat("one two three", params=SamplingParams(max_tokens=8)))
    with pytest.raises(NotFoundError, match="'ghost'"):
        await llm.generate(chat(adapter="ghost"))
    assert llm.requests == [] and llm.remaining() == 1
    assert FakeLLM(context_window=None).context_window is None


async def test_requests_are_recorded_in_order_for_assertions() -> None:
    llm = FakeLLM(default="ok")
    first, second = chat("first"), GenerationRequest(prompt="second", adapter="fake-llm")
    await llm.generate(first)
    [c async for c in llm.stream(second)]
    assert llm.requests == [first, second]


async def test_adapters_given_at_construction_are_loaded() -> None:
    llm = FakeLLM(default="ok", model_id="base", adapters={"support": "/adapters/support"})
    assert [(a.name, a.path, a.base_model) for a in llm.adapters()] == [
        ("support", "/adapters/support", "base")
    ]
    assert (await llm.generate(chat(adapter="support"))).text == "ok"
    assert llm.requests[-1].adapter == "support"
    with pytest.raises(ValidationError, match="reserved"):
        await llm.load_adapter("base", "/adapters/x")


async def test_start_and_close_are_recorded() -> None:
    llm = FakeLLM()
    assert (llm.started, llm.closed) == (False, False)
    await llm.start()
    await llm.close()
    assert (llm.started, llm.closed) == (True, True)


async def test_a_deployment_names_it_fake_with_replies_as_options() -> None:
    assert "fake" in backend_names()
    llm = create_backend(
        "fake",
        replies=[
            "Hello!",
            {"tool_calls": [WEATHER.model_dump()]},
            {"text": "Checking.", "tool_calls": [WEATHER.model_dump()]},
        ],
        model_id="scripted",
    )
    assert isinstance(llm, FakeLLM) and llm.model_id == "scripted"
    assert (await llm.generate(chat())).text == "Hello!"
    assert (await llm.generate(chat())).tool_calls == [WEATHER]
    both = await llm.generate(chat())
    assert (both.text, both.tool_calls) == ("Checking.", [WEATHER])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"replies": [{"txt": "typo"}]}, "'text' and/or 'tool_calls'"),
        ({"replies": [[]]}, "empty list of tool calls"),
        ({"model_id": ""}, "model_id"),
        ({"context_window": 0}, "context_window"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FakeLLM(**options)  # type: ignore[arg-type]
