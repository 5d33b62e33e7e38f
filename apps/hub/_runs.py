"""The Hub's run page: one registry run (a fine-tuning job, or any run that logs metrics
per step), its parameters and inputs, its per-step metrics drawn as line charts (loss with
eval_loss on one chart, then each other metric: learning rate, grad norm…) and its lineage
graph. The points are the ones ``genai registry runs show RUN`` draws as text
(``registry.runs.metrics``).

The charts are inline SVG written here by hand, as the evaluation pages draw theirs: no
script, no library, attributes rather than styles (the CSP allows no inline style), and
every text that comes from data (metric names, run names) escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from apps.hub._lineage import lineage_figure
from apps.hub._lineage import router as lineage_router
from apps.hub._web import page_of, render
from genai.registry import MetricPoint

__all__ = ["line_chart", "router"]

router = APIRouter()
router.include_router(lineage_router)  # the lineage page: one router for __init__ to add

#: Metrics drawn together on one chart (same unit, same scale); the others get one each.
TOGETHER = (("loss", "eval_loss"),)
#: The metrics drawn next, in this order (the fine-tuning package's names); then the rest.
FIRST = ("lr", "learning_rate", "grad_norm", "epoch")
#: The most points of one series drawn (evenly thinned beyond: the table has them all).
MAX_POINTS = 500
#: The most rows of the values table.
MAX_TABLE_ROWS = 1000
PALETTE = ("#0b57d0", "#b3261e", "#146c2e", "#7d4e00", "#6e3fa3", "#005f73")

_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 16, 44


@dataclass(frozen=True)
class Series:
    name: str
    points: list[tuple[int, float]]  # (step, value), finite values only, by step


@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup
    series: list[Series]


def _series(points: Sequence[MetricPoint]) -> dict[str, Series]:
    by_key: dict[str, list[tuple[int, float]]] = {}
    for p in points:
        if math.isfinite(p.value):
            by_key.setdefault(p.key, []).append((p.step, p.value))
    return {k: Series(k, sorted(v)) for k, v in sorted(by_key.items())}


def charts_of(points: Sequence[MetricPoint]) -> list[Chart]:
    """The run's charts: the groups of :data:`TOGETHER` first, then one per metric (those of
    :data:`FIRST` first, the others by name)."""
    series = _series(points)
    groups: list[list[Series]] = []
    for names in TOGETHER:
        group = [series.pop(n) for n in names if n in series]
        if group:
            groups.append(group)
    first = [n for n in FIRST if n in series]
    groups.extend([series.pop(n)] for n in first)
    groups.extend([s] for s in series.values())
    out = []
    for group in groups:
        title = " and ".join(s.name for s in group) + " by step"
        out.append(Chart(title, line_chart(group, title=title), group))
    return out


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 × 10^k apart) that cover ``[low, high]``."""
    if not high > low:
        low, high = (low - 0.5, high + 0.5) if low == high else (low, low + 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(round((stop - start) / step) + 1)]


def _thin(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    kept = [points[int(i * stride)] for i in range(MAX_POINTS)]
    return [*kept[:-1], points[-1]]


def _n(value: float) -> str:
    return f"{value:.1f}"


def _label(value: float) -> str:
    return f"{value:.4g}"


def line_chart(series: Sequence[Series], *, title: str) -> Markup:
    """Step on x, value on y; one polyline per series (a dot where it has one point),
    each point's value in a tooltip (``<title>``), a legend under the axis."""
    values = [v for s in series for _, v in s.points]
    steps = [x for s in series for x, _ in s.points]
    if not values:
        return Markup("")
    yticks = _ticks(min(values), max(values))
    xticks = _ticks(min(steps), max(steps))
    y0, y1 = yticks[0], yticks[-1]
    x0, x1 = xticks[0], xticks[-1]
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def sx(step: float) -> float:
        return _LEFT + (step - x0) / ((x1 - x0) or 1) * plot_w

    def sy(value: float) -> float:
        return _TOP + plot_h - (value - y0) / ((y1 - y0) or 1) * plot_h

    bottom = _TOP + plot_h
    parts = [
        f'<svg class="line-chart" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in yticks:
        y = _n(sy(tick))
        parts.append(f'<line class="grid" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y}" y2="{y}"/>')
        parts.append(
            f'<text class="tick" x="{_LEFT - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(_label(tick))}</text>'
        )
    for tick in xticks:
        at = _n(sx(tick))
        parts.append(
            f'<text class="tick" x="{at}" y="{_n(bottom + 16)}" text-anchor="middle">'
            f"{escape(_label(tick))}</text>"
        )
    parts.append(
        f'<line class="axis" x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{_n(bottom)}" y2="{_n(bottom)}"/>'
    )
    parts.append(f'<line class="axis" x1="{_LEFT}" x2="{_LEFT}" y1="{_TOP}" y2="{_n(bottom)}"/>')
    legend_x = _LEFT
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        shown = _thin(s.points)
        coords = " ".join(f"{_n(sx(x))},{_n(sy(v))}" for x, v in shown)
        parts.append(
            f'<g class="series" data-metric="{escape(s.name)}">'
            f"<title>{escape(s.name)}</title>"
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
        )
        if len(shown) <= 60:  # a dot per point while they stay apart
            for x, v in shown:
                parts.append(
                    f'<circle cx="{_n(sx(x))}" cy="{_n(sy(v))}" r="3" fill="{colour}">'
                    f"<title>{escape(s.name)} at step {x}: {escape(_label(v))}</title></circle>"
                )
        parts.append("</g>")
        y = _n(_H - 8)
        parts.append(
            f'<rect x="{legend_x}" y="{_n(_H - 18)}" width="14" height="4" fill="{colour}"/>'
            f'<text class="legend" x="{legend_x + 20}" y="{y}">{escape(s.name)}</text>'
        )
        legend_x += 40 + 8 * min(len(s.name), 30)
    parts.append("</svg>")
    return Markup("".join(parts))


def _table(charts: Sequence[Chart]) -> tuple[list[str], list[list[str]]]:
    """Every metric's values by step, as the table beside the charts (the charts' text)."""
    names = [s.name for c in charts for s in c.series]
    by_step: dict[int, dict[str, float]] = {}
    for c in charts:
        for s in c.series:
            for step, value in s.points:
                by_step.setdefault(step, {})[s.name] = value
    rows = [
        [str(step), *(_label(by_step[step][n]) if n in by_step[step] else "" for n in names)]
        for step in sorted(by_step)[:MAX_TABLE_ROWS]
    ]
    return names, rows


@router.get("/p/{project}/registry/runs/{run_id}", include_in_schema=False)
def run_page(request: Request, project: str, run_id: str) -> Response:
    """One run: its facts, its loss curves and the rest of its metrics by step, and where
    it sits in the lineage graph (another project's run is the same 404 as none)."""
    page = page_of(request, project)
    runs = page.scope.client.registry.runs
    info = runs.get(page.project, run_id.removeprefix("run:"))
    charts = charts_of(runs.metrics(page.project, info.id))
    names, rows = _table(charts)
    return render(
        request,
        "run.html",
        page=page,
        section="registry",
        info=info,
        charts=charts,
        names=names,
        rows=rows,
        lineage=lineage_figure(page, info.ref),
    )
