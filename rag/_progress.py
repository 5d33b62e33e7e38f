"""The ingestion progress bar (rich): sources done of those to index, chunks written, rate."""

from __future__ import annotations

from genai.progress import ProgressBar

__all__ = ["IngestProgress"]


class IngestProgress(ProgressBar):
    """A :class:`genai.progress.ProgressBar` of sources, with chunks written and their rate."""

    def __init__(self, *, enabled: bool, total_sources: int, title: str) -> None:
        super().__init__(
            enabled=enabled,
            title=title,
            total=total_sources,
            fields={"chunks": 0, "rate": ""},
            template="sources · {task.fields[chunks]} chunks · {task.fields[rate]}",
        )
        self._chunks = 0

    def chunks(self, count: int) -> None:
        if not self.enabled:
            return
        self._chunks += count
        elapsed = self.elapsed()
        rate = f"{self._chunks / elapsed:,.0f} chunks/s" if elapsed > 0 else ""
        self.update(chunks=f"{self._chunks:,}", rate=rate)

    def source_done(self) -> None:
        self.update(advance=1)
