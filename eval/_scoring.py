"""Scoring one answer with every metric: concurrently, bounded, never raising."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from eval._metric import Metric
from eval._types import Answer, EvalRow, MetricValue, Sample

__all__ = ["score_all"]

#: A metric that takes longer than this (a judge that hangs) is unmeasured for the row.
METRIC_TIMEOUT_S = 300.0


async def score_all(
    metrics: Sequence[Metric],
    row: EvalRow,
    answer: Answer,
    *,
    reuse: Mapping[str, MetricValue] | None = None,
    timeout_s: float = METRIC_TIMEOUT_S,
) -> dict[str, MetricValue]:
    """Each metric's value for the sample (``reuse``: values kept from an identical earlier
    answer, not computed again). A metric that raises or times out is unmeasured, with
    the reason; a plug-in's bug never crashes a run."""
    sample = Sample(row=row, answer=answer)
    kept = dict(reuse or {})
    todo = [m for m in metrics if m.name not in kept]
    values = await asyncio.gather(*(_one(m, sample, timeout_s) for m in todo))
    kept.update({m.name: v for m, v in zip(todo, values, strict=True)})
    return {m.name: kept[m.name] for m in metrics}


async def _one(metric: Metric, sample: Sample, timeout_s: float) -> MetricValue:
    try:
        value = await asyncio.wait_for(metric.score(sample), timeout_s)
    except TimeoutError:
        return MetricValue.unmeasured(f"{metric.name} timed out after {timeout_s:g} s")
    except Exception as exc:  # a plug-in's failure is the row's, not the run's
        return MetricValue.unmeasured(f"{metric.name} failed: {type(exc).__name__}: {exc}")
    if not isinstance(value, MetricValue):
        return MetricValue.unmeasured(
            f"{metric.name} returned {type(value).__name__}, not a MetricValue"
        )
    return value
