"""From per-row results to a run summary, and from two summaries to comparisons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from eval._stats import Comparison, compare, estimate
from eval._summary import MetricSummary, RowResult, RunSummary
from eval._types import MetricKind

__all__ = ["MetricInfo", "compare_runs", "summarize"]


class _Described(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> MetricKind: ...
    @property
    def higher_is_better(self) -> bool: ...


def _bounds(metric: object) -> tuple[float | None, float | None] | None:
    """A metric's optional ``bounds`` (the values its scores can take)."""
    found = getattr(metric, "bounds", None)
    if isinstance(found, tuple | list) and len(found) == 2:
        return (found[0], found[1])
    return None


@dataclass(frozen=True)
class MetricInfo:
    """What a summary needs of a metric (a stored run's metrics, without building them)."""

    name: str
    kind: MetricKind
    higher_is_better: bool
    bounds: tuple[float | None, float | None] | None = None


def summarize(
    *,
    eval_id: str,
    suite: str,
    target: str,
    status: str,
    repeats: int,
    results: Sequence[RowResult],
    metrics: Sequence[_Described],
    seed: int = 0,
) -> RunSummary:
    """Every metric's estimate (CI clustered by row over its repeats), per-row means and
    the reasons of unmeasured values."""
    out: dict[str, MetricSummary] = {}
    for metric in metrics:
        values: dict[str, list[float | None]] = {}
        reasons: Counter[str] = Counter()
        for r in results:
            value = r.scores.get(metric.name)
            values.setdefault(r.row.id, []).append(value.value if value is not None else None)
            if value is None:
                reasons["not scored"] += 1
            elif value.value is None:
                reasons[value.reason or "unmeasured"] += 1
        per_row = {
            row: (sum(m) / len(m) if (m := [v for v in vs if v is not None]) else None)
            for row, vs in values.items()
        }
        out[metric.name] = MetricSummary(
            name=metric.name,
            kind=metric.kind,
            higher_is_better=metric.higher_is_better,
            bounds=_bounds(metric),
            estimate=estimate(
                values, seed=seed, binary=metric.kind == "binary", bounds=_bounds(metric)
            ),
            per_row=per_row,
            reasons=dict(reasons),
        )
    return RunSummary(
        id=eval_id,
        suite=suite,
        target=target,
        status=status,
        rows=len({r.row.id for r in results}),
        repeats=repeats,
        errors=sum(1 for r in results if r.answer.error is not None),
        metrics=out,
    )


def compare_runs(
    baseline: RunSummary,
    candidate: RunSummary,
    *,
    margins: dict[str, float] | None = None,
    seed: int = 0,
) -> list[Comparison]:
    """Paired comparisons of every metric both runs measured, on the rows both have."""
    out = []
    for name, cand in candidate.metrics.items():
        base = baseline.metrics.get(name)
        if base is None:
            continue
        out.append(
            compare(
                {row: [v] for row, v in base.per_row.items()},
                {row: [v] for row, v in cand.per_row.items()},
                metric=name,
                binary=cand.kind == "binary" and candidate.repeats == 1 and baseline.repeats == 1,
                higher_is_better=cand.higher_is_better,
                margin=(margins or {}).get(name, 0.05),
                seed=seed,
                bounds=cand.bounds,
            )
        )
    return out
