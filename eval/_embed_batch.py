"""Embeddings for metrics, batched across the rows being scored at once.

Rows are scored concurrently; each embedding metric wants a few texts per row. Encoding
them one row at a time costs a model call (and a thread hand-off) per row, and on a small
CPU the calls queue behind one another. :class:`EmbedBatcher` gathers the texts that rows
ask for in the same turn of the event loop, encodes them in one call (in a worker thread),
and answers each row with its vectors. Texts seen before in the run are not encoded again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai.models import Embedder

__all__ = ["EmbedBatcher"]

_MEMO = 4096  # texts whose vectors are kept (references and chunks recur across rows)


class EmbedBatcher:
    """``await batcher.vectors(texts)``: unit vectors of ``texts`` (a float64 array)."""

    def __init__(self, embedder: Callable[[], Embedder], *, max_batch: int = 256) -> None:
        self._embedder = embedder
        self._max_batch = max_batch
        self._pending: list[tuple[list[str], asyncio.Future[Any]]] = []
        self._flushing: set[asyncio.Task[None]] = set()
        self._memo: dict[str, Any] = {}

    async def vectors(self, texts: Sequence[str]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((list(texts), future))
        if len(self._pending) == 1:  # the first of this turn: flush once the others queue
            task = loop.create_task(self._flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the rows scored in this turn add their texts first
        batch, self._pending = self._pending, []
        wanted = list(dict.fromkeys(t for texts, _ in batch for t in texts if t not in self._memo))
        try:
            for start in range(0, len(wanted), self._max_batch):
                chunk = wanted[start : start + self._max_batch]
                found = await asyncio.to_thread(self._encode, chunk)
                self._remember(chunk, found)
        except Exception as error:  # every row waiting on this batch learns why
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        import numpy as np

        for texts, future in batch:
            if not future.done():
                future.set_result(np.stack([self._memo[t] for t in texts]))

    def _encode(self, texts: list[str]) -> Any:
        import numpy as np

        vectors = np.asarray(self._embedder().embed(texts), dtype=np.float64)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    def _remember(self, texts: list[str], vectors: Any) -> None:
        if len(self._memo) + len(texts) > _MEMO:
            self._memo.clear()
        self._memo.update(zip(texts, vectors, strict=True))
