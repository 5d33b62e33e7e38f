"""``SqlEntries``: cache entries and counters in the platform's database (SQLite or
PostgreSQL), so every gateway process shares them.

A lookup reads (one indexed query per tier) and writes nothing: hit counters, "last used"
times and the hit → request log are buffered and written by a background thread every
``flush_interval_s`` (and by :meth:`SqlEntries.flush`), so the database sees one small
batch a second instead of a write per request. The buffer holds at most ``max_buffered``
rows of each kind: a database too slow for the traffic loses hit-log rows (counted and
logged), never memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from cache._entries import COUNTERS, FILTERS, CacheStats, Entry, Gone
from cache._sql_evidence import SqlEvidence
from cache._sql_rows import entry_of, insert_for, row_values, when
from genai.errors import ConflictError, GenAIError
from genai.store import Store
from genai.store import schema as t

__all__ = ["SqlEntries"]

log = logging.getLogger("genai.cache")

_CHUNK = 500
#: A buffered hit-log row: project, request, entry, at, deployment, verifier score.
_HitRow = tuple[int, str, str, float, str, float | None]


class SqlEntries:
    """The :class:`~cache._entries.EntryStore` of the metadata store."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 1.0,
        hit_retention_s: float = 3 * 24 * 3600.0,
        max_buffered: int = 50_000,
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"max_buffered must be at least 1, not {max_buffered}")
        self._store = store
        self._interval = flush_interval_s
        self._retention = hit_retention_s
        self.max_buffered = max_buffered
        self.dropped = 0  # hit-log rows and "last used" times dropped while the buffer was full
        self._lock = threading.Lock()
        self._counters: dict[tuple[int, str], dict[str, float]] = {}
        self._hits: list[_HitRow] = []
        self._used: dict[str, tuple[int, float]] = {}  # entry → (hits, last used)
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        #: the error bound's evidence, written by the same flusher
        self.evidence = SqlEvidence(store)

    # ------------------------------------------------------------ reads

    def exact(self, project_id: int, exact_key: str) -> Entry | None:
        with self._store.session() as s:
            row = s.scalars(
                select(t.CacheEntry).where(
                    t.CacheEntry.project_id == project_id, t.CacheEntry.exact_key == exact_key
                )
            ).first()
            return entry_of(row) if row is not None else None

    def fetch(self, project_id: int, ids: Sequence[str]) -> dict[str, Entry]:
        if not ids:
            return {}
        with self._store.session() as s:
            rows = s.scalars(
                select(t.CacheEntry).where(
                    t.CacheEntry.project_id == project_id, t.CacheEntry.id.in_(list(ids))
                )
            ).all()
            return {row.id: entry_of(row) for row in rows}

    def scope_rows(self, project_id: int, scope: str, limit: int) -> list[Entry]:
        with self._store.session() as s:
            rows = s.scalars(
                select(t.CacheEntry)
                .where(
                    t.CacheEntry.project_id == project_id,
                    t.CacheEntry.scope == scope,
                    t.CacheEntry.vector.is_not(None),
                )
                .order_by(t.CacheEntry.used_at.desc())
                .limit(limit)
            ).all()
            return [entry_of(row) for row in rows]

    def count_scope(self, project_id: int, scope: str) -> int:
        with self._store.session() as s:
            found = s.scalar(
                select(func.count())
                .select_from(t.CacheEntry)
                .where(t.CacheEntry.project_id == project_id, t.CacheEntry.scope == scope)
            )
        return int(found or 0)

    def projects(self) -> set[int]:
        with self._store.session() as s:
            found = s.scalars(select(t.CacheEntry.project_id).distinct()).all()
        return {int(p) for p in found}

    def for_request(self, project_id: int, request_id: str) -> list[Entry]:
        """Entries a request stored or was answered by. Another process writes its hit
        log within ``flush_interval_s``: found nothing, this looks once more after it."""
        if not request_id:
            return []
        self.flush()
        found = self._for_request(project_id, request_id)
        if not found:
            time.sleep(self._interval + 0.2)
            found = self._for_request(project_id, request_id)
        return found

    def _for_request(self, project_id: int, request_id: str) -> list[Entry]:
        with self._store.session() as s:
            served = select(t.CacheHit.entry_id).where(
                t.CacheHit.project_id == project_id, t.CacheHit.request_id == request_id
            )
            rows = s.scalars(
                select(t.CacheEntry).where(
                    t.CacheEntry.project_id == project_id,
                    (t.CacheEntry.request_id == request_id) | t.CacheEntry.id.in_(served),
                )
            ).all()
            return [entry_of(row) for row in rows]

    def stats(self, project_id: int) -> CacheStats:
        with self._store.session() as s:
            rows = s.scalars(
                select(t.CacheCounter).where(t.CacheCounter.project_id == project_id)
            ).all()
            count = s.scalar(
                select(func.count())
                .select_from(t.CacheEntry)
                .where(t.CacheEntry.project_id == project_id)
            )
        by_deployment = {
            row.deployment: {name: float(getattr(row, name)) for name in COUNTERS} for row in rows
        }
        return CacheStats.of(project_id, int(count or 0), by_deployment)

    # ------------------------------------------------------------ writes

    def put(self, entry: Entry) -> Entry:
        values = row_values(entry)
        for attempt in (1, 2):
            try:
                with self._store.session() as s:
                    existing = s.scalars(
                        select(t.CacheEntry)
                        .where(
                            t.CacheEntry.project_id == entry.project_id,
                            t.CacheEntry.exact_key == entry.exact_key,
                        )
                        .with_for_update()
                    ).first()
                    if existing is None:
                        s.add(t.CacheEntry(id=entry.id, **values))
                        return entry
                    for name, value in values.items():
                        setattr(existing, name, value)
                    existing.hits = 0
                    return Entry(**{**entry.__dict__, "id": existing.id})
            except ConflictError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def delete(self, project_id: int, ids: Sequence[str]) -> list[Gone]:
        gone: list[Gone] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = list(ids[start : start + _CHUNK])
            with self._store.session() as s:
                found = s.execute(
                    select(t.CacheEntry.id, t.CacheEntry.scope).where(
                        t.CacheEntry.project_id == project_id, t.CacheEntry.id.in_(chunk)
                    )
                ).all()
                s.execute(
                    delete(t.CacheEntry).where(
                        t.CacheEntry.project_id == project_id,
                        t.CacheEntry.id.in_([i for i, _ in found]),
                    )
                )
            gone.extend((str(i), str(scope)) for i, scope in found)
        return gone

    def delete_where(self, project_id: int, filters: Mapping[str, str]) -> list[Gone]:
        unknown = set(filters) - set(FILTERS)
        if unknown:
            raise ValueError(f"cannot filter cache entries on {sorted(unknown)}")
        conditions = [t.CacheEntry.project_id == project_id]
        conditions += [getattr(t.CacheEntry, name) == value for name, value in filters.items()]
        with self._store.session() as s:
            ids = list(s.scalars(select(t.CacheEntry.id).where(*conditions)).all())
        return self.delete(project_id, ids)

    def trim(self, project_id: int, keep: int) -> list[Gone]:
        with self._store.session() as s:
            count = int(
                s.scalar(
                    select(func.count())
                    .select_from(t.CacheEntry)
                    .where(t.CacheEntry.project_id == project_id)
                )
                or 0
            )
            if count <= keep:
                return []
            victims = list(
                s.scalars(
                    select(t.CacheEntry.id)
                    .where(t.CacheEntry.project_id == project_id)
                    .order_by(t.CacheEntry.used_at, t.CacheEntry.created_at)
                    .limit(count - keep)
                ).all()
            )
        return self.delete(project_id, victims)

    def purge_expired(self, now: float, limit: int = 1000) -> list[tuple[int, str, str]]:
        moment = when(now)
        with self._store.session() as s:
            rows = s.execute(
                select(t.CacheEntry.project_id, t.CacheEntry.id)
                .where(t.CacheEntry.expires_at <= moment)
                .limit(limit)
            ).all()
            s.execute(
                delete(t.CacheHit).where(
                    t.CacheHit.ts < moment - timedelta(seconds=self._retention)
                )
            )
        by_project: dict[int, list[str]] = {}
        for project_id, entry_id in rows:
            by_project.setdefault(int(project_id), []).append(str(entry_id))
        return [
            (project_id, entry_id, scope)
            for project_id, ids in by_project.items()
            for entry_id, scope in self.delete(project_id, ids)
        ]

    # ------------------------------------------------------------ counters

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
        moment = at if at is not None else time.time()
        with self._lock:
            row = self._counters.setdefault((project_id, deployment), {})
            for name, value in counts.items():
                row[name] = row.get(name, 0) + value
            if hit is not None:
                self._buffer_hit(project_id, hit, moment, (deployment, score))
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(
                    target=self._run, name="genai-cache-flush", daemon=True
                )
                self._thread.start()

    def _buffer_hit(
        self,
        project_id: int,
        hit: tuple[str, str],
        moment: float,
        judged: tuple[str, float | None],
    ) -> None:
        """Buffer a hit (under the lock) until the next flush. A database slower than the
        traffic must not grow the buffer without end: beyond ``max_buffered`` rows a hit's
        log row and "last used" time are dropped, counted and reported by the next flush
        (the counters are never dropped)."""
        entry_id, request_id = hit
        known = self._used.get(entry_id)
        if known is None and len(self._used) >= self.max_buffered:
            self.dropped += 1
        else:
            hits, _ = known or (0, 0.0)
            self._used[entry_id] = (hits + 1, moment)
        if request_id:
            if len(self._hits) >= self.max_buffered:
                self.dropped += 1
            else:
                self._hits.append((project_id, request_id, entry_id, moment, *judged))

    def buffered(self) -> int:
        """Rows waiting for the next flush (hit log and "last used" times)."""
        with self._lock:
            return len(self._hits) + len(self._used)

    def claim_judged(self, project_id: int, request_id: str) -> list[tuple[str, float]]:
        if not request_id:
            return []
        self.flush()
        claimed: list[tuple[str, float]] = []
        with self._store.session() as s:
            rows = s.execute(
                select(t.CacheHit.id, t.CacheHit.deployment, t.CacheHit.score).where(
                    t.CacheHit.project_id == project_id,
                    t.CacheHit.request_id == request_id,
                    t.CacheHit.score.is_not(None),
                )
            ).all()
            for row_id, deployment, score in rows:
                # clearing the score claims the hit: one process counts it, once
                done = s.execute(
                    update(t.CacheHit)
                    .where(t.CacheHit.id == row_id, t.CacheHit.score.is_not(None))
                    .values(score=None)
                )
                if getattr(done, "rowcount", 0) == 1 and score is not None:
                    claimed.append((str(deployment or ""), float(score)))
        return claimed

    def flush(self) -> None:
        """Write what :meth:`record` buffered. A failed write is logged; its counters are
        kept for the next try (hit logs and "last used" times are dropped)."""
        self.evidence.flush()
        with self._lock:
            counters, self._counters = self._counters, {}
            hits, self._hits = self._hits, []
            used, self._used = self._used, {}
            dropped, self.dropped = self.dropped, 0
        if dropped:
            log.warning(
                "the cache's hit log fell behind the traffic: %d hit records dropped "
                "(%d rows are buffered at most between flushes)",
                dropped,
                self.max_buffered,
            )
        if not (counters or hits or used):
            return
        try:
            self._write(counters, hits, used)
        except GenAIError as error:
            log.warning("could not write cache counters: %s", error.message)
            with self._lock:
                for key, row in counters.items():
                    mine = self._counters.setdefault(key, {})
                    for name, value in row.items():
                        mine[name] = mine.get(name, 0) + value

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            try:
                self.flush()
            except Exception:  # the flusher must outlive a bug in one batch
                log.exception("cache counter flush failed")

    def _write(
        self,
        counters: dict[tuple[int, str], dict[str, float]],
        hits: list[_HitRow],
        used: dict[str, tuple[int, float]],
    ) -> None:
        insert = insert_for(self._store.dialect)
        with self._store.session() as s:
            for entry_id, (count, moment) in sorted(used.items()):
                s.execute(
                    update(t.CacheEntry)
                    .where(t.CacheEntry.id == entry_id)
                    .values(hits=t.CacheEntry.hits + count, used_at=when(moment))
                )
            projects = set(
                s.scalars(
                    select(t.Project.id).where(
                        t.Project.id.in_({p for p, _ in counters} | {h[0] for h in hits})
                    )
                ).all()
            )
            # Every counter column in every write, so that the statement has one shape:
            # one per subset of changed counters would each take a place in SQLAlchemy's
            # statement cache (hundreds of them, with their column proxies).
            for (project_id, deployment), row in sorted(counters.items()):
                if project_id not in projects or not row:
                    continue  # the project was deleted meanwhile
                values = {name: row.get(name, 0) for name in _COUNTERS}
                stmt = insert(t.CacheCounter).values(
                    project_id=project_id, deployment=deployment, **values
                )
                stmt = stmt.on_conflict_do_update(
                    index_elements=["project_id", "deployment"],
                    set_={
                        name: getattr(t.CacheCounter, name) + stmt.excluded[name] for name in values
                    },
                )
                s.execute(stmt)
            rows = [
                {
                    "project_id": p,
                    "request_id": r,
                    "entry_id": e,
                    "ts": when(at),
                    "deployment": d if score is not None else None,
                    "score": score,
                }
                for p, r, e, at, d, score in hits
                if p in projects
            ]
            if rows:
                s.execute(insert(t.CacheHit), rows)


#: The counter columns of ``cache_counters`` (all but its key).
_COUNTERS = tuple(
    c.name for c in t.CacheCounter.__table__.columns if c.name not in ("project_id", "deployment")
)
