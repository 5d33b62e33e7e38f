"""The report's charts, drawn by hand as inline SVG: no library, no script, no font to load.

- :func:`bars_svg`: one metric, one horizontal bar per run from zero to the mean, the 95%
  confidence interval as an error bar, and the mean with ``[low, high]`` written beside it.
- :func:`hist_svg`: one metric's per-row values, a small histogram per run on a shared
  axis, with each run's mean marked.

:func:`bars_section` and :func:`hist_section` wrap them in the report's figures, one per
metric, marked ``data-chart="bars"``/``"hist"`` with a stable ``id``.

Every text that comes from data (run ids, metric names) is escaped here; numbers go
through :func:`fmt`, which writes a missing or non-finite value as "—", never NaN or None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from eval._stats import Estimate
from eval._summary import MetricSummary, RowResult, RunSummary

__all__ = [
    "DASH",
    "PALETTE",
    "BarSeries",
    "HistSeries",
    "bars_section",
    "bars_svg",
    "colour",
    "fmt",
    "fmt_p",
    "hist_section",
    "hist_svg",
    "nice_ticks",
    "slug",
    "unmeasured_note",
]

DASH = "—"
#: One colour per run, in the order the runs are given (the baseline first).
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#e15759", "#9c755f")

_WIDTH = 680
_LEFT = 150  # run labels
_RIGHT = 180  # the value labels of the bars
_TOP = 8
_AXIS = 30
_ROW = 30  # one bar
_PANEL = 52  # one histogram
_LABEL_CHARS = 20


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def fmt(value: float | None, *, signed: bool = False) -> str:
    """A number as a report shows it: 3 decimals below 10, fewer above; None → "—"."""
    if value is None or not math.isfinite(value):
        return DASH
    magnitude = abs(value)
    if 0 < magnitude < 0.001:
        return f"{value:+.1e}" if signed else f"{value:.1e}"
    digits = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 3
    value = round(value, digits) or 0.0  # no "-0.000"
    return f"{value:+,.{digits}f}" if signed else f"{value:,.{digits}f}"


def fmt_p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _tick_label(value: float) -> str:
    return f"{value:.6g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) that cover ``[low, high]``."""
    if not high > low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw * (1 - 1e-9))
    start = math.floor(low / step + 1e-9) * step
    stop = math.ceil(high / step - 1e-9) * step
    return [round(start + i * step, 12) for i in range(round((stop - start) / step) + 1)]


@dataclass(frozen=True)
class _Scale:
    low: float
    high: float
    x0: float
    x1: float

    def __call__(self, value: float) -> float:
        clamped = min(max(value, self.low), self.high)
        return self.x0 + (clamped - self.low) / (self.high - self.low) * (self.x1 - self.x0)


def _n(value: float) -> str:
    """An SVG coordinate."""
    return f"{value:.1f}"


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def _open(height: float, label: str) -> str:
    return (
        f'<svg viewBox="0 0 {_WIDTH} {_n(height)}" width="{_WIDTH}" height="{_n(height)}" '
        f'role="img" aria-label="{escape(label)}">'
    )


def _run_label(run: str, y: float) -> str:
    return (
        f'<text class="run" x="{_LEFT - 8}" y="{_n(y)}" text-anchor="end" '
        f'dominant-baseline="middle"><title>{escape(run)}</title>{escape(_short(run))}</text>'
    )


def _axis(
    scale: _Scale,
    ticks: Sequence[float],
    top: float,
    bottom: float,
    labels: Sequence[str] | None = None,
) -> list[str]:
    """Grid lines, the axis line and tick labels; a darker line at zero inside the range."""
    parts = []
    for index, tick in enumerate(ticks):
        x = _n(scale(tick))
        label = labels[index] if labels is not None else _tick_label(tick)
        parts.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{_n(top)}" y2="{_n(bottom)}"/>')
        parts.append(
            f'<text class="tick" x="{x}" y="{_n(bottom + 16)}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    if scale.low < 0 < scale.high:
        x = _n(scale(0.0))
        parts.append(f'<line class="zero" x1="{x}" x2="{x}" y1="{_n(top)}" y2="{_n(bottom)}"/>')
    parts.append(
        f'<line class="axis" x1="{_n(scale.x0)}" x2="{_n(scale.x1)}" '
        f'y1="{_n(bottom)}" y2="{_n(bottom)}"/>'
    )
    return parts


# ------------------------------------------------------------------ bars


@dataclass(frozen=True)
class BarSeries:
    """One run's estimate of a metric (None: the run does not have the metric)."""

    run: str
    estimate: Estimate | None
    colour: str


def _bar_ticks(series: Sequence[BarSeries], *, binary: bool) -> list[float]:
    if binary:
        return [0.0, 0.25, 0.5, 0.75, 1.0]
    values = [0.0]
    for item in series:
        if item.estimate is not None:
            e = item.estimate
            values += [v for v in (e.mean, e.low, e.high) if v is not None and math.isfinite(v)]
    return nice_ticks(min(values), max(values))


def bars_svg(series: Sequence[BarSeries], *, metric: str, binary: bool) -> str:
    """One bar per run (``rect.bar``) with its CI (``line.err`` and two ``line.err-cap``)."""
    ticks = _bar_ticks(series, binary=binary)
    scale = _Scale(ticks[0], ticks[-1], _LEFT, _WIDTH - _RIGHT)
    bottom = _TOP + _ROW * len(series)
    parts = [_open(bottom + _AXIS, f"{metric}: mean and 95% confidence interval per run")]
    parts += _axis(scale, ticks, _TOP, bottom)
    for index, item in enumerate(series):
        parts += _bar(item, scale, _TOP + index * _ROW)
    parts.append("</svg>")
    return "".join(parts)


def _bar(item: BarSeries, scale: _Scale, y: float) -> list[str]:
    middle = y + _ROW / 2
    parts = [_run_label(item.run, middle)]
    e = item.estimate
    label_x = _n(_WIDTH - _RIGHT + 10)
    if e is None or e.mean is None or not math.isfinite(e.mean):
        text = "not in this run" if e is None else "not measured"
        parts.append(
            f'<text class="value muted" x="{label_x}" y="{_n(middle)}" '
            f'dominant-baseline="middle">{DASH} ({text})</text>'
        )
        return parts
    x0, x1 = sorted((scale(0.0), scale(e.mean)))
    interval = f"[{fmt(e.low)}, {fmt(e.high)}]"
    parts.append(
        f'<rect class="bar" x="{_n(x0)}" y="{_n(y + 7)}" width="{_n(x1 - x0)}" '
        f'height="{_n(_ROW - 14)}" fill="{item.colour}"><title>{escape(item.run)}: '
        f"{fmt(e.mean)} {interval}, n = {e.n} rows</title></rect>"
    )
    if e.low is not None and e.high is not None:
        parts += _error_bar(scale(e.low), scale(e.high), middle)
    parts.append(
        f'<text class="value" x="{label_x}" y="{_n(middle)}" dominant-baseline="middle">'
        f'<tspan class="mean">{fmt(e.mean)}</tspan> {interval}</text>'
    )
    return parts


def _error_bar(low: float, high: float, y: float) -> list[str]:
    cap = 6.0
    return [
        f'<line class="err" x1="{_n(low)}" x2="{_n(high)}" y1="{_n(y)}" y2="{_n(y)}"/>',
        *(
            f'<line class="err-cap" x1="{_n(x)}" x2="{_n(x)}" '
            f'y1="{_n(y - cap)}" y2="{_n(y + cap)}"/>'
            for x in (low, high)
        ),
    ]


# ------------------------------------------------------------------ histograms


@dataclass(frozen=True)
class HistSeries:
    """One run's per-row values of a metric (the unmeasured rows left out)."""

    run: str
    values: tuple[float, ...]
    colour: str


@dataclass(frozen=True)
class _Bins:
    edges: list[float]
    ticks: list[float]
    labels: list[str]


def _bins(values: Sequence[float], *, binary: bool) -> _Bins:
    """Two bins, 0 and 1, for pass/fail values; ten over the range otherwise."""
    if binary and all(v in (0.0, 1.0) for v in values):
        return _Bins([-0.5, 0.5, 1.5], [0.0, 1.0], ["0 (fail)", "1 (pass)"])
    low, high = (0.0, 1.0) if binary or not values else (min(values), max(values))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    ticks = nice_ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])
    edges = [low + (high - low) * i / 10 for i in range(11)]
    return _Bins(edges, ticks, [_tick_label(t) for t in ticks])


def _counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for value in values:
        for index in range(len(counts)):
            last = index == len(counts) - 1
            if edges[index] <= value < edges[index + 1] or (last and value == edges[-1]):
                counts[index] += 1
                break
    return counts


def hist_svg(series: Sequence[HistSeries], *, metric: str, binary: bool) -> str:
    """A panel per run of ``rect.hist-bar`` (one per non-empty bin), with a shared x axis
    and a shared count scale, and each run's mean as a dashed ``line.mean``."""
    bins = _bins([v for item in series for v in item.values], binary=binary)
    scale = _Scale(bins.edges[0], bins.edges[-1], _LEFT, _WIDTH - _RIGHT)
    counts = [_counts(item.values, bins.edges) for item in series]
    peak = max([1, *(c for row in counts for c in row)])
    bottom = _TOP + _PANEL * len(series)
    parts = [_open(bottom + _AXIS, f"{metric}: distribution of per-row values per run")]
    parts += _axis(scale, bins.ticks, _TOP, bottom, bins.labels)
    for index, item in enumerate(series):
        parts += _panel(item, counts[index], peak, scale, bins, _TOP + index * _PANEL)
    parts.append("</svg>")
    return "".join(parts)


def _panel(
    item: HistSeries, counts: Sequence[int], peak: int, scale: _Scale, bins: _Bins, y: float
) -> list[str]:
    base = y + _PANEL - 4
    parts = [_run_label(item.run, y + _PANEL / 2)]
    if not item.values:
        parts.append(
            f'<text class="muted" x="{_LEFT + 6}" y="{_n(y + _PANEL / 2)}" '
            'dominant-baseline="middle">no measured values</text>'
        )
        return parts
    for index, count in enumerate(counts):
        if count == 0:
            continue
        left, right = scale(bins.edges[index]), scale(bins.edges[index + 1])
        height = count / peak * (_PANEL - 10)
        span = f"[{_tick_label(bins.edges[index])}, {_tick_label(bins.edges[index + 1])})"
        parts.append(
            f'<rect class="hist-bar" x="{_n(left + 1)}" y="{_n(base - height)}" '
            f'width="{_n(max(right - left - 2, 1.0))}" height="{_n(height)}" '
            f'fill="{item.colour}"><title>{escape(item.run)}: {count} rows in '
            f"{escape(span)}</title></rect>"
        )
    mean = sum(item.values) / len(item.values)
    x = _n(scale(mean))
    parts.append(
        f'<line class="mean" x1="{x}" x2="{x}" y1="{_n(y + 2)}" y2="{_n(base)}">'
        f"<title>mean {fmt(mean)}</title></line>"
    )
    parts.append(
        f'<text class="count muted" x="{_n(_WIDTH - _RIGHT + 10)}" y="{_n(y + _PANEL / 2)}" '
        f'dominant-baseline="middle">n = {len(item.values)}, mean {fmt(mean)}</text>'
    )
    return parts


# ------------------------------------------------------------------ the charts' sections


def slug(prefix: str, index: int, name: str) -> str:
    """A stable element id: ``bars-0-exact-match``."""
    return f"{prefix}-{index}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}"


def _figure(chart: str, index: int, metric: str, caption: str, content: str) -> str:
    return (
        f'<figure class="chart" data-chart="{chart}" id="{slug(chart, index, metric)}" '
        f'data-metric="{escape(metric)}"><figcaption>{escape(metric)} '
        f'<span class="muted">({escape(caption)})</span></figcaption>{content}</figure>'
    )


def _info(runs: Sequence[RunSummary], metric: str) -> MetricSummary:
    return next(run.metrics[metric] for run in runs if metric in run.metrics)


def unmeasured_note(summary: MetricSummary) -> str:
    """E.g. "3 unmeasured: the judge failed (2), row has no reference (1)" (not escaped)."""
    count = summary.estimate.unmeasured
    if count == 0:
        return "all measured"
    reasons = sorted(summary.reasons.items(), key=lambda item: (-item[1], item[0]))
    listed = ", ".join(f"{reason} ({n})" for reason, n in reasons)
    return f"{count} unmeasured: {listed}" if listed else f"{count} unmeasured"


def bars_section(runs: Sequence[RunSummary], metrics: Sequence[str]) -> str:
    """A ``data-chart="bars"`` figure per metric, each run's unmeasured values noted."""
    figures = []
    for index, metric in enumerate(metrics):
        info = _info(runs, metric)
        series = [
            BarSeries(run.id, s.estimate if (s := run.metrics.get(metric)) else None, colour(i))
            for i, run in enumerate(runs)
        ]
        notes = "".join(
            f'<p class="note">{escape(run.id)}: n = {s.estimate.n} rows; '
            f"{escape(unmeasured_note(s))}</p>"
            for run in runs
            if (s := run.metrics.get(metric)) is not None
        )
        direction = "higher is better" if info.higher_is_better else "lower is better"
        chart = bars_svg(series, metric=metric, binary=info.kind == "binary")
        figures.append(_figure("bars", index, metric, f"{info.kind}, {direction}", chart + notes))
    return (
        '<section id="metrics"><h2>Metrics</h2><p class="note">Each run\'s mean with its 95% '
        "confidence interval (the error bar).</p>"
        f'<div class="charts">{"".join(figures) or "No metrics."}</div></section>'
    )


def _row_values(run: RunSummary, results: Sequence[RowResult], metric: str) -> tuple[float, ...]:
    """A run's per-row values (each row's mean over its repeats): the summary's, or else
    computed from its row results."""
    summary = run.metrics.get(metric)
    if summary is not None and summary.per_row:
        return tuple(v for v in summary.per_row.values() if v is not None)
    by_row: dict[str, list[float]] = {}
    for result in results:
        score = result.scores.get(metric)
        if score is not None and score.value is not None:
            by_row.setdefault(result.row.id, []).append(score.value)
    return tuple(sum(v) / len(v) for v in by_row.values())


def hist_section(
    runs: Sequence[RunSummary], rows: Mapping[str, Sequence[RowResult]], metrics: Sequence[str]
) -> str:
    """A ``data-chart="hist"`` figure per metric: the per-row values of each run."""
    figures = []
    for index, metric in enumerate(metrics):
        series = [
            HistSeries(run.id, _row_values(run, rows.get(run.id, ()), metric), colour(i))
            for i, run in enumerate(runs)
        ]
        binary = _info(runs, metric).kind == "binary"
        chart = hist_svg(series, metric=metric, binary=binary)
        figures.append(_figure("hist", index, metric, "per-row values; dashed: the mean", chart))
    return (
        '<section id="distributions"><h2>Distributions</h2>'
        f'<div class="charts">{"".join(figures) or "No metrics."}</div></section>'
    )
