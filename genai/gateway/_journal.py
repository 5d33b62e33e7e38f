"""An append-only journal of usage rows: a row is on disk before its response completes.

Each gateway process appends to segment files of its own, ``ledger-<pid>-<n>.jsonl`` under
``GENAI_HOME/ledger`` (mode 0600 in a 0700 directory), and holds an exclusive ``flock`` on
each segment while it is open. A row is written with one ``os.write`` before the response
is sent: from then on it is in the kernel, so a process that dies, ``kill -9`` included,
loses nothing. With ``sync="fsync"`` (the default) the response also waits for the row to
reach the disk, so a power cut loses nothing either: one ``fdatasync`` covers every row
that arrived while the previous one ran (group commit), in a thread of its own, so the
event loop never waits on the disk.

The ledger writer still commits rows to the database in batches off the request path, and
tells the journal how far it got (:meth:`Journal.committed`); a segment whose rows are all
in the database is deleted. What a process leaves behind when it dies is replayed by the
next one to start on the same ``GENAI_HOME``: :func:`orphans` yields the segments no live
process holds (their lock is free), and the ledger writer inserts the rows the database
does not have yet (by project and request id), then deletes the segment. A torn last
line (the process died inside the write) is skipped: its response was never sent.

Hand-written: no library of the stack offers a durable append-only log with group commit
and crash replay (SQLite and PostgreSQL would, at the price of a commit per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Journal", "Orphan", "SyncMode", "orphans"]

log = logging.getLogger("genai.gateway.ledger")

SyncMode = Literal["fsync", "write"]
_PATTERN = "ledger-*.jsonl"


@dataclass
class _Segment:
    path: Path
    fd: int
    first: int  # the sequence number of its first row
    last: int = 0  # of its last row (0: none yet)
    size: int = 0
    synced: int = 0  # the last row known to be on disk
    closed: bool = False


@dataclass
class _Waiter:
    seq: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class Journal:
    """This process's journal: :meth:`append` a row (before its response), await
    :meth:`durable`, and tell it what the database holds with :meth:`committed`."""

    def __init__(
        self, directory: Path, *, sync: SyncMode = "fsync", segment_bytes: int = 16 << 20
    ) -> None:
        if sync not in ("fsync", "write"):
            raise ValueError(f"sync must be 'fsync' or 'write', not {sync!r}")
        self.directory = directory
        self.sync: SyncMode = sync
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []
        self._seq = 0
        self._synced = 0
        self._committed = 0
        self._waiters: list[_Waiter] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._count = 0

    # ------------------------------------------------------------ lifecycle

    def open(self) -> None:
        """Create the directory (0700) and this process's first segment."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.directory, 0o700)
        with self._lock:
            self._roll()
        if self.sync == "fsync":
            self._thread = threading.Thread(
                target=self._sync_loop, name="genai-ledger-fsync", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Sync what is written, wake every waiter, and delete the segments whose rows are
        all in the database (the others stay, for the next process to replay)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            for segment in self._segments:
                if not segment.closed and segment.synced < segment.last:
                    with contextlib.suppress(OSError):
                        os.fdatasync(segment.fd)
                    segment.synced = segment.last
            self._synced = self._seq
            ready, self._waiters = self._waiters, []
            self._reap(all_segments=True)
        _wake(ready)
        kept = [s.path.name for s in self._segments]
        if kept:
            log.error(
                "%d ledger row(s) are not in the database yet; they stay in %s and are "
                "written by the next gateway to start on this GENAI_HOME",
                self._seq - self._committed,
                ", ".join(kept),
            )
        for segment in self._segments:
            _close(segment)
        self._segments = []

    # ------------------------------------------------------------ rows

    def append(self, line: bytes) -> int:
        """Write one row (a JSON line ending in a newline); its sequence number."""
        with self._lock:
            segment = self._segments[-1]
            _write_all(segment.fd, line)
            self._seq += 1
            segment.last = self._seq
            segment.size += len(line)
            if self.sync == "write":
                segment.synced = self._synced = self._seq
            if segment.size >= self._segment_bytes:
                self._roll()
            seq = self._seq
        if self.sync == "fsync":
            self._wake.set()
        return seq

    def pending_sync(self, seq: int) -> bool:
        """Whether row ``seq`` still waits for the disk (``fsync`` mode only)."""
        return seq > self._synced

    async def durable(self, seq: int) -> None:
        """Return once row ``seq`` is on disk (at once in ``write`` mode)."""
        if seq <= self._synced:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if seq <= self._synced:
                return
            self._waiters.append(_Waiter(seq, loop, future))
        self._wake.set()
        await future

    def committed(self, seq: int) -> None:
        """Rows up to ``seq`` are in the database: their segments may go."""
        with self._lock:
            if seq <= self._committed:
                return
            self._committed = seq
            if self.sync == "write":
                self._reap()
        if self.sync == "fsync":
            self._wake.set()

    @property
    def segments(self) -> list[Path]:
        """The segment files this process holds now."""
        with self._lock:
            return [s.path for s in self._segments if not s.closed]

    # ------------------------------------------------------------ internals

    def _roll(self) -> None:
        """Start a new segment (under the lock)."""
        self._count += 1
        path = self.directory / f"ledger-{os.getpid()}-{os.urandom(4).hex()}-{self._count}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._segments.append(_Segment(path, fd, first=self._seq + 1))

    def _reap(self, *, all_segments: bool = False) -> None:
        """Delete segments whose rows are all committed and synced (under the lock); the
        current one only at close."""
        keep: list[_Segment] = []
        last = len(self._segments) - 1
        for index, segment in enumerate(self._segments):
            done = segment.last <= self._committed and segment.last <= segment.synced
            if done and (index < last or all_segments):
                with contextlib.suppress(OSError):
                    segment.path.unlink()
                _close(segment)
            else:
                keep.append(segment)
        self._segments = keep

    def _sync_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop:
                return
            with self._lock:
                target = self._seq
                dirty = [s for s in self._segments if s.synced < s.last and not s.closed]
            for segment in dirty:  # closed only by this thread (_reap) or close()
                try:
                    os.fdatasync(segment.fd)
                except OSError as error:
                    log.error("could not sync the ledger journal %s: %s", segment.path, error)
            with self._lock:
                for segment in dirty:
                    segment.synced = max(segment.synced, min(segment.last, target))
                self._synced = max(self._synced, target)
                ready = [w for w in self._waiters if w.seq <= target]
                self._waiters = [w for w in self._waiters if w.seq > target]
                self._reap()
            _wake(ready)


def _wake(waiters: list[_Waiter]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for waiter in waiters:
        by_loop.setdefault(waiter.loop, []).append(waiter.future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a loop that is closed has no one waiting
            loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _close(segment: _Segment) -> None:
    if not segment.closed:
        segment.closed = True
        with contextlib.suppress(OSError):
            os.close(segment.fd)  # the lock goes with the descriptor


# ------------------------------------------------------------------ replay


@dataclass
class Orphan:
    """A segment no live process holds; this process holds its lock until :meth:`remove`."""

    path: Path
    fd: int

    def lines(self) -> Iterator[bytes]:
        """Its complete lines (a torn last line is left out)."""
        with open(self.fd, "rb", closefd=False) as handle:
            handle.seek(0)
            data = handle.read()
        for line in data.split(b"\n")[:-1]:  # what follows the last newline is torn
            if line.strip():
                yield line

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def orphans(directory: Path) -> Iterator[Orphan]:
    """The segments under ``directory`` whose writer is gone, each locked for the caller."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(_PATTERN)):
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:  # replayed and deleted by another process meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # its process is alive (or another one is replaying it)
            os.close(fd)
            continue
        if not path.exists():  # deleted between our open and our lock
            os.close(fd)
            continue
        yield Orphan(path, fd)
