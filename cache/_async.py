"""The semantic cache's ``a*`` methods: each runs its synchronous twin in a worker thread
(the SQL, vector-store and embedding work of a call blocks)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cache._entries import CacheStats
from cache._keys import ChatRequest, Partition
from cache._lookup import CacheHit

__all__ = ["AsyncCalls"]


class AsyncCalls:
    """Mixed into :class:`~cache.SemanticCache`, whose methods these call."""

    if TYPE_CHECKING:
        lookup: Callable[..., CacheHit | None]
        store: Callable[..., str]
        invalidate: Callable[..., int]
        evict: Callable[..., bool]
        feedback: Callable[..., int]
        stats: Callable[[int], CacheStats]

    async def alookup(
        self, partition: Partition, request: ChatRequest, **options: Any
    ) -> CacheHit | None:
        return await asyncio.to_thread(lambda: self.lookup(partition, request, **options))

    async def astore(
        self, partition: Partition, request: ChatRequest, answer: Any, **options: Any
    ) -> str:
        return await asyncio.to_thread(lambda: self.store(partition, request, answer, **options))

    async def ainvalidate(self, project_id: int, deployment: str | None = None, **kw: Any) -> int:
        return await asyncio.to_thread(lambda: self.invalidate(project_id, deployment, **kw))

    async def aevict(self, entry_id: str, *, project_id: int) -> bool:
        return await asyncio.to_thread(lambda: self.evict(entry_id, project_id=project_id))

    async def afeedback(self, project_id: int, request_id: str, *, wrong: bool = True) -> int:
        return await asyncio.to_thread(lambda: self.feedback(project_id, request_id, wrong=wrong))

    async def astats(self, project_id: int) -> CacheStats:
        return await asyncio.to_thread(self.stats, project_id)
