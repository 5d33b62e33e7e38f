"""A LangChain retriever over a knowledge base (``langchain-core`` imported here only)."""

from __future__ import annotations

import asyncio
from typing import Any

from genai.errors import MissingDependencyError

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
except ImportError as error:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        error.name or "langchain-core",
        extra="integrations",
        purpose="the LangChain retriever",
    ) from None

from pydantic import ConfigDict

from rag._types import Chunk

__all__ = ["KnowledgeBaseRetriever", "to_langchain"]


def to_langchain(chunk: Chunk) -> LCDocument:
    """A chunk as a LangChain document: metadata flat, with id, score and citation."""
    meta = chunk.metadata
    metadata: dict[str, Any] = {
        "id": chunk.id,
        "score": chunk.score,
        "source": meta.source,
        "title": meta.title,
        "page": meta.page,
        "heading_path": list(meta.heading_path),
        "record": meta.record,
        "citation": meta.citation,
        **meta.extra,
    }
    return LCDocument(page_content=chunk.text, metadata=metadata, id=chunk.id)


class KnowledgeBaseRetriever(BaseRetriever):
    """``kb.retrieve`` as a LangChain ``BaseRetriever`` (``invoke(query)``, chains, agents).

    Authorization is the knowledge base's: the client that opened ``kb`` must be allowed to
    read it, on every call.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    kb: Any
    k: int = 5
    filters: dict[str, Any] | None = None
    mode: str | None = None
    mmr: float | None = None
    rerank: Any = False

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        chunks = self.kb.retrieve(
            query, self.k, self.filters, self.mode, mmr=self.mmr, rerank=self.rerank
        )
        return [to_langchain(c) for c in chunks]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        chunks = await asyncio.to_thread(
            self.kb.retrieve,
            query,
            self.k,
            self.filters,
            self.mode,
            mmr=self.mmr,
            rerank=self.rerank,
        )
        return [to_langchain(c) for c in chunks]
