"""``GenAICache``: the semantic cache as LangChain's LLM cache.

    from langchain_core.globals import set_llm_cache
    from cache.langchain import GenAICache

    set_llm_cache(GenAICache(semantic_cache, project_id=7))

LangChain asks the cache before every model call with the prompt (for a chat model, the
serialised messages) and the model's configuration string (model name, temperature, stop,
...). Both become the partition and the request: the configuration string is the
partition's ``params``, so another model or temperature never shares an answer; chat
messages are keyed like the gateway keys them (context hashed, last user message
compared by meaning). Entries belong to one project, like every entry of the cache.

Needs ``langchain-core`` (installed with LangChain).
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Sequence
from typing import Any

from cache._cache import SemanticCache
from cache._keys import ChatRequest, Partition
from genai.errors import MissingDependencyError

try:
    from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
    from langchain_core.load import dumps, loads
except ImportError:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "langchain-core", extra="integrations", purpose="the LangChain cache adapter"
    ) from None

__all__ = ["GenAICache"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


class GenAICache(BaseCache):
    """LangChain's ``BaseCache`` over a :class:`~cache.SemanticCache`, for one project.

    ``deployment`` names the partition's deployment (default ``"langchain"``); the
    model's configuration string separates models and parameters inside it.
    ``semantic=False`` keeps the exact tier only.
    """

    def __init__(
        self,
        cache: SemanticCache,
        project_id: int,
        *,
        deployment: str = "langchain",
        semantic: bool = True,
    ) -> None:
        self.cache = cache
        self.project_id = project_id
        self.deployment = deployment
        self.semantic = semantic

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        partition, request = self._keyed(prompt, llm_string)
        key = self.cache.key(partition, request)
        if not self.semantic:
            key = type(key)(scope=key.scope, exact=key.exact, question=None)
        hit = self.cache.lookup(partition, request, key=key)
        if hit is None or not isinstance(hit.answer, dict) or "langchain" not in hit.answer:
            return None
        generations = _loads(hit.answer["langchain"], allowed_objects="core")
        return list(generations) if isinstance(generations, list) else None

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        partition, request = self._keyed(prompt, llm_string)
        self.cache.store(partition, request, {"langchain": dumps(list(return_val))})

    def clear(self, **kwargs: Any) -> None:
        """Delete this project's entries of this adapter's deployment."""
        self.cache.invalidate(self.project_id, self.deployment)

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return await asyncio.to_thread(self.lookup, prompt, llm_string)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        await asyncio.to_thread(self.update, prompt, llm_string, return_val)

    async def aclear(self, **kwargs: Any) -> None:
        await asyncio.to_thread(self.clear, **kwargs)

    def _keyed(self, prompt: str, llm_string: str) -> tuple[Partition, ChatRequest]:
        partition = Partition(
            project_id=self.project_id, deployment=self.deployment, params=llm_string
        )
        return partition, _request(prompt)


def _loads(text: str, *, allowed_objects: Any) -> Any:
    """``langchain_core.load.loads`` without its "in beta" warning on every cache call."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*`loads` is in beta.*")
        return loads(text, allowed_objects=allowed_objects)


def _request(prompt: str) -> ChatRequest:
    """Chat messages when ``prompt`` is LangChain's serialised message list, else the text
    itself (a completion model's prompt)."""
    if not prompt.startswith("["):
        return prompt
    try:
        messages = _loads(prompt, allowed_objects="messages")
    except Exception:  # not serialised messages after all: key the text as it is
        return prompt
    if not isinstance(messages, Sequence) or not messages:
        return prompt
    out = []
    for message in messages:
        kind = getattr(message, "type", None)
        if kind is None:
            return prompt
        entry: dict[str, Any] = {"role": _ROLES.get(kind, kind), "content": message.content}
        calls = getattr(message, "tool_calls", None)
        if calls:
            entry["tool_calls"] = json.loads(json.dumps(calls, default=str))
        if getattr(message, "tool_call_id", None):
            entry["tool_call_id"] = message.tool_call_id
        out.append(entry)
    return out
