"""Eval runs read back from the registry: results, summary, and a baseline to compare with."""

from __future__ import annotations

from typing import TYPE_CHECKING

from eval._aggregate import MetricInfo, compare_runs, summarize
from eval._gate import GateResult, gate
from eval._stats import Comparison
from eval._suite import Suite, rows_of
from eval._summary import RowResult, RunSummary
from eval._types import Answer, MetricValue
from genai.errors import NotFoundError, UsageError
from genai.registry import EvalRunInfo

if TYPE_CHECKING:
    from genai import Client

__all__ = ["compare_with", "find_baseline", "find_run", "gate_run", "load_run", "suite_of"]


def suite_of(client: Client, project: str, info: EvalRunInfo) -> Suite:
    """The suite version an eval run ran."""
    if "suite" not in info.config:
        raise UsageError(f"eval {info.id} was recorded by hand, not run from a suite")
    version = client.registry.suites.get(project, info.config["suite"])
    return Suite.model_validate(
        {**version.definition, "name": version.name, "dataset": version.dataset}
    )


def load_run(client: Client, project: str, eval_id: str) -> tuple[RunSummary, list[RowResult]]:
    """A stored run's summary (estimates recomputed from its results) and results."""
    info = client.registry.evals.get(project, eval_id.removeprefix("eval:"))
    suite = suite_of(client, project, info)
    raw = client.registry.datasets.rows(project, _dataset(client, project, info), split=suite.split)
    rows = {r.index: r for r in rows_of(raw, suite.fields)}
    results = [
        RowResult(
            row=rows[rec.row_index],
            repeat=rec.repeat,
            answer=Answer.model_validate(rec.answer),
            scores={
                name: MetricValue.model_validate(v["value"])
                for name, v in rec.scores.items()
                if isinstance(v, dict) and "value" in v
            },
        )
        for rec in client.registry.evals.results(project, info.id)
        if rec.row_index in rows
    ]
    metrics = [
        MetricInfo(
            name=name,
            kind=m["kind"],
            higher_is_better=bool(m["higher_is_better"]),
            bounds=tuple(m["bounds"]) if isinstance(m.get("bounds"), list) else None,
        )
        for name, m in info.metrics.items()
        if isinstance(m, dict) and "kind" in m
    ]
    summary = summarize(
        eval_id=info.id,
        suite=info.config["suite"],
        target=str(info.config.get("target", "")),
        status=info.status,
        repeats=int(info.config.get("repeats", 1)),
        results=results,
        metrics=metrics,
    )
    return summary, results


def _dataset(client: Client, project: str, info: EvalRunInfo) -> str:
    return client.registry.suites.get(project, info.config["suite"]).dataset


def find_baseline(client: Client, project: str, info: EvalRunInfo, against: str) -> EvalRunInfo:
    """The run to compare ``info`` with: an eval id (``eval:ID`` or ``ID``), or a target
    (``production`` or ``chat:support-v1``): the newest finished run of the same suite on
    that target, other than ``info``."""
    return find_run(client, project, info.suite, against, exclude=info.id)


def find_run(
    client: Client, project: str, suite: str, against: str, *, exclude: str | None = None
) -> EvalRunInfo:
    """An eval run by id, or the newest finished run of ``suite`` on the target
    ``against`` (other than ``exclude``)."""
    try:
        return client.registry.evals.get(project, against.removeprefix("eval:"))
    except (NotFoundError, UsageError):
        pass
    for other in client.registry.evals.list(project, suite=suite):
        if (
            other.id != exclude
            and other.status == "finished"
            and other.config.get("target") == against
        ):
            return other
    raise NotFoundError(
        f"no finished eval run of suite {suite!r} on target {against!r} to compare with "
        "(run `genai eval run` on it first, or pass an eval id)"
    )


def compare_with(
    client: Client, project: str, summary: RunSummary, against: str
) -> tuple[list[Comparison], str]:
    """``summary`` compared with the run ``against`` names (see :func:`find_baseline`), with
    the margins of its suite's ``no_regression`` thresholds; and the baseline's id."""
    info = client.registry.evals.get(project, summary.id)
    base_info = find_baseline(client, project, info, against)
    base, _ = load_run(client, project, base_info.id)
    suite = suite_of(client, project, info)
    margins = {th.metric: th.margin for th in suite.thresholds if th.no_regression}
    return compare_runs(base, summary, margins=margins), base_info.id


def gate_run(
    client: Client, project: str, eval_id: str, *, baseline: str | None = None
) -> tuple[GateResult, RunSummary, list[Comparison]]:
    """A stored run's suite thresholds checked on it (against ``baseline`` when given)."""
    summary, _ = load_run(client, project, eval_id)
    suite = suite_of(client, project, client.registry.evals.get(project, summary.id))
    comparisons, base_id = (
        ([], None) if baseline is None else compare_with(client, project, summary, baseline)
    )
    result = gate(suite.thresholds, summary, comparisons=comparisons, baseline=base_id)
    return result, summary, comparisons
