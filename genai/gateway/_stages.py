"""The steps the gateway runs around a model call, as protocols that other packages fill.

The gateway works with none configured. ``apps/`` wires implementations from ``prompts/``
(render a registered prompt), ``genai.dlp`` (redact, pseudonymise, restore), ``cache/``
(lookup and store) and ``rag/`` (a knowledge bot as a target):

    request ─▶ RequestStage.before (in order) ─▶ CacheStage.lookup ─┬─▶ hit: replay
                                                                    └─▶ target ─▶ CacheStage.store
    response ◀─ ResponseStage.after / .stream (in reverse order) ◀──────────────┘
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from genai.gateway._spec import TargetSpec
from genai.tenancy import Principal

__all__ = [
    "CacheFeedback",
    "CacheStage",
    "CachedAnswer",
    "DlpNote",
    "DlpStatus",
    "GatewayRequest",
    "PerRequest",
    "PreparedTarget",
    "RequestStage",
    "ResponseStage",
    "StageNotes",
    "StreamFilter",
    "TargetStage",
    "ToolCallFilter",
]


T = TypeVar("T")

DlpStatus = Literal["protected", "degraded", "failed_open"]


@dataclass(frozen=True)
class DlpNote:
    """What a DLP request stage did to a request: ``protected`` (checked, personal data
    replaced as the policy says), ``degraded`` (checked by a fallback detector), or
    ``failed_open`` (sent unchecked: the detector failed and the policy fails open; such a
    request may hold raw personal data, so no cache may keep it)."""

    status: DlpStatus
    counts: Mapping[str, int] = field(default_factory=dict)  # entity type → values replaced

    def __repr__(self) -> str:  # never the values
        return f"<DlpNote {self.status} {dict(self.counts)}>"


@dataclass(eq=False)
class StageNotes:
    """What the gateway and its stages tell each other about one request, field by field.

    Each field has one writer and says who reads it; a stage that needs to tell another
    something new adds a typed field here (an agent target its run, an eval judge its
    verdict), never an untyped side channel. A stage's state between its own two calls
    (a cache's plan from lookup to store) stays with the stage: see :class:`PerRequest`.
    """

    #: gateway → prompt log: True until every request stage has run; a request refused
    #: before then is logged as withheld (it may hold text no DLP stage checked)
    unchecked: bool = False
    #: gateway → cache: the deployment's revision that routes this request (a new revision
    #: may route to another model, so the cache partitions by it)
    deployment_revision: int | None = None
    #: gateway → cache: what the target's answer cost, set before the cache stores it (a
    #: hit saves that much)
    cost_usd: float = 0.0
    #: DLP → cache, DLP response stage: what DLP did (None: no DLP stage checked it)
    dlp: DlpNote | None = None
    #: DLP → prompt log: a copy of the request fit for logs (personal data scrubbed)
    log_request: dict[str, Any] | None = None
    #: knowledge targets → cache, ledger: the knowledge-base versions the answer draws on
    #: (``kb-name@version``, sorted, joined by ``;``; the cache partitions by it)
    kb_version: str = ""
    #: a target → cache: why its answer must never be cached nor served from the cache (an
    #: agent's answer: its tools act, and each run is its own); "" lets the cache decide
    uncacheable: str = ""


class PerRequest(Generic[T]):
    """A stage's own typed state for each request, between its calls (e.g. a cache's plan
    from ``lookup`` to ``store``): private to the stage that holds it, gone with the
    request. A mirrored request (a shadow's copy) shares its original's state."""

    def __init__(self) -> None:
        self._values: weakref.WeakKeyDictionary[StageNotes, T] = weakref.WeakKeyDictionary()

    def set(self, request: GatewayRequest, value: T) -> None:
        self._values[request.notes] = value

    def get(self, request: GatewayRequest) -> T | None:
        return self._values.get(request.notes)


@dataclass
class GatewayRequest:
    """One request as it moves through the gateway; stages read and change it."""

    request_id: str
    endpoint: str  # "chat", "completions" or "embeddings"
    principal: Principal
    project_id: int
    project: str
    project_options: dict[str, Any]
    body: dict[str, Any]  # the OpenAI request body; stages may rewrite it
    deployment: str
    adapter: str | None = None
    prompt_version: str = ""  # set by a prompt-rendering stage
    session_id: str | None = None  # the caller's conversation (x-genai-session header)
    headers: dict[str, str] = field(default_factory=dict)
    notes: StageNotes = field(default_factory=StageNotes)  # what stages tell each other
    # the caller's bearer key, for a target that calls the gateway back as the caller (a
    # hosted agent's model calls): never logged, never sent upstream
    credential: str = field(default="", repr=False)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))


@runtime_checkable
class RequestStage(Protocol):
    """Runs before the model call: may rewrite ``request.body`` or refuse the request by
    raising a :class:`~genai.errors.GenAIError` (e.g. :class:`~genai.errors.DlpBlocked`)."""

    name: str

    async def before(self, request: GatewayRequest) -> None: ...


class StreamFilter(Protocol):
    """Rewrites the text of a streamed answer piece by piece; may hold text back until it
    can decide (a placeholder split across chunks), and must give it all back in ``flush``."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


@runtime_checkable
class ToolCallFilter(Protocol):
    """A :class:`StreamFilter` that also rewrites the streamed arguments of tool calls
    (JSON text, piece by piece): one filter per tool call of a choice."""

    def tool_arguments(self, index: int) -> StreamFilter: ...


@runtime_checkable
class ResponseStage(Protocol):
    """Runs after the model call, in reverse order of the request stages."""

    name: str

    async def after(self, request: GatewayRequest, response: dict[str, Any]) -> dict[str, Any]:
        """Rewrite a whole (non-streamed) OpenAI response body."""
        ...

    def stream(self, request: GatewayRequest) -> StreamFilter | None:
        """A filter for a streamed answer, or None to leave the stream alone."""
        ...


@dataclass(frozen=True)
class CachedAnswer:
    response: dict[str, Any]  # an OpenAI response body (chat.completion or text_completion)


@runtime_checkable
class CacheStage(Protocol):
    name: str

    async def lookup(self, request: GatewayRequest) -> CachedAnswer | None: ...

    async def store(self, request: GatewayRequest, response: dict[str, Any]) -> None: ...


@runtime_checkable
class CacheFeedback(Protocol):
    """A cache stage that also hears ``POST /v1/feedback``: a low score on an answer it
    gave (or stored) evicts that entry; how many entries it evicted."""

    async def feedback(self, project_id: int, request_id: str, score: float) -> int: ...


@runtime_checkable
class TargetStage(Protocol):
    """A target that is not an LLM endpoint (a knowledge bot, a tool): it answers a request
    with an OpenAI response body, or a stream of OpenAI chunk bodies. A deployment names it
    as a target's ``backend``; ``target`` is that entry of the spec (its ``options`` are the
    stage's configuration for this deployment). Top-level fields the stage adds to its
    answer besides OpenAI's (a knowledge bot's ``citations``) reach the client, streamed
    (on the chunk that ends the choice) or not, and a cached replay keeps them."""

    name: str

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]: ...

    def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]: ...


@runtime_checkable
class PreparedTarget(Protocol):
    """A target stage whose answer depends on more than the request: before the cache is
    looked up it notes what (``request.prompt_version``, ``request.notes.kb_version``),
    so that the cache partitions by it and the ledger records it. Called for each target
    and fallback of the deployment that this stage serves; an error refuses the request."""

    async def prepare(self, request: GatewayRequest, target: TargetSpec) -> None: ...
