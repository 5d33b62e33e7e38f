"""Where the vectors are searched: a scope with fewer than ``index_after`` entries (a
conversation, a DLP session, a rarely used prompt) is searched from its rows (each keeps its
embedding), with NumPy; a busier scope gets a vector-store collection of its own, queried
without a metadata filter. Chroma's filters scan every matching row (tens of milliseconds
even for a handful of rows), and a collection per conversation would fill the disk; so
neither a filter nor a collection is used where the other one is cheaper. A collection is
named ``<collection_prefix>-p<project id>-<model>-<scope>``; one whose project holds no
entry any more (a deleted project's entries go with it, the database cascades) is dropped by
the purge that also removes expired entries (every minute, on a store), or at once by
:meth:`SemanticCache.purge_orphaned_collections`.

When a scope crosses ``index_after`` its whole content is upserted into its collection, and
every later store adds its vector there. Rows are the truth: a vector whose row is gone is
removed when met, and an emptied collection is dropped.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import Any

from cache._entries import EntryStore
from cache._lookup import from_bytes
from genai.vectors import VectorStore, collection_name

__all__ = ["ScopeIndex"]

#: Scopes remembered as having a collection (one forgotten is looked up again on a store).
_MAX_INDEXED = 10_000


class ScopeIndex:
    """The collections of one cache's busy scopes; thread-safe."""

    def __init__(
        self,
        vectors: VectorStore,
        entries: EntryStore,
        *,
        prefix: str,
        model: str,
        index_after: int,
    ) -> None:
        self.vectors = vectors
        self._entries = entries
        self._prefix = prefix
        self._own = re.compile(rf"{re.escape(prefix)}-p(\d+)-")
        self._model = model
        self.index_after = index_after
        # scopes known to have a collection, oldest first
        self._indexed: dict[tuple[int, str], None] = {}
        self._lock = threading.Lock()

    def collection(self, project_id: int, scope: str) -> str:
        """The vector collection of one busy scope (and one embedding model)."""
        return collection_name(self._prefix, f"p{project_id}", self._model, scope[:24])

    def add(self, project: int, deployment: str, scope: str, entry_id: str, vector: Any) -> None:
        """Add a vector to its scope's collection once the scope is busy enough to have one
        (the whole scope is indexed when it crosses ``index_after``)."""
        name = self.collection(project, scope)
        meta = {"deployment": deployment}
        if (project, scope) not in self._indexed:
            count = self._entries.count_scope(project, scope)
            if count < self.index_after:
                return
            if self.vectors.count(name) + 1 < count:
                rows = self._entries.scope_rows(project, scope, max(count, 1) * 2)
                rows = [e for e in rows if e.vector and e.id != entry_id]
                for start in range(0, len(rows), 1000):
                    part = rows[start : start + 1000]
                    self.vectors.upsert(
                        name,
                        [e.id for e in part],
                        [from_bytes(e.vector or b"") for e in part],
                        [meta] * len(part),
                    )
            with self._lock:
                self._indexed[(project, scope)] = None
                while len(self._indexed) > _MAX_INDEXED:
                    self._indexed.pop(next(iter(self._indexed)))
        self.vectors.upsert(name, [entry_id], [vector], [meta])

    def forget(self, project_id: int, gone: Sequence[tuple[str, str]]) -> None:
        """Remove the vectors of deleted entries, (id, scope) each."""
        by_scope: dict[str, list[str]] = {}
        for entry_id, scope in gone:
            by_scope.setdefault(scope, []).append(entry_id)
        for scope, ids in by_scope.items():
            name = self.collection(project_id, scope)
            for start in range(0, len(ids), 5000):
                self.vectors.delete(name, ids=ids[start : start + 5000])
            if self.vectors.count(name) == 0:  # nothing left: no empty collection lingers
                self.drop(project_id, scope)

    def drop(self, project_id: int, scope: str) -> None:
        with self._lock:
            self._indexed.pop((project_id, scope), None)
        self.vectors.drop(self.collection(project_id, scope))

    def purge_expired(self, now: float) -> None:
        """Delete expired entries of every project and their vectors, then the collections
        whose project holds no entry any more."""
        by_project: dict[int, list[tuple[str, str]]] = {}
        for project_id, entry_id, scope in self._entries.purge_expired(now):
            by_project.setdefault(project_id, []).append((entry_id, scope))
        for project_id, gone in by_project.items():
            self.forget(project_id, gone)
        self.purge_orphaned()

    def purge_orphaned(self) -> list[str]:
        """Drop the collections whose project holds no entry any more (the names dropped).

        Collections are listed before the projects are read: one that a store creates
        meanwhile belongs to a project whose entries are in the database already, so it
        stays."""
        names = self.vectors.collections(f"{self._prefix}-p")
        if not names:
            return []
        live = self._entries.projects()
        dropped = []
        for name in names:
            own = self._own.match(name)
            if own is None or int(own.group(1)) in live:
                continue
            self.vectors.drop(name)
            dropped.append(name)
        if dropped:
            with self._lock:
                self._indexed = {(p, s): None for p, s in self._indexed if p in live}
        return dropped
