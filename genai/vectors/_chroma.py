"""``ChromaVectorStore``: the default backend, embedded (``PersistentClient``) or a server.

Embedded Chroma keeps its files under ``settings.vector_path`` and belongs to one process:
a gateway running several workers should point ``GENAI_CHROMA_URL`` at a ``chroma run``
server instead. Telemetry is off, collections use cosine space, and Chroma never embeds
anything itself (no embedding function: it would try to download a model).

Files: the directory is made 0700 and everything Chroma writes in it (its SQLite file, each
collection's index files) 0600, whatever the process umask (:mod:`genai.files`).

Memory: Chroma 1.x (its Rust core) keeps the HNSW index of every collection it has opened
in memory, up to a fifth of the open-file limit of them; ``chroma_segment_cache_policy`` and
``chroma_memory_limit_bytes`` only applied to its former Python core. What it holds is
therefore what is stored: the semantic cache bounds that (``max_entries`` per project,
``ttl_s``), and drops a scope's collection when its last entry goes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from genai.errors import BackendError, ConfigError, MissingDependencyError, ValidationError
from genai.files import is_open, private_dir, private_file, private_tree, private_umask
from genai.vectors._protocol import MetadataValue, VectorMatch, Where, check_collection

__all__ = ["ChromaVectorStore", "chroma_settings", "embedded_client"]


def chroma_settings() -> Any:
    """The client settings of every Chroma client of the platform (the cache's and the
    knowledge bases'): Chroma shares one system per directory in a process and refuses a
    second client of it with other settings. Telemetry off, no reset."""
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


def embedded_client(path: Path) -> Any:
    """An embedded Chroma (``PersistentClient``) on ``path``: the directory 0700, its
    SQLite file created 0600 before Chroma opens it; a directory an older version left
    open is tightened with everything in it. Calls that write files must run inside
    :func:`genai.files.private_umask` (Chroma creates each collection's index files
    itself)."""
    import chromadb

    older = is_open(path)  # made by an older version: what it holds may be open too
    private_dir(path)
    private_file(path / "chroma.sqlite3")  # an empty file is a new SQLite database
    if older:
        private_tree(path)
    with private_umask():
        return chromadb.PersistentClient(path=str(path), settings=chroma_settings())


class ChromaVectorStore:
    """Chroma collections, one per :func:`~genai.vectors.collection_name`.

    Give ``path`` (embedded, a directory) or ``url`` (``http://host:8000``), or a ready
    ``client``. Nothing connects until the first call or :meth:`warm`.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        url: str | None = None,
        client: Any = None,
        max_handles: int = 1024,
    ) -> None:
        if client is None and (path is None) == (url is None):
            raise ConfigError(
                "ChromaVectorStore needs a path (embedded) or a url (a Chroma server), "
                "not both and not neither: set GENAI_VECTOR_PATH or GENAI_CHROMA_URL"
            )
        self._path = Path(path).expanduser() if path is not None else None
        self._url = url
        self._client = client
        self._collections: dict[str, Any] = {}  # handles, oldest first (at most max_handles)
        self._max_handles = max_handles
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        where = self._url or self._path or "a given client"
        return f"ChromaVectorStore({str(where)!r})"

    def warm(self) -> None:
        """Open the client now (otherwise the first call does)."""
        self._chroma()

    # ------------------------------------------------------------ the protocol

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Sequence[Mapping[str, MetadataValue]] | None = None,
    ) -> None:
        import numpy as np

        rows = np.asarray(vectors, dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        if rows.shape[0] != len(ids):
            raise ValidationError(
                f"{len(ids)} ids but {rows.shape[0]} vectors: give one vector per id",
                field="vectors",
            )
        if not ids:
            return
        metas = [dict(m) for m in metadatas] if metadatas is not None else None
        if metas is not None and len(metas) != len(ids):
            raise ValidationError(
                f"{len(ids)} ids but {len(metas)} metadatas: give one metadata per id",
                field="metadatas",
            )
        if metas is not None and not all(metas):
            metas = None if not any(metas) else [m or {"_": 0} for m in metas]
        self._call(
            collection,
            lambda c: c.upsert(ids=list(ids), embeddings=rows, metadatas=metas),
            create=True,
        )

    def query(
        self,
        collection: str,
        vector: Any,
        *,
        k: int = 5,
        where: Where | None = None,
        metadata: bool = True,
    ) -> list[VectorMatch]:
        import numpy as np

        if k < 1:
            raise ValidationError(f"k must be at least 1, not {k}", field="k")
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        result = self._call(
            collection,
            lambda c: c.query(
                query_embeddings=query,
                n_results=k,
                where=_where(where),
                include=["distances", "metadatas"] if metadata else ["distances"],
            ),
        )
        if result is None or not result["ids"]:
            return []
        ids = result["ids"][0]
        distances = (result.get("distances") or [[]])[0]
        metas = (result.get("metadatas") or [[None] * len(ids)])[0]
        return [
            VectorMatch(i, 1.0 - float(d), {k: v for k, v in (m or {}).items() if k != "_"})
            for i, d, m in zip(ids, distances, metas, strict=True)
        ]

    def delete(
        self, collection: str, *, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> None:
        if ids is None and not where:
            raise ValidationError(
                "delete needs ids or a where filter; drop() removes a whole collection",
                field="where",
            )
        if ids is not None and not ids:
            return
        self._call(
            collection,
            lambda c: c.delete(ids=list(ids) if ids is not None else None, where=_where(where)),
        )

    def count(self, collection: str, *, where: Where | None = None) -> int:
        if not where:
            found = self._call(collection, lambda c: c.count())
        else:
            found = self._call(
                collection, lambda c: len(c.get(where=_where(where), include=[])["ids"])
            )
        return int(found or 0)

    def drop(self, collection: str) -> None:
        check_collection(collection)
        client = self._chroma()
        with self._lock:
            self._collections.pop(collection, None)
        try:
            with private_umask():
                client.delete_collection(collection)
        except Exception as error:
            if not _is_missing(error):
                raise _backend_error(f"dropping collection {collection!r}", error) from error

    def collections(self, prefix: str = "") -> list[str]:
        client = self._chroma()
        try:
            listed = client.list_collections()
        except Exception as error:
            raise _backend_error("listing collections", error) from error
        # Chroma 1.x lists Collection objects; some versions listed bare names
        names = (str(getattr(c, "name", c)) for c in listed)
        return sorted(name for name in names if name.startswith(prefix))

    # ------------------------------------------------------------ internals

    def _chroma(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
        return self._client

    def _connect(self) -> Any:
        try:
            import chromadb
        except ImportError:
            raise MissingDependencyError(
                "chromadb", extra="cache", purpose="the Chroma vector store"
            ) from None
        settings = chroma_settings()
        try:
            if self._url is not None:
                parsed = urlparse(self._url)
                if parsed.scheme not in ("http", "https") or not parsed.hostname:
                    raise ConfigError(
                        f"GENAI_CHROMA_URL {self._url!r} is not a Chroma server URL: use "
                        "http://host:8000"
                    )
                return chromadb.HttpClient(
                    host=parsed.hostname,
                    port=parsed.port or (443 if parsed.scheme == "https" else 8000),
                    ssl=parsed.scheme == "https",
                    settings=settings,
                )
            assert self._path is not None
            return embedded_client(self._path)
        except ConfigError:
            raise
        except Exception as error:
            where = self._url or str(self._path)
            raise _backend_error(f"opening Chroma at {where}", error) from error

    def _collection(self, name: str, *, create: bool) -> Any:
        found = self._collections.get(name)
        if found is not None:
            return found
        client = self._chroma()
        if create:
            found = client.get_or_create_collection(
                name, configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
            )
        else:
            try:
                found = client.get_collection(name, embedding_function=None)
            except Exception as error:
                if _is_missing(error):
                    return None
                raise
        with self._lock:
            self._collections[name] = found
            while len(self._collections) > self._max_handles:
                self._collections.pop(next(iter(self._collections)))
        return found

    def _call(self, collection: str, action: Any, *, create: bool = False) -> Any:
        """``action(collection)``; a handle another process dropped is looked up again once,
        and Chroma's exceptions become :class:`~genai.errors.BackendError`."""
        check_collection(collection)
        for attempt in (1, 2):
            try:
                with private_umask():  # an index file Chroma writes now is private
                    handle = self._collection(collection, create=create)
                    if handle is None:
                        return None
                    return action(handle)
            except Exception as error:
                if isinstance(error, ValidationError | ConfigError | MissingDependencyError):
                    raise
                with self._lock:
                    self._collections.pop(collection, None)
                if _is_missing(error):
                    if attempt == 1:
                        continue
                    if not create:
                        return None
                raise _backend_error(f"collection {collection!r}", error) from error
        return None


def _where(where: Where | None) -> dict[str, Any] | None:
    if not where:
        return None
    if len(where) == 1:
        return dict(where)
    return {"$and": [{key: value} for key, value in where.items()]}


def _is_missing(error: Exception) -> bool:
    text = f"{type(error).__name__} {error}".lower()
    return "notfound" in text.replace(" ", "") or "does not exist" in text


def _backend_error(doing: str, error: Exception) -> BackendError:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
    return BackendError(
        f"Chroma failed {doing}: {first}. Check GENAI_VECTOR_PATH (or that the server at "
        "GENAI_CHROMA_URL runs)",
        backend="chroma",
        retryable=True,
    )
