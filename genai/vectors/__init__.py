"""Vector stores: the ``VectorStore`` protocol, an exact in-memory store and Chroma.

    store = create_vector_store(settings)          # Chroma under GENAI_HOME, or a server
    store.upsert("cache-12", ["a"], vectors, [{"partition": "p1"}])
    store.query("cache-12", vector, k=5, where={"partition": "p1"})

Neither NumPy nor chromadb is imported until a store is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai.errors import UnknownBackendError
from genai.vectors._chroma import ChromaVectorStore
from genai.vectors._memory import InMemoryVectorStore
from genai.vectors._protocol import (
    MetadataValue,
    VectorMatch,
    VectorStore,
    Where,
    check_collection,
    collection_name,
)

if TYPE_CHECKING:
    from genai.settings import Settings

__all__ = [
    "ChromaVectorStore",
    "InMemoryVectorStore",
    "MetadataValue",
    "VectorMatch",
    "VectorStore",
    "Where",
    "check_collection",
    "collection_name",
    "create_vector_store",
]

_BACKENDS = ("chroma", "memory")


def create_vector_store(settings: Settings, *, backend: str = "chroma") -> VectorStore:
    """The store the settings name: Chroma at ``settings.chroma_url`` when set, else
    embedded Chroma under ``settings.resolved_vector_path``; ``backend="memory"`` for an
    in-process one (tests, single-process tools)."""
    if backend == "memory":
        return InMemoryVectorStore()
    if backend != "chroma":
        raise UnknownBackendError("vector store", backend, list(_BACKENDS))
    if settings.chroma_url:
        return ChromaVectorStore(url=settings.chroma_url)
    return ChromaVectorStore(settings.resolved_vector_path)
