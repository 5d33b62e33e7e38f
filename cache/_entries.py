"""Where cache entries live: the answers, their keys, and the cache's counters.

The vector store is only an index: an entry exists when its row exists here. Rows are
written before vectors and deleted before them, so a vector without a row (a crash in
between, another process's eviction) is ignored by a lookup and cleaned up on the way.

:class:`MemoryEntries` keeps everything in the process (tests, notebooks);
:class:`~cache._sql.SqlEntries` keeps it in the platform's database, so every gateway
process sees every entry, eviction and counter.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

__all__ = ["COUNTERS", "CacheStats", "Entry", "EntryStore", "MemoryEntries"]

#: The counters kept per project and deployment.
COUNTERS = (
    "lookups",
    "exact_hits",
    "semantic_hits",
    "tokens_saved",
    "cost_saved_usd",
    "false_hits",
    "stores",
    "evictions",
)
#: Partition fields an invalidation may filter on.
FILTERS = ("deployment", "adapter", "prompt_version", "kb_version", "revision")


@dataclass(frozen=True)
class Entry:
    """One cached answer and what it is keyed by (times are Unix seconds)."""

    id: str
    project_id: int
    exact_key: str
    scope: str
    deployment: str
    answer: Any  # a str, or a whole OpenAI response body
    question: str | None = None
    vector: bytes | None = None  # the question's embedding, float32
    adapter: str = ""
    prompt_version: str = ""
    params: str = ""  # a hash of the canonical parameters
    kb_version: str = ""
    revision: str = ""
    request_id: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    created_at: float = 0.0
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class CacheStats:
    """A project's cache, as ``genai cache stats`` shows it."""

    project_id: int
    entries: int
    lookups: int
    exact_hits: int
    semantic_hits: int
    tokens_saved: int
    cost_saved_usd: float
    false_hits: int
    stores: int
    evictions: int
    by_deployment: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def hits(self) -> int:
        return self.exact_hits + self.semantic_hits

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @classmethod
    def of(
        cls, project_id: int, entries: int, rows: Mapping[str, Mapping[str, float]]
    ) -> CacheStats:
        total = {name: sum(float(r.get(name, 0)) for r in rows.values()) for name in COUNTERS}
        return cls(
            project_id=project_id,
            entries=entries,
            lookups=int(total["lookups"]),
            exact_hits=int(total["exact_hits"]),
            semantic_hits=int(total["semantic_hits"]),
            tokens_saved=int(total["tokens_saved"]),
            cost_saved_usd=total["cost_saved_usd"],
            false_hits=int(total["false_hits"]),
            stores=int(total["stores"]),
            evictions=int(total["evictions"]),
            by_deployment={d: dict(r) for d, r in sorted(rows.items())},
        )


#: An entry that was deleted: (id, scope), what its vector's removal needs.
Gone = tuple[str, str]


class EntryStore(Protocol):
    """Rows of cache entries; every call names the project, and never crosses it."""

    def exact(self, project_id: int, exact_key: str) -> Entry | None: ...

    def fetch(self, project_id: int, ids: Sequence[str]) -> dict[str, Entry]: ...

    def scope_rows(self, project_id: int, scope: str, limit: int) -> list[Entry]:
        """The scope's entries that have a question, most recently used first."""
        ...

    def count_scope(self, project_id: int, scope: str) -> int: ...

    def projects(self) -> set[int]:
        """The projects that hold at least one entry."""
        ...

    def put(self, entry: Entry) -> Entry:
        """Insert, or replace the answer of the entry with the same exact key (whose id it
        keeps): the entry as stored."""
        ...

    def delete(self, project_id: int, ids: Sequence[str]) -> list[Gone]: ...

    def delete_where(self, project_id: int, filters: Mapping[str, str]) -> list[Gone]:
        """Delete the project's entries whose partition fields equal ``filters`` (all of
        them when empty)."""
        ...

    def trim(self, project_id: int, keep: int) -> list[Gone]:
        """Delete the least recently used entries beyond ``keep``."""
        ...

    def purge_expired(self, now: float, limit: int = 1000) -> list[tuple[int, str, str]]:
        """Delete expired entries of every project: (project, id, scope) of each."""
        ...

    def for_request(self, project_id: int, request_id: str) -> list[Entry]:
        """Entries a request stored, or that answered it."""
        ...

    def record(
        self,
        project_id: int,
        deployment: str,
        counts: Mapping[str, float],
        *,
        hit: tuple[str, str] | None = None,
        at: float | None = None,
        score: float | None = None,
    ) -> None:
        """Add to the counters; ``hit`` is (entry id, request id) of an answer served, and
        ``score`` the pair verifier's when it judged that hit."""
        ...

    def claim_judged(self, project_id: int, request_id: str) -> list[tuple[str, float]]:
        """(deployment, verifier score) of the judged hits that answered ``request_id``,
        each given once (to the first caller, in any process): what a labelled error
        counts against."""
        ...

    def stats(self, project_id: int) -> CacheStats: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class MemoryEntries:
    """Entries in dicts, indexed by project and scope: one process, gone on exit.

    The entries themselves are bounded by the cache (``max_entries`` per project, TTL); the
    log of which request each hit answered (what :meth:`for_request` reads for feedback)
    keeps the latest ``max_hit_log`` requests."""

    def __init__(self, *, max_hit_log: int = 100_000) -> None:
        if max_hit_log < 1:
            raise ValueError(f"max_hit_log must be at least 1, not {max_hit_log}")
        self.max_hit_log = max_hit_log
        self._rows: dict[str, Entry] = {}
        self._keys: dict[tuple[int, str], str] = {}
        self._scopes: dict[tuple[int, str], dict[str, None]] = {}
        self._projects: dict[int, dict[str, None]] = {}  # least recently used first
        self._used: dict[str, float] = {}
        self._counters: dict[tuple[int, str], dict[str, float]] = {}
        self._hits: dict[tuple[int, str], set[str]] = {}  # oldest request first
        self._judged: dict[tuple[int, str], tuple[str, float]] = {}  # oldest first
        self._lock = threading.RLock()

    def exact(self, project_id: int, exact_key: str) -> Entry | None:
        with self._lock:
            entry_id = self._keys.get((project_id, exact_key))
            return self._rows.get(entry_id) if entry_id is not None else None

    def fetch(self, project_id: int, ids: Sequence[str]) -> dict[str, Entry]:
        with self._lock:
            rows = (self._rows.get(i) for i in ids)
            return {e.id: e for e in rows if e is not None and e.project_id == project_id}

    def scope_rows(self, project_id: int, scope: str, limit: int) -> list[Entry]:
        with self._lock:
            ids = sorted(
                self._scopes.get((project_id, scope), {}), key=lambda i: -self._used.get(i, 0.0)
            )
            rows = (self._rows[i] for i in ids)
            return [e for e in rows if e.question is not None][:limit]

    def count_scope(self, project_id: int, scope: str) -> int:
        with self._lock:
            return len(self._scopes.get((project_id, scope), {}))

    def projects(self) -> set[int]:
        with self._lock:
            return {project for project, ids in self._projects.items() if ids}

    def put(self, entry: Entry) -> Entry:
        with self._lock:
            existing = self._keys.get((entry.project_id, entry.exact_key))
            if existing is not None:
                self.delete(entry.project_id, [existing])
                entry = replace(entry, id=existing)
            self._rows[entry.id] = entry
            self._keys[(entry.project_id, entry.exact_key)] = entry.id
            self._scopes.setdefault((entry.project_id, entry.scope), {})[entry.id] = None
            self._projects.setdefault(entry.project_id, {})[entry.id] = None
            self._used[entry.id] = entry.created_at
            return entry

    def delete(self, project_id: int, ids: Sequence[str]) -> list[Gone]:
        with self._lock:
            gone = []
            for entry_id in ids:
                entry = self._rows.get(entry_id)
                if entry is None or entry.project_id != project_id:
                    continue
                del self._rows[entry_id]
                self._used.pop(entry_id, None)
                self._keys.pop((project_id, entry.exact_key), None)
                scope = self._scopes.get((project_id, entry.scope), {})
                scope.pop(entry_id, None)
                if not scope:
                    self._scopes.pop((project_id, entry.scope), None)
                self._projects.get(project_id, {}).pop(entry_id, None)
                gone.append((entry_id, entry.scope))
            return gone

    def delete_where(self, project_id: int, filters: Mapping[str, str]) -> list[Gone]:
        with self._lock:
            rows = (self._rows[i] for i in self._projects.get(project_id, {}))
            ids = [e.id for e in rows if all(getattr(e, k) == v for k, v in filters.items())]
            return self.delete(project_id, ids)

    def trim(self, project_id: int, keep: int) -> list[Gone]:
        with self._lock:
            mine = self._projects.get(project_id, {})
            if len(mine) <= keep:
                return []
            oldest = list(itertools.islice(mine, len(mine) - keep))
            return self.delete(project_id, oldest)

    def purge_expired(self, now: float, limit: int = 1000) -> list[tuple[int, str, str]]:
        with self._lock:
            gone = [e for e in self._rows.values() if e.expired(now)][:limit]
            for entry in gone:
                self.delete(entry.project_id, [entry.id])
            return [(e.project_id, e.id, e.scope) for e in gone]

    def for_request(self, project_id: int, request_id: str) -> list[Entry]:
        if not request_id:
            return []
        with self._lock:
            served = self._hits.get((project_id, request_id), set())
            rows = (self._rows[i] for i in self._projects.get(project_id, {}))
            return [e for e in rows if e.request_id == request_id or e.id in served]

    def record(
        self,
        project_id: int,
        deployment: str,
        counts: Mapping[str, float],
        *,
        hit: tuple[str, str] | None = None,
        at: float | None = None,
        score: float | None = None,
    ) -> None:
        with self._lock:
            row = self._counters.setdefault((project_id, deployment), dict.fromkeys(COUNTERS, 0))
            for name, value in counts.items():
                row[name] += value
            if hit is not None:
                entry_id, request_id = hit
                self._used[entry_id] = at if at is not None else time.time()
                mine = self._projects.get(project_id, {})
                if mine.pop(entry_id, 0) is None:  # used: now the most recent
                    mine[entry_id] = None
                if request_id:
                    self._hits.setdefault((project_id, request_id), set()).add(entry_id)
                    while len(self._hits) > self.max_hit_log:
                        self._hits.pop(next(iter(self._hits)))
                    if score is not None:
                        self._judged[(project_id, request_id)] = (deployment, score)
                        while len(self._judged) > self.max_hit_log:
                            self._judged.pop(next(iter(self._judged)))

    def claim_judged(self, project_id: int, request_id: str) -> list[tuple[str, float]]:
        with self._lock:
            found = self._judged.pop((project_id, request_id), None)
        return [found] if found is not None else []

    def stats(self, project_id: int) -> CacheStats:
        with self._lock:
            rows = {d: dict(c) for (p, d), c in self._counters.items() if p == project_id}
            return CacheStats.of(project_id, len(self._projects.get(project_id, {})), rows)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None
