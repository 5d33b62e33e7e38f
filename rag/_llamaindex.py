"""A LlamaIndex retriever over a knowledge base (``llama-index-core`` imported here only).

Nothing of LlamaIndex's global ``Settings`` is touched: the retriever hands back nodes the
knowledge base already embedded and scored, so no LlamaIndex embedding model or tokenizer
(tiktoken, which downloads) is ever needed.
"""

from __future__ import annotations

from typing import Any

from genai.errors import MissingDependencyError

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as error:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        error.name or "llama-index-core",
        extra="integrations",
        purpose="the LlamaIndex retriever",
    ) from None

from rag._types import Chunk

__all__ = ["KnowledgeBaseLlamaRetriever", "to_node"]


def to_node(chunk: Chunk) -> NodeWithScore:
    meta = chunk.metadata
    metadata: dict[str, Any] = {
        "source": meta.source,
        "title": meta.title,
        "page": meta.page,
        "heading_path": " > ".join(meta.heading_path),
        "record": meta.record,
        "citation": meta.citation,
        **meta.extra,
    }
    node = TextNode(id_=chunk.id, text=chunk.text, metadata=metadata)
    return NodeWithScore(node=node, score=chunk.score)


class KnowledgeBaseLlamaRetriever(BaseRetriever):
    """``kb.retrieve`` as a LlamaIndex ``BaseRetriever`` (query engines, chat engines)."""

    def __init__(
        self,
        kb: Any,
        *,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        mode: str | None = None,
        mmr: float | None = None,
        rerank: Any = False,
    ) -> None:
        super().__init__()
        self._kb = kb
        self._k = k
        self._filters = filters
        self._mode = mode
        self._mmr = mmr
        self._rerank = rerank

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        chunks = self._kb.retrieve(
            query_bundle.query_str,
            self._k,
            self._filters,
            self._mode,
            mmr=self._mmr,
            rerank=self._rerank,
        )
        return [to_node(c) for c in chunks]
