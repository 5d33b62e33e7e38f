"""OpenAI API parity of ``genai serve`` on the transformers backend, driven by the clients
users have: structured output (the openai SDK's ``.parse()``, LangChain's
``with_structured_output``, LlamaIndex's ``structured_predict``), tool calling (forced and
parsed, streamed, with tool results in the history), log-probabilities (chat, and
completions with ``echo`` as lm-eval asks), token-id prompts and the tokenizer routes.

The model is a random tiny Llama whose chat template renders tools: what it writes is
nonsense, but constrained decoding makes it valid against the schema every time, which is
what these tests check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import httpx
import jsonschema
import openai
import pytest
import torch
from pydantic import BaseModel, Field

MODEL = "tiny-tools"


class City(BaseModel):
    name: str = Field(max_length=12)
    population: int = Field(ge=0, le=1000)
    kind: Literal["town", "city"]


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 10}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
TIME: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}},
            "required": ["zone"],
            "additionalProperties": False,
        },
    },
}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def srv(tiny, run_server) -> Iterator[Any]:
    with run_server(tiny.tools_model) as server:
        yield server


@pytest.fixture(scope="module")
def client(srv) -> Any:  # Any: the tests send what the SDK's types do not describe
    return openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0)


# ------------------------------------------------------------------ structured output


def test_json_schema_through_the_sdks_parse(client) -> None:
    for seed in range(3):
        reply = client.chat.completions.parse(
            model=MODEL,
            messages=ASK,
            response_format=City,
            max_tokens=80,
            temperature=1.0,
            seed=seed,
        )
        message = reply.choices[0].message
        assert reply.choices[0].finish_reason == "stop"
        assert isinstance(message.parsed, City)


@pytest.mark.parametrize("stream", [False, True])
def test_json_object_and_schema_streamed_or_not(client, stream: bool) -> None:
    """A closed schema always ends; an open object (json_object) ends when the model
    chooses, which a random model may not do before max_tokens: as with OpenAI's JSON mode,
    a ``length`` finish may cut the JSON, and every ``stop`` is whole JSON."""
    schema = {**City.model_json_schema(), "additionalProperties": False}  # closed
    formats: list[dict[str, Any]] = [
        {"type": "json_object"},
        {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
    ]
    for fmt in formats:
        stopped = 0
        for seed in range(6):
            options: dict[str, Any] = {"response_format": fmt, "max_tokens": 100, "seed": seed}
            if stream:
                chunks = list(
                    client.chat.completions.create(
                        model=MODEL, messages=ASK, stream=True, **options
                    )
                )
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                finish = chunks[-1].choices[0].finish_reason
            else:
                reply = client.chat.completions.create(model=MODEL, messages=ASK, **options)
                text = reply.choices[0].message.content or ""
                finish = reply.choices[0].finish_reason
            if finish == "length":
                assert fmt["type"] == "json_object", text
                continue
            stopped += 1
            value = json.loads(text)
            assert isinstance(value, dict)
            if fmt["type"] == "json_schema":
                jsonschema.validate(value, schema)
        assert stopped >= 3


def test_langchain_with_structured_output(srv) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model=MODEL,
        base_url=srv.v1,
        api_key="unused",
        max_tokens=200,
        max_retries=0,
        temperature=0,
    )
    for method in ("json_schema", "function_calling"):
        # strict: the schema closes its objects (additionalProperties false), as OpenAI's
        # strict mode requires; a random model fills an open object until max_tokens
        structured = llm.with_structured_output(City, method=method, strict=True)
        result = structured.invoke("Name a city as JSON with name, population and kind.")
        assert isinstance(result, City), method


def test_llamaindex_structured_predict(srv) -> None:
    from llama_index.core.prompts import PromptTemplate
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=MODEL,
        api_base=srv.v1,
        api_key="unused",
        is_chat_model=True,
        is_function_calling_model=True,
        max_tokens=80,
        max_retries=0,
        context_window=2048,
    )
    city = llm.structured_predict(City, PromptTemplate("Describe the city {name}."), name="Lyon")
    assert isinstance(city, City)


# ------------------------------------------------------------------ tools


def _arguments_valid(call: Any, tools: list[dict[str, Any]]) -> None:
    by_name = {t["function"]["name"]: t["function"]["parameters"] for t in tools}
    assert call.function.name in by_name
    jsonschema.validate(json.loads(call.function.arguments), by_name[call.function.name])


@pytest.mark.parametrize(
    "choice", ["required", {"type": "function", "function": {"name": "get_time"}}]
)
def test_forced_tool_calls(client, choice: Any) -> None:
    """One call (parallel_tool_calls false) always ends; with parallel calls a random model
    may go on adding calls until max_tokens (a ``length`` finish, no calls), so some seeds
    must end and every one that ends is whole."""
    tools = [WEATHER, TIME]
    for parallel in (True, False):
        ended = 0
        for seed in range(4 if parallel else 2):
            reply = client.chat.completions.create(
                model=MODEL,
                messages=ASK,
                tools=tools,
                tool_choice=choice,
                parallel_tool_calls=parallel,
                max_tokens=160,
                seed=seed,
            )
            choice0 = reply.choices[0]
            if choice0.finish_reason == "length":
                assert parallel and not choice0.message.tool_calls
                continue
            ended += 1
            assert choice0.finish_reason == "tool_calls"
            calls = choice0.message.tool_calls or []
            assert calls and (parallel or len(calls) == 1)
            for call in calls:
                _arguments_valid(call, tools)
                if isinstance(choice, dict):
                    assert call.function.name == "get_time"
            assert len({c.id for c in calls}) == len(calls)
        assert ended >= 1


def test_streamed_tool_calls_assemble_as_the_sdk_reads_them(client) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=[WEATHER],
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=120,
            stream=True,
        )
    )
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert deltas and chunks[-1].choices[0].finish_reason == "tool_calls"
    arguments = "".join(d.function.arguments or "" for d in deltas if d.index == 0)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])


def test_tool_results_in_the_history_are_rendered(client, srv) -> None:
    call: dict[str, Any] = {"id": "call_1", "type": "function"}
    call["function"] = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    history = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 18 degrees"},
    ]
    tokens = httpx.post(
        srv.url + "/tokenize",
        json={"model": MODEL, "messages": history, "tools": [WEATHER]},
        timeout=30,
    ).json()["tokens"]
    detok = httpx.post(
        srv.url + "/detokenize", json={"model": MODEL, "tokens": tokens}, timeout=30
    ).json()["prompt"]
    assert "<tool_response>\nsunny, 18 degrees" in detok
    assert '"name": "get_weather", "arguments": {"city": "Paris"}' in detok
    assert '"name": "get_weather"' in detok.split("<tools>\n")[1]  # the signatures
    reply = client.chat.completions.create(
        model=MODEL, messages=history, tools=[WEATHER], max_tokens=5, temperature=0
    )
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_langchain_bind_tools_round_trip(srv) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    llm = ChatOpenAI(model=MODEL, base_url=srv.v1, api_key="unused", max_tokens=60)
    # the tool's schema from the function, closed and bounded so a random model ends it
    schema = convert_to_openai_tool(get_weather, strict=True)
    schema["function"]["parameters"]["properties"]["city"]["maxLength"] = 10
    bound = llm.bind_tools([schema], tool_choice="get_weather")
    messages: list[Any] = [HumanMessage("Weather in Paris?")]
    first = bound.invoke(messages)
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    assert isinstance(first.tool_calls[0]["args"].get("city"), str)
    messages += [
        first,
        ToolMessage(
            get_weather.invoke(first.tool_calls[0]["args"]), tool_call_id=first.tool_calls[0]["id"]
        ),
    ]
    second = llm.bind_tools([schema], tool_choice="none").invoke(messages)
    assert second.tool_calls == [] and isinstance(second.content, str)


# ------------------------------------------------------------------ logprobs and tokens


def test_chat_logprobs_with_top_alternatives(client) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3
    )
    content = reply.choices[0].logprobs.content
    assert reply.usage is not None and len(content) == reply.usage.completion_tokens
    for entry in content:
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert entry.logprob == pytest.approx(tops[0], abs=1e-5)  # greedy: the top one


def _reference_logprobs(path: Any, ids: list[int]) -> list[float]:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, :-1]
    scores = torch.log_softmax(logits.float(), dim=-1)
    return [float(scores[i, t]) for i, t in enumerate(ids[1:])]


def test_echo_scores_token_prompts_as_lm_eval_asks(client, tiny) -> None:
    prompts = [[5, 17, 40, 99, 7], [3, 3, 8]]
    reply = client.completions.create(
        model=MODEL, prompt=prompts, max_tokens=0, echo=True, logprobs=1, temperature=0
    )
    assert [c.index for c in reply.choices] == [0, 1]
    for prompt, choice in zip(prompts, reply.choices, strict=True):
        logprobs = choice.logprobs
        assert logprobs.token_logprobs[0] is None and len(logprobs.tokens) == len(prompt)
        expected = _reference_logprobs(tiny.tools_model, prompt)
        assert logprobs.token_logprobs[1:] == pytest.approx(expected, abs=1e-4)
        for value, top in zip(logprobs.token_logprobs[1:], logprobs.top_logprobs[1:], strict=True):
            assert value <= max(top.values()) + 1e-6  # the actual token is among them
    one = client.completions.create(
        model=MODEL, prompt=prompts[0], max_tokens=1, echo=True, logprobs=0, temperature=0
    )
    scored = one.choices[0].logprobs.token_logprobs
    assert len(scored) == len(prompts[0]) + 1  # the prompt's, then the generated token's


def test_tokenizer_routes(srv) -> None:
    text = "Hello, world!"
    tokens = httpx.post(
        srv.url + "/tokenize", json={"model": MODEL, "prompt": text}, timeout=30
    ).json()
    assert tokens["count"] == len(tokens["tokens"]) > 0
    back = httpx.post(
        srv.url + "/detokenize", json={"model": MODEL, "tokens": tokens["tokens"]}, timeout=30
    ).json()
    assert back["prompt"] == text
    info = httpx.get(srv.url + "/tokenizer_info", timeout=30).json()
    assert info["eos_token"] == "<|im_end|>" and "tools" in info["chat_template"]


def test_bad_parity_requests_are_400_naming_the_field(client) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prompt": [10**6]}, "prompt"),  # not a token of this vocabulary
        ({"prompt": "x", "max_tokens": 0}, "max_tokens"),  # nothing to do without echo
    ]
    for options, param in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.completions.create(model=MODEL, **options)
        assert caught.value.param == param
    chat_cases: list[tuple[dict[str, Any], str]] = [
        (
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "x", "schema": {"type": "nope"}},
                }
            },
            "response_format",
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice",
        ),
    ]
    for options, param in chat_cases:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=ASK, **options)
        assert caught.value.param == param


# ------------------------------------------------------------------ relayed by the openai backend


def test_the_openai_backend_relays_formats_tools_and_logprobs(srv, run_server) -> None:
    """``genai serve --backend openai --upstream URL`` in front of the server above: the
    same answers, relayed field by field."""
    from genai.models import OpenAIBackend

    with run_server(OpenAIBackend(base_url=srv.url)) as relay:
        front: Any = openai.OpenAI(base_url=relay.v1, api_key="unused", max_retries=0)
        parsed = front.chat.completions.parse(
            model=MODEL, messages=ASK, response_format=City, max_tokens=80, seed=1
        )
        assert isinstance(parsed.choices[0].message.parsed, City)
        forced = front.chat.completions.create(
            model=MODEL,
            messages=ASK,
            tools=[WEATHER],
            tool_choice="required",
            parallel_tool_calls=False,
            max_tokens=80,
        )
        [call] = forced.choices[0].message.tool_calls or []
        _arguments_valid(call, [WEATHER])
        direct: Any = openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0)
        options: dict[str, Any] = {"max_tokens": 1, "echo": True, "logprobs": 2, "temperature": 0}
        mine = front.completions.create(model=MODEL, prompt="Hello world", **options)
        theirs = direct.completions.create(model=MODEL, prompt="Hello world", **options)
        assert mine.choices[0].text == theirs.choices[0].text
        assert mine.choices[0].logprobs.token_logprobs == pytest.approx(
            theirs.choices[0].logprobs.token_logprobs
        )
        chat = front.chat.completions.create(
            model=MODEL, messages=ASK, max_tokens=3, temperature=0, logprobs=True, top_logprobs=2
        )
        assert len(chat.choices[0].logprobs.content) == 3
