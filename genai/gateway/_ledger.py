"""Writing usage rows, feedback and shadow results off the hot path.

Requests hand rows to :meth:`LedgerWriter.add` (a queue put; it never waits for the
database). A background thread writes them in batches, one transaction per batch. If the
database fails, the batch stays queued and is retried with backoff; :meth:`close` writes
everything still queued before the process exits, so a graceful shutdown loses nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from genai.errors import ConflictError
from genai.store import Store
from genai.tenancy import UsageEvent, write_usage

__all__ = ["LedgerWriter", "UsageRow"]

log = logging.getLogger("genai.gateway.ledger")


@dataclass(frozen=True)
class UsageRow:
    project_id: int
    event: UsageEvent
    principal: str
    key_id: int | None


_Item = UsageRow | tuple[type[Any], dict[str, Any]]  # a usage row, or (table, values)


class LedgerWriter:
    def __init__(self, store: Store, *, interval_s: float = 0.2, max_batch: int = 2000) -> None:
        self._store = store
        self._interval = interval_s
        self._max_batch = max_batch
        self._queue: queue.Queue[_Item] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="genai-ledger", daemon=True)
        self.written = 0
        self.failures = 0
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def add(self, row: UsageRow) -> None:
        self._queue.put(row)

    def add_row(self, table: type[Any], values: dict[str, Any]) -> None:
        """Queue a row of another table (feedback, shadow results)."""
        self._queue.put((table, values))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop the thread."""
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout=5)
        if self._queue.unfinished_tasks:
            log.error("%d ledger rows could not be written before shutdown", self.pending)

    def _run(self) -> None:
        backoff = self._interval
        batch: list[_Item] = []
        while not (self._stop.is_set() and not batch and self._queue.empty()):
            if not batch:
                batch = self._take()
                if not batch:
                    continue
            try:
                self._write(batch)
            except ConflictError:  # a row that can never be written (its project is gone)
                self._write_each(batch)
            except Exception:
                self.failures += 1
                log.exception("writing %d ledger rows failed; retrying", len(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.written += len(batch)
            for _ in batch:
                self._queue.task_done()
            batch, backoff = [], self._interval

    def _take(self) -> list[_Item]:
        try:
            first = self._queue.get(timeout=self._interval)
        except queue.Empty:
            return []
        items = [first]
        deadline = time.monotonic() + self._interval
        while len(items) < self._max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                items.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return items

    def _write_each(self, batch: list[_Item]) -> None:
        for item in batch:
            try:
                self._write([item])
                self.written += 1
            except ConflictError as error:
                self.dropped += 1
                log.error("dropped a ledger row that cannot be written: %s", error)
            self._queue.task_done()
        batch.clear()

    def _write(self, batch: list[_Item]) -> None:
        usage: dict[tuple[int, str, int | None], list[UsageEvent]] = defaultdict(list)
        others: dict[type[Any], list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            if isinstance(item, UsageRow):
                usage[(item.project_id, item.principal, item.key_id)].append(item.event)
            else:
                others[item[0]].append(item[1])
        with self._store.session() as s:
            for (project_id, principal, key_id), events in usage.items():
                write_usage(s, project_id, events, principal=principal, key_id=key_id)
            for table, rows in others.items():
                s.execute(insert(table), rows)
