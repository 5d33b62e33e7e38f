"""The ``extractive`` backend's tool turns, with the real all-MiniLM-L6-v2: the tool a
question names (or the search tool when none does), arguments from the question, and the
answer quoted from the tool's result."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from genai.models import (
    ChatMessage,
    ExtractiveBackend,
    FunctionChoice,
    GenerationRequest,
    SentenceTransformerEmbedder,
    ToolCall,
    ToolChoice,
)


def _tool(name: str, description: str, **properties: Any) -> dict[str, Any]:
    required = [k for k, v in properties.items() if "default" not in v]
    schema = {"type": "object", "properties": properties, "required": required}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": schema},
    }


# the project assistant's tools, as agents/_platform.py describes them
TOOLS = [
    _tool("kb_search", "Search the knowledge base 'docs'; cite [n].", query={"type": "string"}),
    _tool("deployments", "The project's deployments: their newest revision, targets and traffic."),
    _tool(
        "adapters",
        "The project's registered adapters: base model, version, training run, metrics.",
    ),
    _tool(
        "adapter_card",
        "The facts a model card of an adapter states, from the registry and its lineage.",
        adapter={"type": "string"},
    ),
    _tool(
        "eval_runs",
        "The project's newest eval runs with their scores.",
        limit={"type": "integer", "default": 10},
    ),
    _tool(
        "usage",
        "How much the project used and spent: requests, tokens and cost in USD, by model, "
        "over the last days.",
        days={"type": "integer", "default": 7},
    ),
]


@pytest.fixture
def backend(embedder: SentenceTransformerEmbedder) -> ExtractiveBackend:
    return ExtractiveBackend(embedder=embedder)


def _ask(
    backend: ExtractiveBackend,
    question: str,
    tools: list[dict[str, Any]] = TOOLS,
    choice: ToolChoice | None = None,
) -> list[ToolCall]:
    request = GenerationRequest(
        messages=[
            ChatMessage(role="system", content="You are the project's assistant."),
            ChatMessage(role="user", content=question),
        ],
        tools=tools,
        tool_choice=choice,
    )
    generation = asyncio.run(backend.generate(request))
    assert (generation.finish_reason == "tool_calls") == bool(generation.tool_calls)
    return generation.tool_calls or []


def _called(calls: list[ToolCall]) -> list[tuple[str, dict[str, Any]]]:
    return [(c.function["name"], json.loads(c.function["arguments"])) for c in calls]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Which deployments does my project have?", ("deployments", {})),
        ("List my adapters", ("adapters", {})),  # adapter_card is as close, but needs a name
        ("Draft a model card for support-lora", ("adapter_card", {"adapter": "support-lora"})),
        ("Write the model card of adapter `faq_v2`", ("adapter_card", {"adapter": "faq_v2"})),
        ("Show the eval runs", ("eval_runs", {})),
        ("How much did we spend over the last 30 days?", ("usage", {"days": 30})),
        # no tool's description is near: a question for the documents
        ("How do I run the tests?", ("kb_search", {"query": "How do I run the tests?"})),
    ],
)
def test_the_tool_the_question_names_is_called_with_its_arguments(
    backend: ExtractiveBackend, question: str, expected: tuple[str, dict[str, Any]]
) -> None:
    assert _called(_ask(backend, question)) == [expected]


def test_without_a_search_tool_an_unmatched_question_is_answered_with_the_tools_it_has(
    backend: ExtractiveBackend,
) -> None:
    tools = [t for t in TOOLS if t["function"]["name"] != "kb_search"]
    request = GenerationRequest(
        messages=[ChatMessage(role="user", content="What is the capital of France?")], tools=tools
    )
    generation = asyncio.run(backend.generate(request))
    assert generation.tool_calls is None and generation.finish_reason == "stop"
    assert generation.text.startswith("None of my tools (deployments, adapters")


def test_tool_choice_required_named_and_none(backend: ExtractiveBackend) -> None:
    no_search = [t for t in TOOLS if t["function"]["name"] != "kb_search"]
    forced = _called(_ask(backend, "What is the capital of France?", no_search, "required"))
    assert len(forced) == 1 and forced[0][0] in {"deployments", "adapters", "eval_runs", "usage"}
    named = _ask(backend, "Which deployments?", TOOLS, FunctionChoice(name="eval_runs"))
    assert _called(named) == [("eval_runs", {})]
    assert _ask(backend, "Which deployments does my project have?", TOOLS, "none") == []


def test_a_tool_whose_required_argument_the_question_lacks_is_passed_over(
    backend: ExtractiveBackend,
) -> None:
    card_only = [t for t in TOOLS if t["function"]["name"] == "adapter_card"]
    assert _called(
        _ask(backend, "draft the model card for support-lora", card_only, "required")
    ) == [("adapter_card", {"adapter": "support-lora"})]
    assert _ask(backend, "draft the model card", card_only, "required") == []  # which one?


def _answer(backend: ExtractiveBackend, question: str, name: str, content: str) -> str:
    call = {"id": "call_1", "function": {"name": name, "arguments": "{}"}}
    request = GenerationRequest(
        messages=[
            ChatMessage(role="user", content=question),
            ChatMessage(role="assistant", tool_calls=[ToolCall.model_validate(call)]),
            ChatMessage(role="tool", tool_call_id="call_1", content=content),
        ],
        tools=TOOLS,
    )
    generation = asyncio.run(backend.generate(request))
    assert generation.tool_calls is None and generation.finish_reason == "stop"
    return generation.text


def test_passages_a_tool_returned_are_quoted_with_their_numbers(
    backend: ExtractiveBackend,
) -> None:
    found = [
        {"n": 1, "source": "README.md", "text": "Bananas are yellow. They grow in bunches."},
        {"n": 2, "source": "README.md", "text": "Run make test to run the whole test suite."},
    ]
    text = _answer(backend, "How do I run the tests?", "kb_search", json.dumps(found))
    assert text == "Run make test to run the whole test suite [2]."


def test_records_a_tool_returned_become_lines_and_errors_are_quoted(
    backend: ExtractiveBackend,
) -> None:
    rows = [
        {"name": f"bot-{i}", "revision": i, "targets": ["bot: knowledge-bot"]} for i in range(12)
    ]
    text = _answer(backend, "Which deployments?", "deployments", json.dumps(rows))
    lines = text.splitlines()
    assert lines[0] == "deployments (12):"
    assert lines[1] == "- name=bot-0, revision=0, targets=[bot: knowledge-bot]"
    assert lines[-1] == "- … and 2 more" and len(lines) == 12
    assert _answer(backend, "Which adapters?", "adapters", "[]") == "adapters: none found."
    error = "error: adapter 'x' not found"
    assert _answer(backend, "card of x-1", "adapter_card", error) == f"adapter_card: {error}"


def test_a_streamed_tool_turn_ends_with_the_call(backend: ExtractiveBackend) -> None:
    request = GenerationRequest(
        messages=[ChatMessage(role="user", content="Which deployments does my project have?")],
        tools=TOOLS,
    )

    async def collect() -> list[Any]:
        return [chunk async for chunk in backend.stream(request)]

    chunks = asyncio.run(collect())
    assert "".join(c.text for c in chunks) == ""
    assert chunks[-1].finish_reason == "tool_calls"
    assert [c.function["name"] for c in chunks[-1].tool_calls or []] == ["deployments"]
