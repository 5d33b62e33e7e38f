"""Retrieval over one knowledge base: dense (Chroma), sparse (BM25), hybrid, MMR, rerank.

Defaults were chosen on the SciFact training queries (``bench/retrieval_quality.py``):
hybrid search over the top 50 chunks of each retriever, fused by a convex combination of
min-max normalised scores with equal weights. On those queries it beat reciprocal-rank
fusion at every setting tried (nDCG@10 0.894 vs 0.886 for the best RRF, 0.880 for RRF
with k=60, and 0.853 / 0.848 for dense / BM25 alone), as Bruch et al. (2023) found on
BEIR; RRF stays available (``fusion="rrf"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from genai.errors import ValidationError
from rag._filters import check_filters, to_chroma_where
from rag._ingest import STANDARD_KEYS
from rag._ranking import Fusion, Reranker, fuse, mmr
from rag._types import Chunk, ChunkMetadata, FilterValue, Scalar, SearchMode

if TYPE_CHECKING:
    from genai.models import Embedder
    from rag._chroma import ChunkStore
    from rag._sparse import SparseIndex

__all__ = ["DEFAULTS", "RetrievalDefaults", "chunk_from", "search"]


@dataclass(frozen=True)
class RetrievalDefaults:
    mode: SearchMode = SearchMode.HYBRID
    fusion: Fusion = "weighted"
    rrf_k: int = 60
    dense_weight: float = 0.5
    fetch_k: int = 50  # candidates taken from each retriever before fusion / MMR / reranking
    mmr_fetch_factor: int = 4


#: Measured on SciFact train (bench/results/retrieval_quality.md).
DEFAULTS = RetrievalDefaults()


def chunk_from(chunk_id: str, body: str, meta: Mapping[str, Any], score: float) -> Chunk:
    """A :class:`Chunk` from the flat metadata stored with it."""
    extra: dict[str, Scalar] = {
        k: v for k, v in meta.items() if k not in STANDARD_KEYS and isinstance(v, Scalar)
    }
    modified = meta.get("modified")
    page = meta.get("page")
    return Chunk(
        id=chunk_id,
        text=body,
        score=float(score),
        metadata=ChunkMetadata(
            source=str(meta.get("source", "")),
            title=str(meta.get("title", "")),
            page=int(page) if page is not None else None,
            heading_path=list(json.loads(str(meta.get("heading_json") or "[]"))),
            modified=datetime.fromisoformat(modified) if isinstance(modified, str) else None,
            record=str(meta["record"]) if meta.get("record") is not None else None,
            chunk_index=int(meta.get("chunk_index", 0)),
            start=int(meta.get("start", 0)),
            end=int(meta.get("end", 0)),
            extra=extra,
        ),
    )


@dataclass
class _Candidate:
    chunk_id: str
    body: str
    meta: dict[str, Any]
    vector: Any = None


def search(
    query: str,
    *,
    k: int,
    store: ChunkStore,
    sparse: SparseIndex | None,
    embedder: Embedder,
    filters: Mapping[str, FilterValue] | None,
    mode: SearchMode,
    fusion: Fusion,
    dense_weight: float,
    fetch_k: int | None,
    diversity: float | None,
    reranker: Reranker | None,
    defaults: RetrievalDefaults = DEFAULTS,
) -> list[Chunk]:
    """The ``k`` best chunks for ``query`` (see :meth:`rag.KnowledgeBase.retrieve`)."""
    if not isinstance(query, str) or not query.strip():
        raise ValidationError("the query is empty: ask something", field="query")
    if k < 1:
        raise ValidationError(f"k must be at least 1, not {k}", field="k")
    conditions = check_filters(filters)
    where = to_chroma_where(filters)
    wide = mode is SearchMode.HYBRID or diversity is not None or reranker is not None
    n = fetch_k or (
        max(k * defaults.mmr_fetch_factor, defaults.fetch_k) if diversity is not None else None
    )
    n = n or (max(k, defaults.fetch_k) if wide else k)
    pool: dict[str, _Candidate] = {}
    dense: list[tuple[str, float]] = []
    sparse_hits: list[tuple[str, float]] = []
    query_vector = None
    if mode in (SearchMode.DENSE, SearchMode.HYBRID) or diversity is not None:
        query_vector = embedder.embed([query])[0]
    if mode in (SearchMode.DENSE, SearchMode.HYBRID):
        assert query_vector is not None
        for chunk_id, body, meta, score, vector in store.query(
            query_vector, n, where, embeddings=diversity is not None
        ):
            pool[chunk_id] = _Candidate(chunk_id, body, meta, vector)
            dense.append((chunk_id, score))
    if mode in (SearchMode.SPARSE, SearchMode.HYBRID) and sparse is not None:
        for position, score in sparse.search(query, n, conditions):
            chunk_id = sparse.ids[position]
            pool.setdefault(
                chunk_id,
                _Candidate(chunk_id, sparse.bodies[position], sparse.metadatas[position]),
            )
            sparse_hits.append((chunk_id, score))
    if mode is SearchMode.HYBRID:
        ranked = fuse(
            dense, sparse_hits, method=fusion, dense_weight=dense_weight, rrf_k=defaults.rrf_k
        )
    else:
        ranked = dense if mode is SearchMode.DENSE else sparse_hits
    ranked = ranked[:n]
    if diversity is not None and ranked:
        ranked = _diversify(ranked, pool, store, query_vector, k, diversity)
    limit = n if reranker is not None else k
    chunks = [chunk_from(i, pool[i].body, pool[i].meta, s) for i, s in ranked[:limit]]
    if reranker is not None:
        chunks = reranker.rerank(query, chunks, k)
    return chunks[:k]


def _diversify(
    ranked: list[tuple[str, float]],
    pool: dict[str, _Candidate],
    store: ChunkStore,
    query_vector: Any,
    k: int,
    diversity: float,
) -> list[tuple[str, float]]:
    import numpy as np

    lacking = [i for i, _ in ranked if pool[i].vector is None]
    for chunk_id, (_, _, vector) in store.get(lacking, embeddings=True).items():
        pool[chunk_id].vector = vector
    ranked = [(i, s) for i, s in ranked if pool[i].vector is not None]
    if not ranked:
        return []
    vectors = np.asarray([pool[i].vector for i, _ in ranked], dtype=np.float32)
    picks = mmr(
        np.asarray(query_vector, dtype=np.float32),
        vectors,
        [s for _, s in ranked],
        k,
        diversity=diversity,
    )
    return [ranked[p] for p in picks]
