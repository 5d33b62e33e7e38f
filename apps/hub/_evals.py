"""The Hub's evaluation pages: a project's eval runs with their metric means and 95%
confidence intervals, one run's estimates drawn, and two runs compared with the paired
test, with their rows side by side.

Nothing here computes a statistic: the list shows the estimates the registry keeps for each
run; a run is recomputed by :func:`eval.load_run` (what ``genai eval show`` prints) and two
runs are compared by :func:`eval.compare_with` (what ``genai eval compare`` prints: the
same test, CI, p-value, MDE and verdict, with the suite's margins). The charts are the
evaluation report's own SVG bars, drawn from the same estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from apps.hub._web import page_of, render
from genai.errors import MissingDependencyError, UsageError

if TYPE_CHECKING:
    from eval import Comparison, RowResult, RunSummary
    from genai.registry import EvalRunInfo

__all__ = ["router"]

router = APIRouter()
#: The newest eval runs the list shows (``genai registry evals list`` shows them all).
EVAL_ROWS = 50
#: The rows of two runs shown side by side, those that differ most first.
MAX_PAIRS = 200
EvalRef = Annotated[str, Query(min_length=1, max_length=100)]


def _eval() -> Any:
    try:
        import eval as ev
    except ImportError as error:  # pragma: no cover - eval ships with the platform
        raise MissingDependencyError("eval", extra="eval", purpose="evaluation pages") from error
    return ev


@dataclass(frozen=True)
class Listed:
    """One eval run as the list shows it: its stored estimates, already formatted."""

    id: str
    suite: str
    target: str
    status: str
    started_at: datetime
    size: str  # rows × repeats
    metrics: list[tuple[str, str, str]]  # name, mean, [low, high]


def _listed(info: EvalRunInfo) -> Listed:
    from eval._report_svg import fmt

    stored = info.metrics
    metrics = [
        (name, fmt(m.get("mean")), f"[{fmt(m.get('low'))}, {fmt(m.get('high'))}]")
        for name, m in stored.items()
        if isinstance(m, dict) and "mean" in m
    ]
    size = f"{stored.get('rows', '?')} × {stored.get('repeats', '?')}" if stored else ""
    return Listed(
        id=info.id,
        suite=info.suite,
        target=str(info.config.get("target", "")),
        status=info.status,
        started_at=info.started_at,
        size=size,
        metrics=metrics,
    )


@router.get("/p/{project}/evals", include_in_schema=False)
def eval_list(request: Request, project: str) -> Response:
    """The newest eval runs with each metric's mean and CI, and a form to compare two."""
    page = page_of(request, project)
    evals = page.scope.client.registry.evals
    runs = evals.list(page.project, limit=EVAL_ROWS)
    total = len(runs) if len(runs) < EVAL_ROWS else evals.count(page.project)
    return render(
        request,
        "evals.html",
        page=page,
        section="evals",
        runs=[_listed(info) for info in runs],
        total=total,
    )


@router.get("/p/{project}/evals/compare", include_in_schema=False)
def eval_compare(request: Request, project: str, a: EvalRef, b: EvalRef) -> Response:
    """Run ``b`` (the candidate) against ``a`` (the baseline: a run, or a target whose
    newest finished run of the same suite is taken), as ``genai eval compare a b``."""
    page = page_of(request, project)
    ev = _eval()
    client = page.scope.client
    cand, cand_rows = ev.load_run(client, page.project, b)
    comparisons, base_id = ev.compare_with(client, page.project, cand, a)
    base, base_rows = ev.load_run(client, page.project, base_id)
    metrics = [c.metric for c in comparisons]
    pairs, unpaired = _pairs(base, cand, base_rows, cand_rows, metrics)
    return render(
        request,
        "eval_compare.html",
        page=page,
        section="evals",
        base=base,
        cand=cand,
        charts=_charts([base, cand], metrics),
        comparisons=[_comparison(c) for c in comparisons],
        pairs=pairs[:MAX_PAIRS],
        total_pairs=len(pairs),
        unpaired=unpaired,
    )


@router.get("/p/{project}/evals/{eval_id}", include_in_schema=False)
def eval_run(request: Request, project: str, eval_id: str) -> Response:
    """One run: each metric's mean, CI and what was left unmeasured (recomputed from its
    results, as ``genai eval show``), and the runs of its suite to compare it with."""
    from eval._report_svg import fmt, unmeasured_note

    page = page_of(request, project)
    ev = _eval()
    client = page.scope.client
    info = client.registry.evals.get(page.project, eval_id.removeprefix("eval:"))
    try:
        summary, _ = ev.load_run(client, page.project, info.id)
    except UsageError:  # recorded by hand: only its stored numbers
        summary = None
    others = [
        _listed(other)
        for other in client.registry.evals.list(page.project, suite=info.suite, limit=EVAL_ROWS)
        if other.id != info.id
    ]
    metrics = list(summary.metrics) if summary is not None else []
    return render(
        request,
        "eval_run.html",
        page=page,
        section="evals",
        info=_listed(info),
        summary=summary,
        notes={m: unmeasured_note(summary.metrics[m]) for m in metrics} if summary else {},
        charts=_charts([summary], metrics) if summary is not None else [],
        others=others,
        fmt=fmt,
    )


def _charts(runs: list[RunSummary], metrics: list[str]) -> list[tuple[str, str, Markup]]:
    """Per metric: its name, kind and direction, and the report's SVG of each run's mean
    with its CI (escaped where it holds data: ``eval._report_svg`` escapes every text)."""
    from eval._report_svg import BarSeries, bars_svg, colour

    out = []
    for metric in metrics:
        info = next(run.metrics[metric] for run in runs if metric in run.metrics)
        series = [
            BarSeries(run.id, s.estimate if (s := run.metrics.get(metric)) else None, colour(i))
            for i, run in enumerate(runs)
        ]
        svg = bars_svg(series, metric=metric, binary=info.kind == "binary")
        direction = "higher is better" if info.higher_is_better else "lower is better"
        out.append((metric, f"{info.kind}, {direction}", Markup(svg)))
    return out


def _comparison(c: Comparison) -> dict[str, str]:
    """A comparison's numbers as the report writes them ("—" where there is none)."""
    from eval._report_svg import fmt, fmt_p

    interval = (
        ""
        if c.low is None or c.high is None
        else (f" [{fmt(c.low, signed=True)}, {fmt(c.high, signed=True)}]")
    )
    return {
        "metric": c.metric,
        "direction": "↑ higher is better" if c.higher_is_better else "↓ lower is better",
        "baseline": fmt(c.baseline),
        "candidate": fmt(c.candidate),
        "diff": fmt(c.diff, signed=True) + interval,
        "p": fmt_p(c.p_value),
        "mde": fmt(c.mde),
        "margin": fmt(c.margin),
        "test": c.test,
        "n": str(c.n),
        "verdict": c.verdict,
    }


@dataclass(frozen=True)
class Pair:
    """One row of both runs: the question, both answers (words diffed), and each metric's
    row value in both (the row's mean over its repeats: what the paired test pairs)."""

    id: str
    question: str
    reference: str
    base: Markup
    cand: Markup
    scores: list[tuple[str, str, str, str]]  # metric, baseline, candidate, difference
    gap: float  # the largest difference of a metric over that metric's range


def _pairs(
    base: RunSummary,
    cand: RunSummary,
    base_rows: list[RowResult],
    cand_rows: list[RowResult],
    metrics: list[str],
) -> tuple[list[Pair], int]:
    """The rows both runs answered (first repeat shown), those that differ most first; and
    how many rows only one of them has."""
    left, right = _first_repeats(base_rows), _first_repeats(cand_rows)
    common = [row_id for row_id in left if row_id in right]
    spans = {m: _span(base, cand, m) for m in metrics}
    pairs = [_pair(base, cand, left[r], right[r], spans) for r in common]
    pairs.sort(key=lambda p: -p.gap)  # stable: ties keep the dataset's order
    return pairs, len(left) + len(right) - 2 * len(common)


def _first_repeats(results: list[RowResult]) -> dict[str, RowResult]:
    first: dict[str, RowResult] = {}
    for result in sorted(results, key=lambda r: (r.row.index, r.repeat)):
        first.setdefault(result.row.id, result)
    return first


def _span(base: RunSummary, cand: RunSummary, metric: str) -> float:
    values = [
        v
        for run in (base, cand)
        if metric in run.metrics
        for v in run.metrics[metric].per_row.values()
        if v is not None
    ]
    return (max(values) - min(values)) if values else 0.0


def _pair(
    base: RunSummary, cand: RunSummary, left: RowResult, right: RowResult, spans: dict[str, float]
) -> Pair:
    from eval._report import word_diff
    from eval._report_svg import fmt

    row_id, gap, scores = left.row.id, 0.0, []
    for metric, span in spans.items():
        b = base.metrics[metric].per_row.get(row_id) if metric in base.metrics else None
        c = cand.metrics[metric].per_row.get(row_id) if metric in cand.metrics else None
        if (b is None) != (c is None):
            gap = 1.0
        elif b is not None and c is not None and span > 0:
            gap = max(gap, abs(c - b) / span)
        diff = fmt(c - b, signed=True) if b is not None and c is not None else fmt(None)
        scores.append((metric, fmt(b), fmt(c), diff))
    if left.answer.ok and right.answer.ok:
        old, new = word_diff(left.answer.output, right.answer.output)  # escaped by eval
        shown = (Markup(old), Markup(new))  # word_diff escaped both texts
    else:
        shown = (_plain(left), _plain(right))
    return Pair(
        id=row_id,
        question=left.row.prompt,
        reference=left.row.reference or "",
        base=shown[0],
        cand=shown[1],
        scores=scores,
        gap=round(gap, 6),
    )


def _plain(result: RowResult) -> Markup:
    if result.answer.error is not None:
        return Markup('<span class="error">error: {}</span>').format(result.answer.error)
    return escape(result.answer.output)
