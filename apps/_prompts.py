"""The gateway's prompt stage: a chat request may name a registered prompt instead of (or
before) its own messages, and the gateway renders it for the caller's project.

    POST /v1/chat/completions
    {"model": "chat", "prompt": "qa@production",
     "variables": {"question": "Where is my invoice?"},
     "messages": [{"role": "user", "content": "And last month's?"}]}     # optional

The prompt is looked up in the caller's own project only (another project's prompt is a
404, the same as a missing one) after authorizing the caller to read the registry. A chat
template's messages come first, then the request's own ``messages`` as the conversation so
far; a text template becomes one user message. ``prompt`` and ``variables`` are removed
before the request goes upstream, and ``request.prompt_version`` (``qa@3``) goes into the
usage ledger, so every answer can be traced to the prompt version behind it. A missing,
unexpected or wrongly-typed variable is a 400 that names it.

Only ``/v1/chat/completions`` reads ``prompt`` this way: on ``/v1/completions`` it is
OpenAI's own field (the text to complete).

Prompts are cached per process for ``ttl_s`` (``GENAI_GATEWAY_PROMPT_TTL_S``, default 10 s)
so the hot path does not read the database; a label moved elsewhere takes effect within
that time, and while the database is unreachable the last version read keeps serving.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from genai import Context
from genai.errors import NotFoundError, ValidationError
from genai.gateway import GatewayRequest
from genai.registry import Prompts, Ref
from genai.settings import Settings
from genai.store import Store
from genai.tenancy import Action, Principal, Resource, authorize
from prompts import LastGoodCache, PromptVersion, parse_ref

__all__ = ["CallerContext", "PromptStage", "prompt_stage"]

_Key = tuple[int, str, str]  # project id, prompt name, selector ("latest" for the newest)
_MISSING_TTL_S = 1.0


class CallerContext(Context):
    """The registry as the gateway's caller (already authenticated by its key) sees it."""

    def __init__(self, settings: Settings, store: Store, principal: Principal) -> None:
        super().__init__(settings, store, user=None, api_key=None)
        self._principal = principal

    def me(self, session: Session) -> Principal:
        return self._principal


class PromptStage:
    """Renders ``prompt`` + ``variables`` of a chat request into its messages."""

    name = "prompts"

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        ttl_s: float = 10.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._cache: LastGoodCache[_Key, PromptVersion] = LastGoodCache(
            ttl_s, max_entries=max_entries, clock=clock
        )
        self._missing: dict[_Key, float] = {}  # briefly remembered 404s: floods stay in memory
        self._locks: dict[_Key, asyncio.Lock] = {}

    @property
    def ttl_s(self) -> float:
        return self._cache.ttl_s

    async def before(self, request: GatewayRequest) -> None:
        body = request.body
        if request.endpoint != "chat":
            return
        ref, variables = body.pop("prompt", None), body.pop("variables", None)
        if ref is None:
            if variables is not None:
                raise ValidationError(
                    "'variables' fill a registered prompt: name it too, e.g. "
                    '"prompt": "qa@production"',
                    field="variables",
                )
            return
        if variables is not None and not isinstance(variables, dict):
            raise ValidationError(
                f"'variables' must be an object of name → value, not {variables!r}",
                field="variables",
            )
        version = await self.resolve(request, ref)
        request.prompt_version = version.ref  # in the ledger even when rendering fails
        rendered = version.render(variables or {})
        head = rendered if isinstance(rendered, list) else [{"role": "user", "content": rendered}]
        body["messages"] = [*head, *(body.get("messages") or [])]

    async def resolve(self, request: GatewayRequest, ref: Any) -> PromptVersion:
        """The version ``ref`` (``qa@production``, ``qa@3``) names in the caller's project,
        after authorizing the caller to read the registry (cached for ``ttl_s``)."""
        target = _target(ref)
        authorize(
            request.principal,
            Action.REGISTRY_READ,
            Resource("prompt", target.name, request.project_id),
        )
        return await self._version(request, target)

    def invalidate(self, project_id: int | None = None) -> None:
        """Make cached prompts (of one project, or all) stale: the next request reads them."""
        self._cache.expire(None if project_id is None else (lambda key: key[0] == project_id))

    async def _version(self, request: GatewayRequest, target: Ref) -> PromptVersion:
        key: _Key = (request.project_id, target.name, target.selector or "latest")
        hit = self._cache.peek(key)
        if hit is not None:
            return hit
        until = self._missing.get(key)
        if until is not None and until > self._clock():
            raise NotFoundError(f"{target} not found")
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one load per prompt at a time; the others wait for it
            hit = self._cache.peek(key)
            if hit is not None:
                return hit
            try:
                return await asyncio.to_thread(
                    self._cache.get,
                    key,
                    lambda: self._load(request, target),
                    what=f"prompt {target.name}@{key[2]}",
                )
            except NotFoundError:
                if len(self._missing) >= 10_000:
                    self._missing.clear()
                self._missing[key] = self._clock() + _MISSING_TTL_S
                raise
            finally:
                self._locks.pop(key, None)  # waiters hold it still; new arrivals peek first

    def _load(self, request: GatewayRequest, target: Ref) -> PromptVersion:
        ctx = CallerContext(self._settings, self._store, request.principal)
        return PromptVersion.from_info(Prompts(ctx).get(request.project, str(target)))


def _target(ref: Any) -> Ref:
    if not isinstance(ref, str):
        raise ValidationError(
            f'\'prompt\' names a registered prompt, e.g. "qa@production" or "qa@3", not {ref!r}',
            field="prompt",
        )
    try:
        return parse_ref(ref)
    except ValidationError as error:
        raise ValidationError(error.message, field="prompt") from None


def prompt_stage(settings: Settings, store: Store, *, ttl_s: float | None = None) -> PromptStage:
    """The prompt stage for a gateway on ``store``; put it first among the request stages,
    so that the others (DLP, the cache key) see the rendered messages and the version."""
    if ttl_s is None:
        ttl_s = float(os.environ.get("GENAI_GATEWAY_PROMPT_TTL_S", "10"))
    return PromptStage(settings, store, ttl_s=ttl_s)
