"""What an eval run adds up to: per-row results, per-metric estimates, a run summary."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from eval._stats import Estimate
from eval._types import Answer, EvalRow, MetricKind, MetricValue

__all__ = ["MetricSummary", "RowResult", "RunSummary"]


class RowResult(BaseModel):
    """One row, one repeat: the answer and every metric's value."""

    model_config = ConfigDict(frozen=True)

    row: EvalRow
    repeat: int
    answer: Answer
    scores: dict[str, MetricValue] = Field(default_factory=dict)


class MetricSummary(BaseModel):
    """One metric over a run: its estimate with CI, and each row's mean over its repeats
    (for distributions and paired comparisons; None where the row was unmeasured)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: MetricKind
    higher_is_better: bool
    estimate: Estimate
    bounds: tuple[float | None, float | None] | None = None
    per_row: dict[str, float | None] = Field(default_factory=dict)
    reasons: dict[str, int] = Field(default_factory=dict)  # unmeasured: reason -> count


class RunSummary(BaseModel):
    """An eval run as a report shows it."""

    model_config = ConfigDict(frozen=True)

    id: str
    suite: str
    target: str
    status: str
    rows: int
    repeats: int
    errors: int  # row × repeat answers that failed
    metrics: dict[str, MetricSummary]

    def _repr_html_(self) -> str:
        """A notebook shows the run as its report (bars with CIs, distributions)."""
        from eval._report import notebook_html

        return notebook_html([self], title=f"eval:{self.id} · {self.suite} · {self.target}")
