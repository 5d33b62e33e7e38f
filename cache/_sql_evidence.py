"""The error bound's evidence in the platform's database (``cache_estimates``).

Adds are buffered in the process and written by :meth:`SqlEvidence.flush` (the cache's
flusher calls it about every second) as one upsert per row, ``hits = hits + excluded.hits``:
several gateway processes add to the same rows without losing an increment. The buffer
holds at most ``max_buffered`` rows (a few per project and block); beyond it an add is
dropped and counted (a database slower than the traffic must not grow it without end).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cache._evidence import EVIDENCE, EvidenceRows
from cache._sql_rows import insert_for
from genai.errors import GenAIError
from genai.store import schema as t

if TYPE_CHECKING:
    from genai.store import Store

__all__ = ["SqlEvidence"]

log = logging.getLogger("genai.cache")

_Key = tuple[int, str, str, int]  # project, deployment, curve, block


class SqlEvidence:
    """Evidence shared by every process over one store; thread-safe."""

    live = False

    def __init__(self, store: Store, *, max_buffered: int = 10_000) -> None:
        self._store = store
        self.max_buffered = max_buffered
        self.dropped = 0
        self._pending: dict[_Key, dict[str, float]] = {}
        self._lock = threading.Lock()

    def add(
        self,
        project_id: int,
        deployment: str,
        curve: str,
        block: int,
        counts: Mapping[str, float],
    ) -> None:
        key = (project_id, deployment, curve, block)
        with self._lock:
            row = self._pending.get(key)
            if row is None:
                if len(self._pending) >= self.max_buffered:
                    self.dropped += 1
                    return
                row = self._pending[key] = dict.fromkeys(EVIDENCE, 0.0)
            for name, value in counts.items():
                row[name] += value

    def read(self, project_id: int, curve: str) -> EvidenceRows:
        with self._store.session() as s:
            rows = s.scalars(
                select(t.CacheEstimate).where(
                    t.CacheEstimate.project_id == project_id, t.CacheEstimate.curve == curve
                )
            ).all()
            found: EvidenceRows = {}
            for row in rows:
                counts = {name: float(getattr(row, name)) for name in EVIDENCE}
                found.setdefault(row.deployment, {})[int(row.block)] = counts
        return found

    def flush(self) -> None:
        """Write the buffered adds; a failed write keeps them for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
            dropped, self.dropped = self.dropped, 0
        if dropped:
            log.warning("the cache's error-bound evidence fell behind: %d adds dropped", dropped)
        if not pending:
            return
        try:
            self._write(pending)
        except GenAIError as error:
            log.warning("could not write the cache's error-bound evidence: %s", error.message)
            with self._lock:
                for key, row in pending.items():
                    mine = self._pending.setdefault(key, dict.fromkeys(EVIDENCE, 0.0))
                    for name, value in row.items():
                        mine[name] += value

    def _write(self, pending: dict[_Key, dict[str, float]]) -> None:
        insert = insert_for(self._store.dialect)
        with self._store.session() as s:
            live = set(
                s.scalars(
                    select(t.Project.id).where(t.Project.id.in_({k[0] for k in pending}))
                ).all()
            )
            for (project_id, deployment, curve, block), row in sorted(pending.items()):
                if project_id not in live:
                    continue  # the project was deleted meanwhile
                values = {
                    name: (row[name] if name == "estimated" else int(row[name]))
                    for name in EVIDENCE
                }
                stmt = insert(t.CacheEstimate).values(
                    project_id=project_id,
                    deployment=deployment,
                    curve=curve,
                    block=block,
                    updated_at=t.utcnow(),
                    **values,
                )
                set_: dict[str, Any] = {
                    name: getattr(t.CacheEstimate, name) + stmt.excluded[name] for name in EVIDENCE
                }
                set_["updated_at"] = stmt.excluded["updated_at"]
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["project_id", "deployment", "curve", "block"], set_=set_
                    )
                )
