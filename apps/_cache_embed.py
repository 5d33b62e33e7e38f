"""The cache stage's embedder: a small memory of recent questions, and the signal that
defers a question's embedding to the gateway's fair CPU pool (``apps/_cache.py``)."""

from __future__ import annotations

import contextvars
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

__all__ = ["_DEFERRED", "_EmbedLater", "_MemoEmbedder"]

#: Set while a lookup or store runs in a thread: a question not embedded yet is not
#: embedded there (:class:`_EmbedLater`), but in the fair CPU pool.
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("cache_defer", default=False)


class _EmbedLater(Exception):  # a signal, not an error
    """The question needs embedding: do it in the fair CPU pool, then call again."""

    def __init__(self, text: str) -> None:
        super().__init__("embedding deferred to the CPU pool")
        self.text = text


class _MemoEmbedder:
    """The embedder with a small memory of recent single-text calls: a miss's store embeds
    the question its lookup embedded a moment earlier. It keeps the ``size`` most recently
    used texts (a vector is ~1.5 KiB): a store follows its lookup within the request, so a
    few hundred cover every request in flight."""

    def __init__(self, inner: Any, size: int = 512) -> None:
        self.inner = inner
        self.model_name = str(getattr(inner, "model_name", type(inner).__name__))
        self._memo: OrderedDict[str, Any] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return int(self.inner.dimension)

    def embed(self, texts: Sequence[str]) -> Any:
        if len(texts) != 1:
            return self.inner.embed(texts)
        text = texts[0]
        with self._lock:
            found = self._memo.get(text)
            if found is not None:
                self._memo.move_to_end(text)
                return found
        if _DEFERRED.get():
            raise _EmbedLater(text)
        vectors = self.inner.embed([text])
        with self._lock:
            self._memo[text] = vectors
            if len(self._memo) > self._size:
                self._memo.popitem(last=False)
        return vectors
