"""Vector stores: the ``VectorStore`` protocol, an exact in-memory store and Chroma.

    store = create_vector_store(settings)          # Chroma under GENAI_HOME, or a server
    store.upsert("cache-12", ["a"], vectors, [{"partition": "p1"}])
    store.query("cache-12", vector, k=5, where={"partition": "p1"})

Stores are found by name in :data:`VECTOR_STORES`: ``chroma``, ``memory``, or a third
party's through the ``genai.vector_stores`` entry point group (a factory called with
``settings=``; see :mod:`genai.plugins`).

Neither NumPy nor chromadb is imported until a store is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai.plugins import Registry
from genai.vectors._chroma import ChromaVectorStore, chroma_settings, embedded_client
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
    "VECTOR_STORES",
    "ChromaVectorStore",
    "InMemoryVectorStore",
    "MetadataValue",
    "VectorMatch",
    "VectorStore",
    "Where",
    "check_collection",
    "chroma_settings",
    "collection_name",
    "create_vector_store",
    "embedded_client",
]


def _chroma(*, settings: Settings) -> VectorStore:
    if settings.chroma_url:
        return ChromaVectorStore(url=settings.chroma_url)
    return ChromaVectorStore(settings.resolved_vector_path)


def _memory(*, settings: Settings | None = None) -> VectorStore:
    return InMemoryVectorStore()


#: Vector stores by name; third parties add theirs under the ``genai.vector_stores`` entry
#: point group (a factory called with ``settings=`` the platform's settings).
VECTOR_STORES: Registry[VectorStore] = Registry(
    "vector store",
    group="genai.vector_stores",
    builtins={"chroma": _chroma, "memory": _memory},
)


def create_vector_store(settings: Settings, *, backend: str = "chroma") -> VectorStore:
    """The store the settings name: Chroma at ``settings.chroma_url`` when set, else
    embedded Chroma under ``settings.resolved_vector_path``; ``backend="memory"`` for an
    in-process one (tests, single-process tools), or any other name of
    :data:`VECTOR_STORES`."""
    return VECTOR_STORES.create(backend, settings=settings)
