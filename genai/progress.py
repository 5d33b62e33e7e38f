"""One progress bar for long work (ingestion, evaluation, vendor jobs): rich, or nothing.

    with ProgressBar(enabled=True, title="eval docs-qa", total=40,
                     fields={"errors": 0}, template="{task.fields[errors]} errors") as bar:
        bar.update(advance=1, errors=1)

Disabled (the Python API's default), every call is a no-op and rich is not imported.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

__all__ = ["ProgressBar"]


class ProgressBar:
    """A rich bar: spinner, title, bar, done/total, the ``template`` (over ``fields``),
    elapsed and remaining time; on stderr when ``stderr``. Thread-safe updates."""

    def __init__(
        self,
        *,
        enabled: bool,
        title: str,
        total: int | None,
        fields: Mapping[str, Any] | None = None,
        template: str = "",
        stderr: bool = False,
        transient: bool = False,
    ) -> None:
        self._progress: Any = None
        self._lock = threading.Lock()
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = [SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn()]
        columns += [MofNCompleteColumn(), *([TextColumn(template)] if template else [])]
        self._progress = Progress(
            *columns,
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True) if stderr else None,
            transient=transient,
        )
        self._task = self._progress.add_task(title, total=total, **dict(fields or {}))

    @property
    def enabled(self) -> bool:
        return self._progress is not None

    def elapsed(self) -> float:
        """Seconds since the bar started (0 when disabled)."""
        if self._progress is None:
            return 0.0
        return float(self._progress.tasks[0].elapsed or 0.0)

    def update(self, *, advance: float = 0, description: str | None = None, **fields: Any) -> None:
        if self._progress is None:
            return
        with self._lock:
            extra = {"description": description} if description is not None else {}
            self._progress.update(self._task, advance=advance, **extra, **fields)

    def print(self, renderable: Any) -> None:
        """Print above the bar (nothing when disabled)."""
        if self._progress is not None:
            self._progress.console.print(renderable)

    def __enter__(self) -> Self:
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
