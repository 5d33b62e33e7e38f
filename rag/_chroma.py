"""Knowledge-base chunks in Chroma: the client, collection names, and the few calls used.

- Embedded ``PersistentClient`` under ``GENAI_VECTOR_PATH`` (home/chroma) by default; a
  Chroma server (``chroma run``) when ``GENAI_CHROMA_URL`` is set. Telemetry is off.
- One collection per knowledge base, named from the *ids* of its project and knowledge
  base (``kb-<project id>-<kb id>``), never from names: two projects can hold a
  knowledge base called ``docs`` without any way to reach each other's collection, and a
  re-created knowledge base never inherits a deleted one's vectors (ids are never reused).
- We hand Chroma our own embeddings (no embedding function, so it never downloads one).

Chroma failures are translated to :class:`~genai.errors.BackendError` here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from genai.errors import BackendError, ConfigError, MissingDependencyError
from genai.files import private_umask
from genai.vectors import chroma_settings as shared_settings
from genai.vectors import collection_name as vector_collection_name
from genai.vectors import embedded_client

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from genai.settings import Settings

__all__ = ["ChunkStore", "chroma_client", "collection_name", "drop_collection"]

_PAGE = 2000  # rows per get() page when reading a whole collection


def collection_name(project_id: int, kb_id: int) -> str:
    """The collection of knowledge base ``kb_id`` of project ``project_id`` (``kb-3-7``),
    by the platform's naming rule (:func:`genai.vectors.collection_name`); the semantic
    cache's collections start with ``cache-``, so the two never meet."""
    return vector_collection_name("kb", int(project_id), int(kb_id))


def chroma_client(settings: Settings) -> Any:
    """A Chroma client as the settings configure it (server when ``chroma_url`` is set)."""
    try:
        import chromadb
    except ImportError:
        raise MissingDependencyError("chromadb", extra="rag", purpose="knowledge bases") from None
    # The same client settings as genai.vectors.ChromaVectorStore (the semantic cache), so
    # both share one embedded Chroma system per directory in a process.
    chroma_settings = shared_settings()
    if settings.chroma_url:
        parts = urlsplit(settings.chroma_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"GENAI_CHROMA_URL {settings.chroma_url!r} is not an http(s) URL: use e.g. "
                "http://127.0.0.1:8000 (the address of `chroma run`)"
            )
        try:
            return chromadb.HttpClient(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 8000),
                ssl=parts.scheme == "https",
                settings=chroma_settings,
            )
        except Exception as error:
            raise BackendError(
                f"cannot reach the Chroma server at {settings.chroma_url}: {error}; start it "
                "(`chroma run --path DIR --port PORT`) or unset GENAI_CHROMA_URL",
                backend="chroma",
                retryable=True,
            ) from error
    return embedded_client(settings.resolved_vector_path)  # private files (0700/0600)


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        with private_umask():  # the index files Chroma writes during the call are private
            yield
    except BackendError:
        raise
    except Exception as error:
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise BackendError(
            f"Chroma failed to {action}: {type(error).__name__}: {first}; check "
            "GENAI_VECTOR_PATH, or that the server at GENAI_CHROMA_URL runs",
            backend="chroma",
            retryable=True,
        ) from error


class ChunkStore:
    """The Chroma collection of one knowledge base."""

    def __init__(self, client: Any, name: str, *, create: bool = False) -> None:
        self.name = name
        with _translated(f"open collection {name}"):
            if create:
                self._col = client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    configuration={"hnsw": {"space": "cosine"}},
                    metadata={"genai_kind": "knowledge-base"},
                )
            else:
                self._col = client.get_collection(name, embedding_function=None)
        with _translated("read its batch size"):
            self._max_batch = int(client.get_max_batch_size())

    def count(self) -> int:
        with _translated(f"count {self.name}"):
            return int(self._col.count())

    def upsert(
        self,
        ids: Sequence[str],
        vectors: NDArray[np.float32],
        documents: Sequence[str],
        metadatas: Sequence[Mapping[str, Any]],
    ) -> None:
        step = self._max_batch
        with _translated(f"write to {self.name}"):
            for at in range(0, len(ids), step):
                self._col.upsert(
                    ids=list(ids[at : at + step]),
                    embeddings=vectors[at : at + step],
                    documents=list(documents[at : at + step]),
                    metadatas=[dict(m) for m in metadatas[at : at + step]],
                )

    def vectors_by_text_hash(self, hashes: Sequence[str]) -> dict[str, Any]:
        """Stored vectors of chunks whose embedded text has one of ``hashes``."""
        if not hashes:
            return {}
        with _translated(f"read {self.name}"):
            got = self._col.get(
                where={"text_hash": {"$in": list(hashes)}}, include=["embeddings", "metadatas"]
            )
        out: dict[str, Any] = {}
        embeddings = got.get("embeddings")
        if embeddings is None:
            return out
        for meta, vector in zip(got["metadatas"] or [], embeddings, strict=False):
            out[str(meta["text_hash"])] = vector
        return out

    def delete_where(self, where: dict[str, Any]) -> int:
        with _translated(f"delete from {self.name}"):
            ids = self._col.get(where=where, include=[])["ids"]
            if ids:
                for at in range(0, len(ids), self._max_batch):
                    self._col.delete(ids=ids[at : at + self._max_batch])
        return len(ids)

    def query(
        self, vector: Any, n: int, where: dict[str, Any] | None, *, embeddings: bool
    ) -> list[tuple[str, str, dict[str, Any], float, Any]]:
        """``(id, document, metadata, cosine similarity, embedding or None)``, best first."""
        import numpy as np

        include = ["documents", "metadatas", "distances"] + (["embeddings"] if embeddings else [])
        with _translated(f"query {self.name}"):
            res = self._col.query(
                query_embeddings=np.asarray(vector, dtype=np.float32).reshape(1, -1),
                n_results=n,
                where=where,
                include=include,
            )
        vectors = res.get("embeddings")
        rows = zip(
            res["ids"][0],
            (res.get("documents") or [[]])[0],
            (res.get("metadatas") or [[]])[0],
            (res.get("distances") or [[]])[0],
            vectors[0] if vectors is not None else [None] * len(res["ids"][0]),
            strict=False,
        )
        return [(i, d or "", dict(m or {}), 1.0 - float(dist), v) for i, d, m, dist, v in rows]

    def get(self, ids: Sequence[str], *, embeddings: bool = False) -> dict[str, Any]:
        """``{id: (document, metadata, embedding or None)}`` for the ids that exist."""
        if not ids:
            return {}
        include = ["documents", "metadatas"] + (["embeddings"] if embeddings else [])
        with _translated(f"read {self.name}"):
            got = self._col.get(ids=list(ids), include=include)
        vectors = got.get("embeddings")
        out = {}
        for index, chunk_id in enumerate(got["ids"]):
            vector = vectors[index] if vectors is not None else None
            out[chunk_id] = (got["documents"][index], dict(got["metadatas"][index]), vector)
        return out

    def scan(self) -> Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]:
        """Every chunk, a page at a time: ``(ids, documents, metadatas)``."""
        offset = 0
        while True:
            with _translated(f"read {self.name}"):
                page = self._col.get(limit=_PAGE, offset=offset, include=["documents", "metadatas"])
            if not page["ids"]:
                return
            yield page["ids"], list(page["documents"]), [dict(m) for m in page["metadatas"]]
            offset += len(page["ids"])


def drop_collection(client: Any, name: str) -> None:
    """Delete a collection; one that is already gone is fine."""
    with _translated(f"delete collection {name}"):
        try:
            client.delete_collection(name)
        except Exception as error:
            if "does not exist" not in str(error).lower() and "not found" not in str(error).lower():
                raise
