"""The knowledge bot: a gateway target that answers from a project's knowledge base.

A deployment names it as a target's backend, with the bot's configuration as options::

    targets:
      - name: bot
        backend: knowledge-bot
        options:
          kb: docs                      # a knowledge base of the deployment's project
          prompt: qa@production         # a registered prompt (null: the built-in one)
          k: 4                          # chunks retrieved per question
          llm: {backend: extractive}    # or {url: http://…/v1, model: M, api_key_secret: K}
                                        # or {backend: transformers, options: {model: DIR}}

Per request: the last user message is the question (condensed with the conversation into
a standalone question when the LLM is generative and there are earlier turns) → hybrid
retrieval as the caller → the prompt rendered with ``question``, ``context`` (one ``[n]
text`` line per chunk) and ``history`` (the declared ones of those) → the LLM → the answer,
with ``citations`` (the chunks its ``[n]`` marks name: source, title, page, headings, chunk
id, text) and ``genai`` (prompt version, knowledge-base version, every chunk given) as
extra top-level fields of the OpenAI response (on the last chunk of a stream).

Before the cache is looked up the bot notes the knowledge-base and prompt versions
(:class:`~genai.gateway.PreparedTarget`), so a re-ingestion or a moved ``production``
label starts a fresh cache partition, and the usage ledger records the prompt version.
Each answer's trace (versions, chunks given and cited; never the question) is written to
``kb_answers`` off the request path (at most ``max_pending_traces`` writes in flight; beyond
that a trace is dropped and counted): :meth:`rag.KnowledgeBases.answers` reads it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from apps._bot_llms import BotLLM, BotLLMs
from apps._prompts import CallerContext, PromptStage
from genai import Client
from genai._pool import FairPool
from genai.errors import ValidationError
from genai.gateway import DeploymentSpec, GatewayRequest, TargetSpec
from genai.gateway._credentials import UpstreamCredentials
from genai.models import ChatMessage, ContextPassage, GenerationRequest
from genai.settings import Settings
from genai.store import Store
from genai.store import _schema as t
from genai.tenancy import Action
from prompts import PromptTemplate, PromptVersion
from rag import Chunk, KnowledgeBase, KnowledgeBases

__all__ = ["BOT_BACKEND", "BotLLM", "BotOptions", "KnowledgeBot", "check_bot_targets"]

log = logging.getLogger("genai.gateway.bot")

BOT_BACKEND = "knowledge-bot"
_MARK = re.compile(r"\[(\d+)\]")
NOTHING_FOUND = "The knowledge base has nothing on this question."

#: The prompt a bot uses when its options say ``prompt: null``; also what ``genai up``
#: registers as ``qa``. The ``extractive`` model reads the ``<context>`` block of it.
DEFAULT_PROMPT = PromptTemplate(
    messages=[
        {
            "role": "system",
            "content": "Answer the question from the context passages only, and cite each "
            "passage you use as [n]. If the passages do not answer it, say so.",
        },
        {
            "role": "user",
            "content": "{% if history %}Conversation so far:\n{{ history }}\n\n{% endif %}"
            "<context>\n{{ context }}\n</context>\n{{ question }}",
        },
    ],
    variables={
        "question": {"type": "str", "description": "The (standalone) question."},
        "context": {"type": "str", "description": "One '[n] text' line per retrieved chunk."},
        "history": {"type": "str", "default": "", "description": "Earlier turns."},
    },
)

_CONDENSE = (
    "Rewrite the last user question as one standalone question that can be understood "
    "without the conversation. Reply with the question only.\n\nConversation:\n{history}\n\n"
    "Last question: {question}"
)


class BotOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kb: str = Field(min_length=1)
    prompt: str | None = "qa@production"
    k: int = Field(default=4, ge=1, le=50)
    mode: Literal["hybrid", "dense", "sparse"] | None = None
    llm: BotLLM = Field(default_factory=BotLLM)
    condense: bool = True
    history_turns: int = Field(default=6, ge=0, le=50)


def bot_options(target: TargetSpec) -> BotOptions:
    """The bot's options from a deployment target, or a ValidationError naming the field."""
    try:
        return BotOptions.model_validate(target.options)
    except PydanticError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "options"
        message = first["msg"].removeprefix("Value error, ")
        raise ValidationError(
            f"target {target.name!r} ({BOT_BACKEND}): options.{where}: {message}",
            field=f"options.{where}",
        ) from None


def check_bot_targets(spec: DeploymentSpec) -> None:
    """Refuse a spec whose knowledge-bot targets have bad options (before it is stored)."""
    shadow = [spec.shadow.target] if spec.shadow else []
    for target in (*spec.targets, *spec.fallbacks, *shadow):
        if target.backend == BOT_BACKEND:
            bot_options(target)


@dataclass(frozen=True)
class _Prepared:
    """What ``prepare`` read for one target: the knowledge-base version and the prompt
    (``_plan`` uses them, so a request reads each once)."""

    kb_version: int | None
    prompt: PromptVersion | PromptTemplate


@dataclass
class _Plan:
    """One question, ready for the LLM."""

    question: str
    chunks: list[Chunk]
    generation: GenerationRequest | None  # None: nothing retrieved, nothing to ask
    prompt_version: str
    kb_version: int | None
    condensed: bool = False
    usage: dict[str, int] = field(default_factory=lambda: {"prompt": 0, "completion": 0})


class KnowledgeBot:
    """The ``knowledge-bot`` target stage (see the module docstring)."""

    name = BOT_BACKEND

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        prompts: PromptStage,
        knowledge_bases: KnowledgeBases | None = None,
        pool: FairPool | None = None,
        max_pending_traces: int = 256,
    ) -> None:
        self._settings = settings
        self._store = store
        self._prompts = prompts
        self._kbs_root = knowledge_bases
        self._llms = BotLLMs(settings, store)
        self._pending: set[asyncio.Future[Any]] = set()
        self._cpu = pool  # retrieval runs there as the project's job (the gateway's pool)
        self.max_pending_traces = max_pending_traces  # trace writes in flight, at most
        self.traces_dropped = 0

    def use_credentials(self, credentials: UpstreamCredentials) -> None:
        """Resolve the LLM's key through the gateway's credentials (its cache and allowlist)."""
        self._llms.use_credentials(credentials)

    # ------------------------------------------------------------ the gateway's calls

    async def prepare(self, request: GatewayRequest, target: TargetSpec) -> None:
        options = bot_options(target)
        snap = await asyncio.to_thread(
            self._kbs(request).snapshot, request.project, options.kb, Action.REGISTRY_READ
        )
        version = snap.version
        prompt = await self._prompt(request, options)
        request.extra.setdefault("bot", {})[target.name] = _Prepared(version, prompt)
        kb_label = f"{options.kb}@{version if version is not None else 0}"
        request.extra["kb_version"] = _joined(request.extra.get("kb_version"), kb_label)
        if isinstance(prompt, PromptVersion):
            request.prompt_version = _joined(request.prompt_version, prompt.ref, sep="+")

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        plan = await self._plan(request, target)
        text, finish = NOTHING_FOUND, "stop"
        if plan.generation is not None:
            llm = await self._llms.get(bot_options(target).llm, request, self._kbs_root)
            generation = await llm.generate(plan.generation)
            text, finish = generation.text, generation.finish_reason
            plan.usage["prompt"] += generation.prompt_tokens
            plan.usage["completion"] += generation.completion_tokens
        cited = _cited(text, plan.chunks)
        self._record(request, target, plan, cited)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": _usage(plan),
            **_extensions(plan, cited),
        }

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:
        plan = await self._plan(request, target)
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.body.get("model"),
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        # the LLM (and its key) before the first chunk: a misconfigured one refuses the request
        llm = (
            None
            if plan.generation is None
            else await self._llms.get(bot_options(target).llm, request, self._kbs_root)
        )
        yield chunk({"role": "assistant", "content": ""})
        parts: list[str] = []
        finish = "stop"
        if plan.generation is None or llm is None:
            parts.append(NOTHING_FOUND)
            yield chunk({"content": NOTHING_FOUND})
        else:
            async for piece in llm.stream(plan.generation):
                if piece.text:
                    parts.append(piece.text)
                    yield chunk({"content": piece.text})
                if piece.finish_reason is not None:
                    finish = piece.finish_reason
                    plan.usage["prompt"] += piece.prompt_tokens or 0
                    plan.usage["completion"] += piece.completion_tokens or 0
        cited = _cited("".join(parts), plan.chunks)
        self._record(request, target, plan, cited)
        yield {**chunk({}, finish), **_extensions(plan, cited)}
        yield {**base, "choices": [], "usage": _usage(plan)}

    async def close(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._llms.close()

    # ------------------------------------------------------------ steps

    def _kbs(self, request: GatewayRequest) -> KnowledgeBases:
        """The knowledge bases as the caller sees them (every call authorizes), sharing
        the embedding model and Chroma client with every other request."""
        client = Client(CallerContext(self._settings, self._store, request.principal))
        if self._kbs_root is None:
            self._kbs_root = KnowledgeBases(client)
        return self._kbs_root.for_client(client)

    async def _prompt(
        self, request: GatewayRequest, options: BotOptions
    ) -> PromptVersion | PromptTemplate:
        if options.prompt is None:
            return DEFAULT_PROMPT
        return await self._prompts.resolve(request, options.prompt)

    async def _plan(self, request: GatewayRequest, target: TargetSpec) -> _Plan:
        options = bot_options(target)
        if int(request.body.get("n") or 1) != 1:
            raise ValidationError("a knowledge bot gives one answer: n must be 1", field="n")
        question, history = _conversation(request.body.get("messages"), options.history_turns)
        plan = _Plan(
            question=question, chunks=[], generation=None, prompt_version="", kb_version=None
        )
        if history and options.condense and not options.llm.extractive:
            plan.question = await self._condense(options.llm, request, question, history, plan)
            plan.condensed = plan.question != question
        prepared = (request.extra.get("bot") or {}).get(target.name)
        if not isinstance(prepared, _Prepared):  # the gateway prepares; a direct call may not
            await self.prepare(request, target)
            prepared = request.extra["bot"][target.name]
        kb = KnowledgeBase(self._kbs(request), request.project, options.kb)  # retrieve authorizes
        plan.chunks = await self._retrieve(request, kb, plan.question, options)
        plan.kb_version, prompt = prepared.kb_version, prepared.prompt
        plan.prompt_version = prompt.ref if isinstance(prompt, PromptVersion) else ""
        if not plan.chunks:
            return plan
        context = "\n".join(
            f"[{n}] {' '.join(c.text.split())}" for n, c in enumerate(plan.chunks, 1)
        )
        supplied = {"question": plan.question, "context": context, "history": history}
        template = prompt.template if isinstance(prompt, PromptVersion) else prompt
        values = {k: v for k, v in supplied.items() if k in template.variables}
        rendered = (
            prompt.render(values)
            if isinstance(prompt, PromptVersion)
            else template.render_as(values, where="the built-in knowledge-bot prompt")
        )
        messages = (
            rendered if isinstance(rendered, list) else [{"role": "user", "content": rendered}]
        )
        plan.generation = _generation(request.body, messages, plan.chunks, options.llm)
        return plan

    async def _retrieve(
        self, request: GatewayRequest, kb: KnowledgeBase, question: str, options: BotOptions
    ) -> list[Chunk]:
        """Hybrid retrieval (it embeds the question): the project's job in the fair CPU pool
        when the bot has one. The extractive LLM's answer runs there too, through
        :func:`genai._pool.offload`, as the gateway binds each request to its project."""
        if self._cpu is None:
            return await asyncio.to_thread(kb.retrieve, question, options.k, None, options.mode)
        return await self._cpu.run(
            request.project, kb.retrieve, question, options.k, None, options.mode
        )

    async def _condense(
        self, llm_options: BotLLM, request: GatewayRequest, question: str, history: str, plan: _Plan
    ) -> str:
        llm = await self._llms.get(llm_options, request, self._kbs_root)
        prompt = _CONDENSE.format(history=history, question=question)
        generation = await llm.generate(
            GenerationRequest(
                messages=[ChatMessage(role="user", content=prompt)],
                params=_params({"temperature": 0, "max_tokens": 96}),
            )
        )
        plan.usage["prompt"] += generation.prompt_tokens
        plan.usage["completion"] += generation.completion_tokens
        condensed = " ".join(generation.text.split())
        return condensed or question

    def _record(
        self, request: GatewayRequest, target: TargetSpec, plan: _Plan, cited: list[int]
    ) -> None:
        row = {
            "project_id": request.project_id,
            "request_id": request.request_id,
            "deployment": request.deployment,
            "kb_name": bot_options(target).kb,
            "kb_version": plan.kb_version,
            "prompt_version": plan.prompt_version,
            "chunks": [
                {"id": c.id, "source": c.metadata.source, "score": round(c.score, 6)}
                for c in plan.chunks
            ],
            "cited": cited,
        }
        if len(self._pending) >= self.max_pending_traces:
            self._dropped_trace()
            return
        task = asyncio.ensure_future(asyncio.to_thread(self._write, row))
        self._pending.add(task)
        task.add_done_callback(self._written)

    def _dropped_trace(self) -> None:
        """A database slower than the traffic must not pile up trace writes (each holds its
        row and a thread's turn): beyond ``max_pending_traces`` in flight a trace is
        dropped, counted, and logged (the first, then every hundredth)."""
        self.traces_dropped += 1
        if self.traces_dropped == 1 or self.traces_dropped % 100 == 0:
            log.warning(
                "knowledge-bot traces are written slower than answers arrive: %d dropped so "
                "far (%d writes in flight at most)",
                self.traces_dropped,
                self.max_pending_traces,
            )

    def _write(self, row: dict[str, Any]) -> None:
        with self._store.session() as s:
            s.add(t.KbAnswer(**row))

    def _written(self, task: asyncio.Future[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not record a knowledge-bot answer: %s", task.exception())


# ---------------------------------------------------------------- helpers


def _joined(old: Any, new: str, sep: str = ";") -> str:
    parts = [p for p in str(old or "").split(sep) if p]
    return sep.join(sorted({*parts, new}))


def _conversation(messages: Any, turns: int) -> tuple[str, str]:
    """The last user message, and the earlier user/assistant turns as ``role: text`` lines."""
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


def _params(body: dict[str, Any]) -> Any:
    from genai.serving._schemas import ChatCompletionRequest, check_body

    probe = check_body(
        {"model": "bot", "messages": [{"role": "user", "content": "-"}], **body},
        ChatCompletionRequest,
    )
    return probe.requests(None)[0].params


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


def _generation(
    body: dict[str, Any], messages: Sequence[dict[str, Any]], chunks: list[Chunk], llm: BotLLM
) -> GenerationRequest:
    params = _params({k: body[k] for k in _SAMPLING if body.get(k) is not None})
    return GenerationRequest(
        messages=[ChatMessage.model_validate(m) for m in messages],
        params=params,
        # the extractive model quotes these; a generative one reads the rendered prompt
        context=(
            [ContextPassage(id=str(n), text=c.text) for n, c in enumerate(chunks, 1)]
            if llm.extractive
            else None
        ),
    )


def _cited(text: str, chunks: list[Chunk]) -> list[int]:
    return sorted({int(m) for m in _MARK.findall(text) if 0 < int(m) <= len(chunks)})


def _extensions(plan: _Plan, cited: list[int]) -> dict[str, Any]:
    return {
        "citations": [_citation(n, plan.chunks[n - 1]) for n in cited],
        "genai": {
            **({"condensed_question": plan.question} if plan.condensed else {}),
            "prompt_version": plan.prompt_version,
            "kb_version": plan.kb_version,
            "chunks": [
                {"id": c.id, "source": c.metadata.source, "score": round(c.score, 6)}
                for c in plan.chunks
            ],
        },
    }


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


def _usage(plan: _Plan) -> dict[str, int]:
    prompt, completion = plan.usage["prompt"], plan.usage["completion"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
