"""Fusion of dense and sparse rankings, maximal marginal relevance, and rerankers.

- Reciprocal-rank fusion (Cormack et al. 2009): ``Σ w / (k + rank)``; needs no score
  calibration, which BM25 scores (unbounded) and cosine similarities (bounded) lack.
- Weighted fusion: each list's scores min-max normalised to [0, 1], then ``α·dense +
  (1-α)·sparse``; a chunk missing from one list gets 0 there.
- MMR (Carbonell & Goldstein 1998) trades relevance for novelty among candidates, so the
  k chunks shown to a model are not k near-copies of one paragraph.
- A :class:`Reranker` rescales the top candidates; :class:`CrossEncoderReranker` runs a
  local sentence-transformers cross-encoder (nothing downloaded).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from genai.errors import ConfigError, MissingDependencyError, ValidationError
from rag._types import Chunk

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CrossEncoderReranker",
    "Fusion",
    "Reranker",
    "fuse",
    "mmr",
    "reciprocal_rank_fusion",
    "weighted_fusion",
]

Fusion = Literal["rrf", "weighted"]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, k: int = 60, weights: Sequence[float] | None = None
) -> dict[str, float]:
    """``id → Σ weight / (k + rank)`` over the rankings (rank 1 = best)."""
    weights = weights or [1.0] * len(rankings)
    out: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, chunk_id in enumerate(ranking, 1):
            out[chunk_id] = out.get(chunk_id, 0.0) + weight / (k + rank)
    return out


def weighted_fusion(
    scored: Sequence[Mapping[str, float]], weights: Sequence[float]
) -> dict[str, float]:
    """``id → Σ weight · minmax(score)`` over the score maps."""
    out: dict[str, float] = {}
    for scores, weight in zip(scored, weights, strict=True):
        if not scores:
            continue
        low, high = min(scores.values()), max(scores.values())
        span = high - low
        for chunk_id, score in scores.items():
            norm = (score - low) / span if span > 0 else 1.0
            out[chunk_id] = out.get(chunk_id, 0.0) + weight * norm
    return out


def fuse(
    dense: Sequence[tuple[str, float]],
    sparse: Sequence[tuple[str, float]],
    *,
    method: Fusion,
    dense_weight: float,
    rrf_k: int,
) -> list[tuple[str, float]]:
    """One ranking from a dense and a sparse one (each ``(id, score)``, best first)."""
    if not 0.0 <= dense_weight <= 1.0:
        raise ValidationError(f"dense_weight is in [0, 1], not {dense_weight}")
    weights = [dense_weight, 1.0 - dense_weight]
    if method == "rrf":
        fused = reciprocal_rank_fusion(
            [[i for i, _ in dense], [i for i, _ in sparse]], k=rrf_k, weights=weights
        )
    elif method == "weighted":
        fused = weighted_fusion([dict(dense), dict(sparse)], weights)
    else:
        raise ValidationError(f"unknown fusion {method!r}: use 'rrf' or 'weighted'")
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def mmr(
    query: NDArray[np.float32],
    candidates: NDArray[np.float32],
    relevance: Sequence[float] | None,
    k: int,
    *,
    diversity: float,
) -> list[int]:
    """Positions of ``k`` candidates chosen greedily by ``(1-d)·relevance − d·redundancy``.

    Vectors are unit length; relevance defaults to cosine similarity with the query.
    """
    import numpy as np

    if not 0.0 <= diversity <= 1.0:
        raise ValidationError(f"mmr diversity is in [0, 1], not {diversity}", field="mmr")
    n = len(candidates)
    if n == 0:
        return []
    rel = np.asarray(relevance if relevance is not None else candidates @ query, dtype=np.float32)
    if relevance is not None and rel.max() > rel.min():  # fused scores: bring to [0, 1]
        rel = (rel - rel.min()) / (rel.max() - rel.min())
    sims = candidates @ candidates.T
    chosen: list[int] = []
    best_redundancy = np.full(n, -np.inf, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(best_redundancy), best_redundancy, 0.0)
        score = (1.0 - diversity) * rel - diversity * redundancy
        score[~available] = -np.inf
        pick = int(np.argmax(score))
        chosen.append(pick)
        available[pick] = False
        best_redundancy = np.maximum(best_redundancy, sims[pick])
    return chosen


@runtime_checkable
class Reranker(Protocol):
    """Rescores retrieved chunks for a query; returns them best first (new scores)."""

    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]: ...


class CrossEncoderReranker:
    """A local sentence-transformers cross-encoder directory (e.g. a copy of
    ``cross-encoder/ms-marco-MiniLM-L-6-v2``); loaded on first use, never downloaded."""

    def __init__(self, model: str | Path, *, device: str = "cpu", batch_size: int = 32) -> None:
        path = Path(model).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"reranker {str(model)!r} is not a local directory: give the path of a "
                "sentence-transformers cross-encoder (models are never downloaded)"
            )
        self.path = path
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import CrossEncoder
                except ImportError:
                    raise MissingDependencyError(
                        "sentence-transformers", extra="llm", purpose="the cross-encoder reranker"
                    ) from None
                try:
                    self._model = CrossEncoder(
                        str(self.path), device=self._device, local_files_only=True
                    )
                except (OSError, ValueError) as error:
                    raise ConfigError(
                        f"cannot load the cross-encoder at {self.path}: {error}"
                    ) from error
            return self._model

    def rerank(self, query: str, chunks: Sequence[Chunk], k: int) -> list[Chunk]:
        if not chunks:
            return []
        model = self._load()
        scores = model.predict(
            [(query, c.text) for c in chunks],
            batch_size=self._batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        ranked = sorted(zip(chunks, scores, strict=True), key=lambda pair: -float(pair[1]))
        return [c.model_copy(update={"score": float(s)}) for c, s in ranked[:k]]
