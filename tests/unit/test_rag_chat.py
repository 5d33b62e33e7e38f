"""rag.KnowledgeChat on its own: a scripted model (genai.testing.FakeLLM), a retriever that
records what it was asked, and a prompt that records what it was given."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from genai.errors import ConfigError, ValidationError
from genai.testing import FakeLLM
from rag import (
    NOTHING_FOUND,
    ChatModel,
    ChatOptions,
    Chunk,
    ChunkMetadata,
    KnowledgeChat,
    SearchMode,
)

CHUNKS = [
    Chunk(
        id="c1",
        text="Refunds take ten   days.",
        score=0.9,
        metadata=ChunkMetadata(source="refunds.md", title="Refunds", heading_path=["Policy"]),
    ),
    Chunk(id="c2", text="Invoices are monthly.", score=0.5, metadata=ChunkMetadata(source="b.md")),
]


@dataclass
class Prompt:
    """A ChatPrompt that declares ``variables`` and keeps what it rendered."""

    variables: Collection[str] = ("question", "context")
    ref: str = "qa@3"
    rendered: list[Mapping[str, str]] = field(default_factory=list)

    def render(self, values: Mapping[str, str]) -> str:
        self.rendered.append(dict(values))
        return "\n".join(f"{name}: {value}" for name, value in values.items())


@dataclass
class Retriever:
    found: list[Chunk]
    asked: list[tuple[str, int, SearchMode | None]] = field(default_factory=list)

    async def __call__(self, question: str, k: int, mode: SearchMode | None) -> list[Chunk]:
        self.asked.append((question, k, mode))
        return self.found[:k]


def chat(
    llm: FakeLLM,
    *,
    found: list[Chunk] = CHUNKS,
    options: ChatOptions | None = None,
    prompt: Prompt | None = None,
) -> tuple[KnowledgeChat, Retriever, Prompt, list[int]]:
    retriever, prompt = Retriever(found), prompt or Prompt()
    fetched: list[int] = []

    async def model() -> ChatModel:
        fetched.append(1)
        return llm

    made = KnowledgeChat(
        retrieve=retriever, model=model, prompt=prompt, kb_version=7, options=options
    )
    return made, retriever, prompt, fetched


def body(*messages: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"model": "bot", "messages": [{"role": r, "content": c} for r, c in messages], **extra}


def test_an_answer_cites_the_chunks_its_marks_name() -> None:
    llm = FakeLLM(["Ten days [1], see also [9]."])
    made, retriever, prompt, _ = chat(llm, options=ChatOptions(k=3, mode=SearchMode.DENSE))
    answer = asyncio.run(made.complete(body(("user", "How long do refunds take?"))))
    assert answer["choices"][0]["message"]["content"] == "Ten days [1], see also [9]."
    assert [c["chunk_id"] for c in answer["citations"]] == ["c1"]  # [9] names no chunk
    assert answer["citations"][0]["label"] == "refunds.md Policy"
    assert answer["genai"]["prompt_version"] == "qa@3" and answer["genai"]["kb_version"] == 7
    assert [c["id"] for c in answer["genai"]["chunks"]] == ["c1", "c2"]
    assert retriever.asked == [("How long do refunds take?", 3, SearchMode.DENSE)]
    # the prompt got the declared variables only, one "[n] text" line per chunk
    assert prompt.rendered == [
        {
            "question": "How long do refunds take?",
            "context": "[1] Refunds take ten days.\n[2] Invoices are monthly.",
        }
    ]
    usage = answer["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_a_conversation_is_condensed_before_retrieval() -> None:
    llm = FakeLLM(["How long do refunds take?", "Ten days [1]."])
    made, retriever, prompt, _ = chat(llm, prompt=Prompt(variables=("question", "history")))
    answer = asyncio.run(
        made.complete(
            body(("user", "Tell me about refunds"), ("assistant", "Sure."), ("user", "How long?"))
        )
    )
    assert retriever.asked[0][0] == "How long do refunds take?"
    assert answer["genai"]["condensed_question"] == "How long do refunds take?"
    messages = llm.requests[0].messages
    assert messages is not None
    condense = messages[0].text()
    assert "user: Tell me about refunds" in condense and "Last question: How long?" in condense
    assert prompt.rendered == [
        {
            "question": "How long do refunds take?",
            "history": "user: Tell me about refunds\nassistant: Sure.",
        }
    ]
    # the condensing call is billed with the answer
    spent = sum(asyncio.run(llm.count_tokens(r)) for r in llm.requests)
    assert answer["usage"]["prompt_tokens"] == spent


def test_an_extractive_model_is_given_the_passages_and_never_condenses() -> None:
    llm = FakeLLM(["Refunds take ten days. [1]"])
    made, retriever, _, _ = chat(llm, options=ChatOptions(extractive=True))
    asyncio.run(made.complete(body(("user", "a"), ("assistant", "b"), ("user", "Refunds?"))))
    assert retriever.asked[0][0] == "Refunds?"
    (request,) = llm.requests
    assert [(p.id, p.text) for p in request.context or []] == [
        ("1", CHUNKS[0].text),
        ("2", CHUNKS[1].text),
    ]


def test_nothing_retrieved_answers_so_without_the_model() -> None:
    made, _, _, fetched = chat(FakeLLM(), found=[])
    answer = asyncio.run(made.complete(body(("user", "Anything?"))))
    assert answer["choices"][0]["message"]["content"] == NOTHING_FOUND
    assert answer["citations"] == [] and fetched == []


def test_a_stream_carries_the_fields_on_its_last_choice_chunk_and_usage_after() -> None:
    seen: list[list[int]] = []
    made, _, _, _ = chat(FakeLLM(["Ten days [2] and [1]."]))

    async def collect() -> list[dict[str, Any]]:
        stream: AsyncIterator[dict[str, Any]] = made.stream(
            body(("user", "Refunds?")), on_answer=lambda plan, cited: seen.append(cited)
        )
        return [chunk async for chunk in stream]

    chunks = asyncio.run(collect())
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "Ten days [2] and [1]."
    ending = chunks[-2]
    assert ending["choices"][0]["finish_reason"] == "stop"
    assert [c["number"] for c in ending["citations"]] == [1, 2]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0
    assert seen == [[1, 2]]


@pytest.mark.parametrize(
    ("request_body", "problem"),
    [
        (body(("user", "q"), n=2), "n must be 1"),
        (body(("assistant", "hi")), "must be the user's question"),
        ({"model": "bot", "messages": []}, "needs messages"),
    ],
)
def test_bad_requests_are_refused_before_retrieval(
    request_body: dict[str, Any], problem: str
) -> None:
    made, retriever, _, _ = chat(FakeLLM())
    with pytest.raises(ValidationError, match=problem):
        asyncio.run(made.complete(request_body))
    assert retriever.asked == []


def test_a_model_that_fails_to_come_up_fails_the_answer() -> None:
    async def broken() -> ChatModel:
        raise ConfigError("no such model")

    made = KnowledgeChat(retrieve=Retriever(CHUNKS), model=broken, prompt=Prompt())
    with pytest.raises(ConfigError, match="no such model"):
        asyncio.run(made.complete(body(("user", "Refunds?"))))
