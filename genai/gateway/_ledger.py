"""Writing usage rows, feedback and shadow results off the hot path — with no answered
request unbilled.

Requests hand rows to :meth:`LedgerWriter.add`. With a :class:`~genai.gateway._journal.Journal`
(what ``genai gateway`` runs with) a usage row is first appended to this process's journal
file, before the response is sent; :meth:`LedgerWriter.durable` waits until it is on disk
(``fsync`` mode). A background thread then writes the queued rows to the database in
batches, one transaction per batch, and tells the journal how far it got. If the database
fails, the batch stays queued and is retried with backoff; :meth:`close` writes everything
still queued before the process exits; and what a process could not write before it died
(``kill -9`` included) is replayed from its journal by the next one to start
(:meth:`start`), each row once.

Feedback and shadow results (:meth:`add_row`) are queued without the journal: they are not
billing, and a crash may lose the last of them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select

from genai.errors import ConflictError
from genai.gateway._journal import Journal, orphans
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import UsageEvent, write_usage

__all__ = ["LedgerWriter", "UsageRow"]

log = logging.getLogger("genai.gateway.ledger")

_IN_CHUNK = 500  # request ids per dedupe query at replay


@dataclass(frozen=True)
class UsageRow:
    project_id: int
    event: UsageEvent
    principal: str
    key_id: int | None

    def encode(self) -> bytes:
        """One journal line."""
        event = self.event.__pydantic_serializer__.to_json(self.event)
        return b'{"p":%d,"w":%s,"k":%s,"e":%s}\n' % (
            self.project_id,
            orjson.dumps(self.principal),
            b"null" if self.key_id is None else str(self.key_id).encode(),
            event,
        )

    @classmethod
    def decode(cls, line: bytes) -> UsageRow:
        data = orjson.loads(line)
        return cls(int(data["p"]), UsageEvent.model_validate(data["e"]), str(data["w"]), data["k"])


_Item = UsageRow | tuple[type[Any], dict[str, Any]]  # a usage row, or (table, values)


class LedgerWriter:
    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = 0.2,
        max_batch: int = 2000,
        journal: Journal | None = None,
    ) -> None:
        self._store = store
        self._interval = interval_s
        self._max_batch = max_batch
        self._journal = journal
        self._queue: queue.Queue[tuple[int, _Item]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="genai-ledger", daemon=True)
        self.written = 0
        self.failures = 0
        self.dropped = 0
        self.replayed = 0

    def start(self) -> None:
        """Replay what dead processes left in the journal, then start writing."""
        if self._journal is not None:
            self.replayed = self.replay()
            self._journal.open()
        self._thread.start()

    def add(self, row: UsageRow) -> int:
        """Queue a usage row (in the journal first, when there is one); a ticket for
        :meth:`durable`."""
        seq = self._journal.append(row.encode()) if self._journal is not None else 0
        self._queue.put((seq, row))
        return seq

    def must_wait(self, ticket: int) -> bool:
        """Whether the row of ``ticket`` is not on disk yet (then await :meth:`durable`)."""
        return self._journal is not None and self._journal.pending_sync(ticket)

    async def durable(self, ticket: int) -> None:
        """Return once the row of ``ticket`` would survive the process (and, in ``fsync``
        mode, the machine) going down."""
        if self._journal is not None and ticket:
            await self._journal.durable(ticket)

    def add_row(self, table: type[Any], values: dict[str, Any]) -> None:
        """Queue a row of another table (feedback, shadow results)."""
        self._queue.put((0, (table, values)))

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
        """Write what is queued, then stop the thread (and close the journal)."""
        self.flush(timeout_s)
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._queue.unfinished_tasks:
            log.error("%d ledger rows could not be written before shutdown", self.pending)
        if self._journal is not None:
            self._journal.close()

    # ------------------------------------------------------------ replay

    def replay(self) -> int:
        """Write the rows of journal segments whose process is gone and that the database
        does not hold yet; delete those segments. How many rows were written."""
        assert self._journal is not None
        total = 0
        for orphan in orphans(self._journal.directory):
            try:
                rows = [_decoded(line, orphan.path.name) for line in orphan.lines()]
                total += self._write_missing([r for r in rows if r is not None])
            except Exception:  # the database is down: keep the segment for the next start
                log.exception("could not replay the ledger journal %s; kept", orphan.path)
                orphan.release()
                continue
            orphan.remove()
        if total:
            log.warning("wrote %d usage row(s) a stopped gateway had journaled", total)
        return total

    def _write_missing(self, rows: list[UsageRow]) -> int:
        by_project: dict[int, list[UsageRow]] = defaultdict(list)
        for row in rows:
            by_project[row.project_id].append(row)
        written = 0
        for project_id, group in by_project.items():
            try:
                with self._store.session() as s:
                    known = _known_ids(s, project_id, [r.event.request_id for r in group])
                    fresh = [r for r in group if r.event.request_id not in known]
                    _insert(s, fresh)
            except ConflictError:  # the project is gone: its rows can never be written
                log.error(
                    "dropped %d journaled row(s) of deleted project %d", len(group), project_id
                )
                continue
            written += len(fresh)
        return written

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        backoff = self._interval
        batch: list[tuple[int, _Item]] = []
        while not (self._stop.is_set() and not batch and self._queue.empty()):
            if not batch:
                batch = self._take()
                if not batch:
                    continue
            try:
                self._write([item for _, item in batch])
            except ConflictError:  # a row that can never be written (its project is gone)
                self._write_each(batch)
            except Exception:
                self.failures += 1
                log.exception("writing %d ledger rows failed; retrying", len(batch))
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            else:
                self.written += len(batch)
                self._done(batch)
            batch, backoff = [], self._interval

    def _done(self, batch: list[tuple[int, _Item]]) -> None:
        top = max(seq for seq, _ in batch)
        if self._journal is not None and top:
            self._journal.committed(top)
        for _ in batch:
            self._queue.task_done()

    def _take(self) -> list[tuple[int, _Item]]:
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

    def _write_each(self, batch: list[tuple[int, _Item]]) -> None:
        for _, item in batch:
            try:
                self._write([item])
                self.written += 1
            except ConflictError as error:
                self.dropped += 1
                log.error("dropped a ledger row that cannot be written: %s", error)
        self._done(batch)

    def _write(self, batch: Iterable[_Item]) -> None:
        usage: list[UsageRow] = []
        others: dict[type[Any], list[dict[str, Any]]] = defaultdict(list)
        for item in batch:
            if isinstance(item, UsageRow):
                usage.append(item)
            else:
                others[item[0]].append(item[1])
        with self._store.session() as s:
            _insert(s, usage)
            for table, rows in others.items():
                s.execute(insert(table), rows)


def _insert(session: Any, rows: list[UsageRow]) -> None:
    grouped: dict[tuple[int, str, int | None], list[UsageEvent]] = defaultdict(list)
    for row in rows:
        grouped[(row.project_id, row.principal, row.key_id)].append(row.event)
    for (project_id, principal, key_id), events in grouped.items():
        write_usage(session, project_id, events, principal=principal, key_id=key_id)


def _known_ids(session: Any, project_id: int, ids: list[str]) -> set[str]:
    wanted = sorted({i for i in ids if i})
    known: set[str] = set()
    u = t.UsageRecord
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        known.update(
            session.scalars(
                select(u.request_id).where(u.project_id == project_id, u.request_id.in_(chunk))
            )
        )
    return known


def _decoded(line: bytes, where: str) -> UsageRow | None:
    try:
        return UsageRow.decode(line)
    except Exception:  # a line damaged on disk: say so, keep the others
        log.error("skipped a damaged line of the ledger journal %s", where)
        return None
