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

What it does with a request is :class:`rag.KnowledgeChat`'s (condense, retrieve, prompt,
answer, cite); this module only wires it into the gateway: the options, parsed once per
request; retrieval as the caller, as the project's job in the gateway's fair CPU pool; the
LLM through :class:`apps._bot_llms.BotLLMs` (keys from the project's secrets); the traces.

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
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from apps._bot_llms import BotLLM, BotLLMs
from apps._prompts import CallerContext, PromptStage
from genai import Client
from genai.errors import ValidationError
from genai.gateway import (
    DeploymentSpec,
    GatewayRequest,
    PerRequest,
    TargetSpec,
    UpstreamCredentials,
)
from genai.models import Embedder
from genai.pool import FairPool
from genai.settings import Settings
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import Action
from genai.validation import first_problem
from prompts import PromptTemplate, PromptVersion
from rag import (
    ChatOptions,
    ChatPlan,
    Chunk,
    KnowledgeBase,
    KnowledgeBases,
    KnowledgeChat,
    SearchMode,
)

__all__ = [
    "BOT_BACKEND",
    "DEFAULT_PROMPT",
    "BotLLM",
    "BotOptions",
    "KnowledgeBot",
    "check_bot_targets",
]

log = logging.getLogger("genai.gateway.bot")

BOT_BACKEND = "knowledge-bot"

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
        where, message = first_problem(error, "options")
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
    """What ``prepare`` read for one target, so that a request reads each once: its
    options, the knowledge base's version and the prompt."""

    options: BotOptions
    kb_version: int | None
    prompt: PromptVersion | PromptTemplate


@dataclass(frozen=True)
class _BotPrompt:
    """A registered prompt version, or a template, as the chat renders it
    (:class:`rag.ChatPrompt`)."""

    source: PromptVersion | PromptTemplate

    @property
    def ref(self) -> str:
        return self.source.ref if isinstance(self.source, PromptVersion) else ""

    @property
    def variables(self) -> Collection[str]:
        source = self.source
        return (source.template if isinstance(source, PromptVersion) else source).variables

    def render(self, values: Mapping[str, str]) -> str | list[dict[str, Any]]:
        if isinstance(self.source, PromptVersion):
            return self.source.render(dict(values))
        return self.source.render_as(dict(values), where="the built-in knowledge-bot prompt")


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
        embedder: Embedder | None = None,
        pool: FairPool | None = None,
        max_pending_traces: int = 256,
    ) -> None:
        self._settings = settings
        self._store = store
        self._prompts = prompts
        self._kbs_root = knowledge_bases
        self._embedder = embedder  # the process's, shared (else the knowledge bases build one)
        self._llms = BotLLMs(settings, store)
        self._pending: set[asyncio.Future[Any]] = set()
        self._cpu = pool  # retrieval runs there as the project's job (the gateway's pool)
        self.max_pending_traces = max_pending_traces  # trace writes in flight, at most
        self.traces_dropped = 0
        self._prepared: PerRequest[dict[str, _Prepared]] = PerRequest()  # by target name

    def use_credentials(self, credentials: UpstreamCredentials) -> None:
        """Resolve the LLM's key through the gateway's credentials (its cache and allowlist)."""
        self._llms.use_credentials(credentials)

    # ------------------------------------------------------------ the gateway's calls

    async def prepare(self, request: GatewayRequest, target: TargetSpec) -> None:
        await self._prepare(request, target)

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        chat, prepared = await self._chat(request, target)
        return await chat.complete(
            request.body, on_answer=lambda plan, cited: self._record(request, prepared, plan, cited)
        )

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:
        chat, prepared = await self._chat(request, target)
        answer = chat.stream(
            request.body, on_answer=lambda plan, cited: self._record(request, prepared, plan, cited)
        )
        async for chunk in answer:
            yield chunk

    async def close(self) -> None:
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
        await self._llms.close()

    # ------------------------------------------------------------ steps

    async def _prepare(self, request: GatewayRequest, target: TargetSpec) -> _Prepared:
        options = bot_options(target)
        snap = await asyncio.to_thread(
            self._kbs(request).snapshot, request.project, options.kb, Action.REGISTRY_READ
        )
        prompt: PromptVersion | PromptTemplate = DEFAULT_PROMPT
        if options.prompt is not None:
            prompt = await self._prompts.resolve(request, options.prompt)
        prepared = _Prepared(options, snap.version, prompt)
        known = self._prepared.get(request)
        if known is None:
            known = {}
            self._prepared.set(request, known)
        known[target.name] = prepared
        kb_label = f"{options.kb}@{snap.version if snap.version is not None else 0}"
        request.notes.kb_version = _joined(request.notes.kb_version, kb_label)
        if isinstance(prompt, PromptVersion):
            request.prompt_version = _joined(request.prompt_version, prompt.ref, sep="+")
        return prepared

    async def _chat(
        self, request: GatewayRequest, target: TargetSpec
    ) -> tuple[KnowledgeChat, _Prepared]:
        prepared = (self._prepared.get(request) or {}).get(target.name)
        if prepared is None:  # the gateway prepares; a direct call may not
            prepared = await self._prepare(request, target)
        options = prepared.options
        kb = KnowledgeBase(self._kbs(request), request.project, options.kb)  # retrieve authorizes

        async def retrieve(question: str, k: int, mode: SearchMode | None) -> list[Chunk]:
            """Hybrid retrieval (it embeds the question): the project's job in the fair CPU
            pool when the bot has one. The extractive LLM's answer runs there too, through
            :func:`genai.pool.offload`, as the gateway binds each request to its project."""
            if self._cpu is None:
                return await asyncio.to_thread(kb.retrieve, question, k, None, mode)
            return await self._cpu.run(request.project, kb.retrieve, question, k, None, mode)

        async def model() -> Any:
            return await self._llms.get(options.llm, request, self._kbs_root)

        chat = KnowledgeChat(
            retrieve=retrieve,
            model=model,
            prompt=_BotPrompt(prepared.prompt),
            kb_version=prepared.kb_version,
            options=ChatOptions(
                k=options.k,
                mode=SearchMode(options.mode) if options.mode else None,
                condense=options.condense,
                history_turns=options.history_turns,
                extractive=options.llm.extractive,
            ),
        )
        return chat, prepared

    def _kbs(self, request: GatewayRequest) -> KnowledgeBases:
        """The knowledge bases as the caller sees them (every call authorizes), sharing
        the embedding model and Chroma client with every other request."""
        client = Client(CallerContext(self._settings, self._store, request.principal))
        if self._kbs_root is None:
            self._kbs_root = KnowledgeBases(client, embedder=self._embedder)
        return self._kbs_root.for_client(client)

    def _record(
        self, request: GatewayRequest, prepared: _Prepared, plan: ChatPlan, cited: list[int]
    ) -> None:
        row = {
            "project_id": request.project_id,
            "request_id": request.request_id,
            "deployment": request.deployment,
            "kb_name": prepared.options.kb,
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


def _joined(old: str, new: str, sep: str = ";") -> str:
    parts = [p for p in old.split(sep) if p]
    return sep.join(sorted({*parts, new}))
