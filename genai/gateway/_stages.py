"""The steps the gateway runs around a model call, as protocols that other packages fill.

The gateway works with none configured. ``apps/`` wires implementations from ``prompts/``
(render a registered prompt), ``genai.dlp`` (redact, pseudonymise, restore), ``cache/``
(lookup and store) and ``rag/`` (a knowledge bot as a target):

    request ─▶ RequestStage.before (in order) ─▶ CacheStage.lookup ─┬─▶ hit: replay
                                                                    └─▶ target ─▶ CacheStage.store
    response ◀─ ResponseStage.after / .stream (in reverse order) ◀──────────────┘
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from genai.gateway._spec import TargetSpec
from genai.tenancy import Principal

__all__ = [
    "CacheFeedback",
    "CacheStage",
    "CachedAnswer",
    "GatewayRequest",
    "PreparedTarget",
    "RequestStage",
    "ResponseStage",
    "StreamFilter",
    "TargetStage",
    "ToolCallFilter",
]


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
    extra: dict[str, Any] = field(default_factory=dict)  # stages' own notes

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
    looked up it notes what (``request.prompt_version``, ``request.extra["kb_version"]``),
    so that the cache partitions by it and the ledger records it. Called for each target
    and fallback of the deployment that this stage serves; an error refuses the request."""

    async def prepare(self, request: GatewayRequest, target: TargetSpec) -> None: ...
