"""Answers to a conversation from one knowledge base, with citations.

:class:`KnowledgeChat` is what a chatbot over a knowledge base does, apart from where its
pieces come from: the last user message is the question (condensed with the conversation
into a standalone question when the model is generative and there are earlier turns) →
retrieval → the prompt rendered with ``question``, ``context`` (one ``[n] text`` line per
chunk) and ``history`` (the variables the prompt declares of those) → the model → the
answer as an OpenAI chat completion (or its stream of chunks), with ``citations`` (the
chunks its ``[n]`` marks name) and ``genai`` (prompt version, knowledge-base version, every
chunk given) as extra top-level fields.

The caller supplies the parts: how to retrieve (the gateway runs it as the project's job
in its fair CPU pool), the prompt (any :class:`ChatPrompt`: ``apps/`` adapts a registered
prompt version or a template of ``prompts/``), the model (any
:class:`ChatModel`, e.g. a :class:`genai.models.LLMBackend`, fetched only when needed) and
the knowledge base's version. ``apps/`` hosts it as the gateway's ``knowledge-bot`` target.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from genai.errors import ValidationError
from genai.models import (
    ChatMessage,
    ContextPassage,
    Generation,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
)
from rag._types import Chunk, SearchMode

__all__ = [
    "NOTHING_FOUND",
    "ChatModel",
    "ChatOptions",
    "ChatPlan",
    "ChatPrompt",
    "KnowledgeChat",
]

NOTHING_FOUND = "The knowledge base has nothing on this question."
_MARK = re.compile(r"\[(\d+)\]")

_CONDENSE = (
    "Rewrite the last user question as one standalone question that can be understood "
    "without the conversation. Reply with the question only.\n\nConversation:\n{history}\n\n"
    "Last question: {question}"
)

#: The request's sampling parameters that reach the model.
_SAMPLING = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)


class ChatModel(Protocol):
    """What a chat needs of a model (a :class:`genai.models.LLMBackend` is one)."""

    async def generate(self, request: GenerationRequest) -> Generation: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]: ...


class ChatPrompt(Protocol):
    """The prompt a chat renders with ``question``, ``context`` and ``history``."""

    @property
    def ref(self) -> str:
        """The prompt's version (``name@version``), recorded with each answer; "" for one
        that is not registered."""
        ...

    @property
    def variables(self) -> Collection[str]:
        """The variables it declares (it is given those of the three only)."""
        ...

    def render(self, values: Mapping[str, str]) -> str | list[dict[str, Any]]:
        """Text (one user message) or chat messages."""
        ...


#: Chunks for a question: ``retrieve(question, k, mode)``.
Retrieve = Callable[[str, int, SearchMode | None], Awaitable[list[Chunk]]]


@dataclass(frozen=True)
class ChatOptions:
    """How a chat answers. ``extractive``: the model quotes the passages it is given
    (:class:`~genai.models.ContextPassage`) instead of reading the rendered prompt, and
    cannot condense a conversation."""

    k: int = 4
    mode: SearchMode | None = None
    condense: bool = True
    history_turns: int = 6
    extractive: bool = False


@dataclass
class ChatPlan:
    """One question, ready for the model (``generation`` None: nothing retrieved)."""

    question: str
    chunks: list[Chunk] = field(default_factory=list)
    generation: GenerationRequest | None = None
    prompt_version: str = ""
    kb_version: int | None = None
    condensed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def count(self, prompt: int | None, completion: int | None) -> None:
        self.prompt_tokens += prompt or 0
        self.completion_tokens += completion or 0

    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }

    def cited(self, text: str) -> list[int]:
        """The chunk numbers (1-based) the answer's ``[n]`` marks name."""
        return sorted({int(m) for m in _MARK.findall(text) if 0 < int(m) <= len(self.chunks)})

    def extensions(self, cited: list[int]) -> dict[str, Any]:
        """The answer's extra top-level fields: ``citations`` and ``genai``."""
        return {
            "citations": [_citation(n, self.chunks[n - 1]) for n in cited],
            "genai": {
                **({"condensed_question": self.question} if self.condensed else {}),
                "prompt_version": self.prompt_version,
                "kb_version": self.kb_version,
                "chunks": [
                    {"id": c.id, "source": c.metadata.source, "score": round(c.score, 6)}
                    for c in self.chunks
                ],
            },
        }


#: Called once an answer is whole: the plan and the chunk numbers it cites.
OnAnswer = Callable[[ChatPlan, list[int]], None]


class KnowledgeChat:
    """A conversation's answers from one knowledge base (see the module docstring)."""

    def __init__(
        self,
        *,
        retrieve: Retrieve,
        model: Callable[[], Awaitable[ChatModel]],
        prompt: ChatPrompt,
        kb_version: int | None = None,
        options: ChatOptions | None = None,
    ) -> None:
        self._retrieve = retrieve
        self._model = model  # fetched when first needed (a condense or an answer)
        self._prompt = prompt
        self._kb_version = kb_version
        self._options = options or ChatOptions()

    async def plan(self, body: Mapping[str, Any]) -> ChatPlan:
        """Condense, retrieve and render for a chat request's body (OpenAI's shape)."""
        options = self._options
        if int(body.get("n") or 1) != 1:
            raise ValidationError("a knowledge bot gives one answer: n must be 1", field="n")
        refuse_fields(body)
        question, history = conversation(body.get("messages"), options.history_turns)
        plan = ChatPlan(
            question=question, kb_version=self._kb_version, prompt_version=self._prompt.ref
        )
        if history and options.condense and not options.extractive:
            plan.question = await self._condense(question, history, plan)
            plan.condensed = plan.question != question
        plan.chunks = await self._retrieve(plan.question, options.k, options.mode)
        if plan.chunks:
            plan.generation = self._generation(body, self._render(plan, history), plan.chunks)
        return plan

    async def complete(
        self, body: Mapping[str, Any], *, on_answer: OnAnswer | None = None
    ) -> dict[str, Any]:
        """The whole answer: an OpenAI ``chat.completion`` with the extra fields."""
        plan = await self.plan(body)
        text, finish = NOTHING_FOUND, "stop"
        if plan.generation is not None:
            generation = await (await self._model()).generate(plan.generation)
            text, finish = generation.text, generation.finish_reason
            plan.count(generation.prompt_tokens, generation.completion_tokens)
        cited = plan.cited(text)
        if on_answer is not None:
            on_answer(plan, cited)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": plan.usage(),
            **plan.extensions(cited),
        }

    async def stream(
        self, body: Mapping[str, Any], *, on_answer: OnAnswer | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The answer as OpenAI ``chat.completion.chunk`` bodies: the extra fields ride on
        the chunk that ends the choice, the usage on a last chunk of its own."""
        plan = await self.plan(body)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice]}

        # the model (and its key) before the first chunk: a misconfigured one refuses
        model = None if plan.generation is None else await self._model()
        yield chunk({"role": "assistant", "content": ""})
        parts: list[str] = []
        finish = "stop"
        if plan.generation is None or model is None:
            parts.append(NOTHING_FOUND)
            yield chunk({"content": NOTHING_FOUND})
        else:
            async for piece in model.stream(plan.generation):
                if piece.text:
                    parts.append(piece.text)
                    yield chunk({"content": piece.text})
                if piece.finish_reason is not None:
                    finish = piece.finish_reason
                    plan.count(piece.prompt_tokens, piece.completion_tokens)
        cited = plan.cited("".join(parts))
        if on_answer is not None:
            on_answer(plan, cited)
        yield {**chunk({}, finish), **plan.extensions(cited)}
        yield {**base, "choices": [], "usage": plan.usage()}

    # ------------------------------------------------------------ steps

    async def _condense(self, question: str, history: str, plan: ChatPlan) -> str:
        model = await self._model()
        prompt = _CONDENSE.format(history=history, question=question)
        generation = await model.generate(
            GenerationRequest(
                messages=[ChatMessage(role="user", content=prompt)],
                params=sampling({"temperature": 0, "max_tokens": 96}),
            )
        )
        plan.count(generation.prompt_tokens, generation.completion_tokens)
        return " ".join(generation.text.split()) or question

    def _render(self, plan: ChatPlan, history: str) -> list[dict[str, Any]]:
        context = "\n".join(
            f"[{n}] {' '.join(c.text.split())}" for n, c in enumerate(plan.chunks, 1)
        )
        supplied = {"question": plan.question, "context": context, "history": history}
        declared = self._prompt.variables
        rendered = self._prompt.render({k: v for k, v in supplied.items() if k in declared})
        return rendered if isinstance(rendered, list) else [{"role": "user", "content": rendered}]

    def _generation(
        self, body: Mapping[str, Any], messages: Sequence[dict[str, Any]], chunks: list[Chunk]
    ) -> GenerationRequest:
        return GenerationRequest(
            messages=[ChatMessage.model_validate(m) for m in messages],
            params=sampling({k: body[k] for k in _SAMPLING if body.get(k) is not None}),
            # the extractive model quotes these; a generative one reads the rendered prompt
            context=(
                [ContextPassage(id=str(n), text=c.text) for n, c in enumerate(chunks, 1)]
                if self._options.extractive
                else None
            ),
        )


def refuse_fields(body: Mapping[str, Any]) -> None:
    """A knowledge bot answers in prose with citations: it refuses (a 400 naming the field)
    what it cannot honour rather than ignore it and answer something else."""
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type", "text") != "text":
        raise ValidationError(
            "a knowledge bot answers in prose with citations and cannot give a "
            f"{fmt.get('type')} response_format: send structured-output requests to a model "
            "deployment",
            field="response_format",
        )
    if body.get("tools") and body.get("tool_choice") != "none":
        raise ValidationError(
            "a knowledge bot does not call tools: send tool-calling requests to a model "
            "deployment (or tool_choice none)",
            field="tools",
        )
    for name in ("logprobs", "top_logprobs"):
        if body.get(name):
            raise ValidationError(
                f"a knowledge bot does not return {name}: ask a model deployment", field=name
            )


def conversation(messages: Any, turns: int) -> tuple[str, str]:
    """The last user message, and the earlier user/assistant turns (at most ``turns`` of
    each) as ``role: text`` lines."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError(
            "a knowledge bot needs messages with a user question", field="messages"
        )
    parsed = [ChatMessage.model_validate(m) for m in messages]
    talk = [m for m in parsed if m.role in ("user", "assistant")]
    if not talk or talk[-1].role != "user" or not talk[-1].text().strip():
        raise ValidationError(
            "the last message to a knowledge bot must be the user's question", field="messages"
        )
    earlier = talk[:-1][-2 * turns :] if turns else []
    history = "\n".join(f"{m.role}: {' '.join(m.text().split())}" for m in earlier)
    return talk[-1].text().strip(), history


def sampling(body: Mapping[str, Any]) -> SamplingParams:
    """Sampling parameters from OpenAI request fields, checked as the server checks them."""
    from genai.serving import ChatCompletionRequest, check_body

    probe = check_body(
        {"model": "bot", "messages": [{"role": "user", "content": "-"}], **body},
        ChatCompletionRequest,
    )
    params: SamplingParams = probe.requests(None)[0].params
    return params


def _citation(number: int, chunk: Chunk) -> dict[str, Any]:
    meta = chunk.metadata
    return {
        "number": number,
        "label": meta.citation,
        "source": meta.source,
        "title": meta.title,
        "page": meta.page,
        "heading_path": meta.heading_path,
        "chunk_id": chunk.id,
        "text": chunk.text,
    }
