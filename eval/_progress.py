"""The eval run's progress bar: answers done, row errors, answers reused."""

from __future__ import annotations

from eval._summary import RowResult
from genai.progress import ProgressBar

__all__ = ["EvalProgress"]


class EvalProgress(ProgressBar):
    """A :class:`genai.progress.ProgressBar` counting errors and reused answers."""

    def __init__(self, *, enabled: bool, total: int, title: str) -> None:
        super().__init__(
            enabled=enabled,
            title=title,
            total=total,
            fields={"errors": 0, "cached": 0},
            template="answers · {task.fields[errors]} errors · {task.fields[cached]} reused",
        )
        self._errors = self._cached = 0

    def advance(self, result: RowResult) -> None:
        self._errors += result.answer.error is not None
        self._cached += result.answer.cached
        self.update(advance=1, errors=self._errors, cached=self._cached)
