"""BM25 over a knowledge base's chunks (bm25s), stored as a content-addressed artifact.

The index is rebuilt from the vector store's chunks after every ingestion that changed
something, saved as a directory (bm25s arrays plus the chunks' ids, texts and flat
metadata) into the platform's artifact store, and named by its digest in the knowledge
base's row. Every process — CLI, gateway, a second machine with a shared artifact root —
therefore serves the same BM25 index for the same knowledge-base version, and loads it
once into the :class:`SparseCache` of its :class:`~rag.KnowledgeBases` (an LRU cache keyed
by the immutable digest).

Tokens: lower-cased words of two or more characters, English stop words removed, Snowball
(PyStemmer) stems when PyStemmer is installed.
"""

from __future__ import annotations

import json
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai.errors import MissingDependencyError
from rag._filters import matches

if TYPE_CHECKING:
    from genai.registry import ArtifactStore

__all__ = ["BM25_PARAMS", "SparseCache", "SparseIndex", "load_sparse", "save_sparse"]

#: k1 and b measured on the SciFact training queries (bench/retrieval_quality.py): within
#: 0.002 nDCG@10 of the best of a 3×3 grid (k1 0.9-1.5, b 0.4-0.9: all within 0.005), and
#: Anserini's defaults. An index keeps the values it was built with;
#: ``KnowledgeBase.rebuild_sparse`` rebuilds it with the current ones.
BM25_PARAMS: dict[str, float] = {"k1": 0.9, "b": 0.4}
_CHUNKS_FILE = "chunks.jsonl"


def _bm25s() -> Any:
    try:
        import bm25s  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependencyError("bm25s", extra="rag", purpose="BM25 retrieval") from None
    return bm25s


def _stemmer() -> Any:
    try:
        import Stemmer  # type: ignore[import-not-found]
    except ImportError:  # optional: plain words still work, a little less well
        return None
    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    bm25s = _bm25s()
    tokens = bm25s.tokenize(
        list(texts), return_ids=False, stemmer=_stemmer(), stopwords="en", show_progress=False
    )
    return [list(t) for t in tokens]


class SparseIndex:
    """BM25 scores for every chunk, and the chunks' ids, bodies and flat metadata."""

    def __init__(
        self,
        bm25: Any,
        ids: list[str],
        bodies: list[str],
        metadatas: list[dict[str, Any]],
    ) -> None:
        self._bm25 = bm25
        self.ids = ids
        self.bodies = bodies
        self.metadatas = metadatas

    @classmethod
    def build(
        cls,
        ids: list[str],
        index_texts: Sequence[str],
        bodies: list[str],
        metadatas: list[dict[str, Any]],
        *,
        k1: float = BM25_PARAMS["k1"],
        b: float = BM25_PARAMS["b"],
    ) -> SparseIndex:
        bm25 = _bm25s().BM25(k1=k1, b=b)
        if ids:
            bm25.index(tokenize(index_texts), show_progress=False)
        return cls(bm25, ids, bodies, metadatas)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def params(self) -> dict[str, float]:
        """The k1 and b this index was built with."""
        return {"k1": float(self._bm25.k1), "b": float(self._bm25.b)}

    def search(
        self, query: str, n: int, conditions: list[tuple[str, str, Any]] | None = None
    ) -> list[tuple[int, float]]:
        """``(position, score)`` of the ``n`` best chunks with a positive score."""
        import numpy as np

        if not self.ids or n <= 0:
            return []
        terms = tokenize([query])[0]
        if not terms:
            return []
        scores = np.asarray(self._bm25.get_scores(terms), dtype=np.float32)
        if conditions:
            mask = np.fromiter(
                (matches(m, conditions) for m in self.metadatas), dtype=bool, count=len(self.ids)
            )
            scores = np.where(mask, scores, 0.0)
        n = min(n, len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self._bm25.save(str(directory / "bm25"), show_progress=False)
        with open(directory / _CHUNKS_FILE, "w", encoding="utf-8") as out:
            for row in zip(self.ids, self.bodies, self.metadatas, strict=True):
                out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path) -> SparseIndex:
        ids, bodies, metas = [], [], []
        with open(directory / _CHUNKS_FILE, encoding="utf-8") as fh:
            for line in fh:
                chunk_id, body, meta = json.loads(line)
                ids.append(chunk_id)
                bodies.append(body)
                metas.append(meta)
        bm25s = _bm25s()
        bm25 = (
            bm25s.BM25.load(str(directory / "bm25"), show_progress=False) if ids else bm25s.BM25()
        )
        return cls(bm25, ids, bodies, metas)


class SparseCache:
    """Loaded indexes by digest, the least recently used dropped past ``max_size`` (a
    digest's content never changes, so an entry is never stale)."""

    def __init__(self, *, max_size: int = 8) -> None:
        self.max_size = max_size
        self._found: OrderedDict[str, SparseIndex] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._found)

    def get(self, digest: str) -> SparseIndex | None:
        with self._lock:
            found = self._found.get(digest)
            if found is not None:
                self._found.move_to_end(digest)
            return found

    def put(self, digest: str, index: SparseIndex) -> None:
        with self._lock:
            self._found[digest] = index
            self._found.move_to_end(digest)
            while len(self._found) > self.max_size:
                self._found.popitem(last=False)


def save_sparse(
    index: SparseIndex, artifacts: ArtifactStore, cache: SparseCache | None = None
) -> str:
    """Store the index as an artifact directory (and in ``cache``); returns its digest."""
    with tempfile.TemporaryDirectory(prefix="genai-bm25-") as tmp:
        index.save(Path(tmp))
        digest = artifacts.put_dir(tmp)
    if cache is not None:
        cache.put(digest, index)
    return digest


def load_sparse(
    digest: str, artifacts: ArtifactStore, cache: SparseCache | None = None
) -> SparseIndex:
    """The index stored under ``digest``, from ``cache`` when it holds it."""
    cached = cache.get(digest) if cache is not None else None
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="genai-bm25-") as tmp:
        artifacts.get_dir(digest, Path(tmp) / "index")
        index = SparseIndex.load(Path(tmp) / "index")
    if cache is not None:
        cache.put(digest, index)
    return index
