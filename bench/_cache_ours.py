"""Our semantic cache (cache.SemanticCache) over the in-memory or the Chroma vector store.

Every entry goes into one partition (project 1, deployment "bench"), stored with the
precomputed vector and looked up with the precomputed query vector, so the embedder is never
called: the wrapper below counts its calls and the benchmark reports them (they must be 0).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

FILL_BATCH = 5000


class CountingEmbedder:
    """Our bundled embedder, loaded only if called; counts the calls (they should not happen)."""

    model_name = "all-MiniLM-L6-v2"

    def __init__(self) -> None:
        self.calls = 0
        self._inner: Any = None

    @property
    def dimension(self) -> int:
        return 384

    def embed(self, texts: Sequence[str]) -> Any:
        self.calls += 1
        if self._inner is None:
            from genai.models import SentenceTransformerEmbedder

            self._inner = SentenceTransformerEmbedder()
        return self._inner.embed(texts)


class BatchedUpserts:
    """Stands in for the vector store while a cache is filled: ``upsert`` calls are
    gathered and sent ``FILL_BATCH`` vectors at a time (SemanticCache.store upserts one
    vector per call, ~50 ms each into embedded Chroma here); anything else flushes first."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._pending: dict[str, tuple[list[str], list[Any], list[Mapping[str, Any]]]] = {}

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        bucket = self._pending.setdefault(collection, ([], [], []))
        bucket[0].extend(ids)
        bucket[1].extend(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        bucket[2].extend(metadatas or [{} for _ in ids])
        if len(bucket[0]) >= FILL_BATCH:
            self.flush()

    def flush(self) -> None:
        for collection, (ids, vectors, metas) in self._pending.items():
            if ids:
                self.inner.upsert(collection, ids, np.stack(vectors), metas)
        self._pending.clear()

    def __getattr__(self, name: str) -> Any:
        self.flush()
        return getattr(self.inner, name)


def blas_one_thread() -> Any:
    """A context that limits BLAS to one thread (threadpoolctl), or does nothing."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def available() -> str | None:
    """None when our cache imports, else why not."""
    try:
        from cache import Partition, SemanticCache  # noqa: F401
        from genai.vectors import InMemoryVectorStore  # noqa: F401
    except ImportError as error:
        return f"our semantic cache is not importable yet ({error})"
    return None


def default_threshold() -> float:
    from cache import DEFAULT_THRESHOLD

    return float(DEFAULT_THRESHOLD)


class Ours:
    """One SemanticCache over a fresh vector store; ``close`` drops it (and Chroma's files).

    ``options`` go to ``SemanticCache`` (or ``cache_class``, a subclass) as they are
    (none: its defaults)."""

    def __init__(
        self,
        store: str = "memory",
        embedder: CountingEmbedder | None = None,
        scratch: Path | None = None,
        cache_class: Any = None,
        **options: Any,
    ) -> None:
        from cache import Partition, SemanticCache

        self.embedder = embedder or CountingEmbedder()
        self._dir: Path | None = None
        if store == "memory":
            from genai.vectors import InMemoryVectorStore

            vectors: Any = InMemoryVectorStore()
        elif store == "chroma":
            from genai.vectors import ChromaVectorStore

            self._dir = Path(tempfile.mkdtemp(prefix="chroma-", dir=scratch))
            vectors = ChromaVectorStore(self._dir)
        else:
            raise ValueError(f"unknown store {store!r}: memory or chroma")
        self.vectors = vectors
        self.cache = (cache_class or SemanticCache)(vectors, self.embedder, **options)
        self.partition = Partition(project_id=1, deployment="bench")

    def store(
        self,
        texts: Sequence[str],
        answers: Sequence[str],
        vectors: np.ndarray,
        deployments: Sequence[str] | None = None,
    ) -> None:
        """Store each entry in the benchmark's partition, or in the partition of its own
        deployment name."""
        for i, (text, answer, vector) in enumerate(zip(texts, answers, vectors, strict=True)):
            part = self._partition(deployments[i] if deployments else None)
            self.cache.store(part, text, answer, embedding=vector)

    def _partition(self, deployment: str | None) -> Any:
        if deployment is None:
            return self.partition
        return type(self.partition)(project_id=1, deployment=deployment)

    def fill(
        self,
        texts: Sequence[str],
        answers: Sequence[str],
        vectors: np.ndarray,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """``store`` every entry, with vector upserts batched and the LRU bound lifted
        meanwhile (each store trims the project to ``max_entries`` by scanning all of its
        entries); both are restored before returning."""
        batched, bound = BatchedUpserts(self.vectors), self.cache.max_entries
        self.cache.vectors, self.cache.max_entries = batched, None
        try:
            for i, (text, answer, vector) in enumerate(zip(texts, answers, vectors, strict=True)):
                self.cache.store(self.partition, text, answer, embedding=vector)
                if progress and (i + 1) % 1000 == 0:
                    progress(1000)
            batched.flush()
            if progress and len(texts) % 1000:
                progress(len(texts) % 1000)
        finally:
            self.cache.vectors, self.cache.max_entries = self.vectors, bound

    def timed_stores(self, texts: Sequence[str], vectors: np.ndarray) -> list[float]:
        """Seconds of each public ``store`` call (default bounds, the real vector store)."""
        seconds = []
        for i, (text, vector) in enumerate(zip(texts, vectors, strict=True)):
            t0 = time.perf_counter()
            self.cache.store(self.partition, text, f"late answer {i}", embedding=vector)
            seconds.append(time.perf_counter() - t0)
        return seconds

    def lookup(
        self,
        text: str,
        vector: np.ndarray,
        threshold: float | None = None,
        deployment: str | None = None,
    ) -> tuple[str | None, float | None]:
        part = self._partition(deployment)
        hit = self.cache.lookup(part, text, embedding=vector, threshold=threshold)
        if hit is None:
            return None, None
        return hit.answer, hit.score

    def close(self) -> None:
        self.cache.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
