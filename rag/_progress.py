"""The ingestion progress bar (rich): sources done of those to index, chunks written, rate."""

from __future__ import annotations

import threading
from types import TracebackType

__all__ = ["IngestProgress"]


class IngestProgress:
    """A rich progress display, or nothing when ``enabled`` is false (the API default)."""

    def __init__(self, *, enabled: bool, total_sources: int, title: str) -> None:
        self._progress = None
        self._lock = threading.Lock()
        self._chunks = 0
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sources · {task.fields[chunks]} chunks · {task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(title, total=total_sources, chunks=0, rate="")

    def __enter__(self) -> IngestProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def chunks(self, count: int) -> None:
        if self._progress is None:
            return
        with self._lock:
            self._chunks += count
            task = self._progress.tasks[0]
            elapsed = task.elapsed or 0.0
            rate = f"{self._chunks / elapsed:,.0f} chunks/s" if elapsed > 0 else ""
            self._progress.update(self._task, chunks=f"{self._chunks:,}", rate=rate)

    def source_done(self) -> None:
        if self._progress is not None:
            with self._lock:
                self._progress.advance(self._task)
