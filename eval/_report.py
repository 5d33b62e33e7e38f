"""An evaluation report: one self-contained HTML file that opens offline.

:func:`render_html` lays out, for one or more runs (the first is the baseline, the second
the candidate):

- the header: suites, targets, run ids, status, rows × repeats, row errors;
- per metric, the mean of each run with its 95% confidence interval (an SVG bar chart,
  ``data-chart="bars"``) and what was left unmeasured, and why;
- the comparisons (candidate minus baseline), their verdicts coloured;
- the rows side by side, baseline and candidate, their outputs diffed word by word, the
  rows where the metrics disagree most first;
- per metric, the distribution of per-row values of each run (``data-chart="hist"``).

Nothing is loaded from anywhere: the CSS is inline, the charts are SVG drawn here
(:mod:`eval._report_svg`), and the one small script (the row filter) is allowed by its hash
in the page's Content-Security-Policy, which forbids every other script and every fetch.
Everything that comes from data is escaped; a missing number is written "—".
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from types import MappingProxyType

from eval._report_svg import DASH, bars_section, colour, fmt, fmt_p, hist_section, slug
from eval._stats import Comparison
from eval._summary import RowResult, RunSummary
from genai.files import atomic_write_text

__all__ = ["MAX_ROWS", "notebook_html", "render_html", "word_diff", "write_html"]

#: The side-by-side view shows at most this many rows (those that disagree most).
MAX_ROWS = 200
_MAX_DIFF_TOKENS = 4000  # longer outputs are shown without a word diff
_NO_ROWS: Mapping[str, Sequence[RowResult]] = MappingProxyType({})
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")

_CSS = """
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--soft:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0 auto;max-width:1280px;padding:24px}
h1{font-size:22px;margin:0 0 8px}
h2{font-size:18px;margin:32px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:14px;margin:0 0 6px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft)}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:var(--muted)}.note{font-size:12px;color:var(--muted);margin:4px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:16px}
figure.chart{margin:0;border:1px solid var(--line);border-radius:6px;padding:8px 12px}
figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font:13px system-ui,sans-serif;fill:#1f2328}svg text.muted{fill:#656d76}
svg .grid{stroke:#eaeef2}svg .axis{stroke:#8c959f}svg .zero{stroke:#57606a}
svg .err,svg .err-cap{stroke:#1f2328;stroke-width:1.5}
svg line.mean{stroke:#1f2328;stroke-dasharray:3 2}svg tspan.mean{font-weight:600}
.verdict{font-weight:600;border-radius:4px;padding:1px 6px;white-space:nowrap}
.v-better{background:#dafbe1;color:#116329}.v-worse{background:#ffebe9;color:#a40e26}
.v-inconclusive{background:#fff8c5;color:#7d4e00}
.v-no-difference{background:#eaeef2;color:#424a53}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
.row{border:1px solid var(--line);border-radius:6px;margin:12px 0;padding:8px 12px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.text{white-space:pre-wrap;word-break:break-word;background:var(--soft);border-radius:4px;
padding:6px 8px;margin:2px 0 6px;font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
ins{background:#ccffd8;text-decoration:none}del{background:#ffd7d5}
.error{color:#a40e26}
"""

_SCRIPT = (
    'var f=document.getElementById("row-filter");if(f){f.addEventListener("input",function(){'
    'var q=f.value.toLowerCase();document.querySelectorAll("article.row").forEach(function(r){'
    'r.hidden=q!==""&&r.textContent.toLowerCase().indexOf(q)<0;});});}'
)


def render_html(
    runs: Sequence[RunSummary],
    *,
    comparisons: Sequence[Comparison] = (),
    rows: Mapping[str, Sequence[RowResult]] = _NO_ROWS,
    title: str = "Evaluation report",
) -> str:
    """The report of ``runs`` (the first the baseline, the second the candidate) as one
    HTML page. ``rows`` maps a run id to that run's row results: the side-by-side view
    needs both runs' rows; the distributions use a run's per-row values, or its rows."""
    metrics = _metric_names(runs)
    body = [
        _header(runs, title),
        bars_section(runs, metrics),
        _comparison_section(runs, comparisons),
        _rows_section(runs, rows, metrics),
        hist_section(runs, rows, metrics),
    ]
    return _page(title, "".join(body))


def write_html(
    path: Path | str,
    runs: Sequence[RunSummary],
    *,
    comparisons: Sequence[Comparison] = (),
    rows: Mapping[str, Sequence[RowResult]] = _NO_ROWS,
    title: str = "Evaluation report",
) -> Path:
    """Render the report and write it to ``path`` at once (readers never see a part)."""
    page = render_html(runs, comparisons=comparisons, rows=rows, title=title)
    return atomic_write_text(path, page)


def notebook_html(
    runs: Sequence[RunSummary],
    *,
    comparisons: Sequence[Comparison] = (),
    rows: Mapping[str, Sequence[RowResult]] = _NO_ROWS,
    title: str = "Evaluation report",
    height: int = 640,
) -> str:
    """The report inside an ``<iframe srcdoc>``: what a notebook shows for a run. The page
    keeps its own styles and content policy, and cannot restyle the notebook around it."""
    page = render_html(runs, comparisons=comparisons, rows=rows, title=title)
    return (
        f'<iframe srcdoc="{escape(page, quote=True)}" title="{escape(title, quote=True)}" '
        f'style="width:100%;height:{int(height)}px;border:1px solid #d0d7de;border-radius:6px"'
        ' sandbox="allow-scripts"></iframe>'
    )


def _page(title: str, body: str) -> str:
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    policy = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>\n"
    )


def _metric_names(runs: Sequence[RunSummary]) -> list[str]:
    names: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run.metrics))
    return list(names)


def _unique(values: Iterable[str]) -> str:
    return ", ".join(escape(v) for v in dict.fromkeys(values)) or DASH


# ------------------------------------------------------------------ header


def _role(index: int) -> str:
    return {0: "baseline", 1: "candidate"}.get(index, "")


def _swatch(index: int) -> str:
    return f'<span class="swatch" style="background:{colour(index)}"></span>'


def _header(runs: Sequence[RunSummary], title: str) -> str:
    lines = "".join(
        f"<tr><td>{_swatch(i)}{escape(run.id)}</td><td>{_role(i)}</td>"
        f"<td>{escape(run.target)}</td><td>{escape(run.status)}</td>"
        f'<td class="num">{run.rows} × {run.repeats}</td><td class="num">{run.errors}</td></tr>'
        for i, run in enumerate(runs)
    )
    return (
        f"<header><h1>{escape(title)}</h1>"
        f"<p><b>Suite:</b> {_unique(r.suite for r in runs)} &nbsp; "
        f"<b>Targets:</b> {_unique(r.target for r in runs)}</p>"
        '<table class="runs"><thead><tr><th>Run</th><th>Role</th><th>Target</th>'
        "<th>Status</th><th>Rows × repeats</th><th>Row errors</th></tr></thead>"
        f"<tbody>{lines}</tbody></table></header>"
        + ("" if runs else '<p class="note">No runs.</p>')
    )


# ------------------------------------------------------------------ comparisons


def _diff(c: Comparison) -> str:
    """``+0.031 [-0.004, +0.066]``; the interval left out where it is unknown."""
    if c.low is None or c.high is None:
        return fmt(c.diff, signed=True)
    return f"{fmt(c.diff, signed=True)} [{fmt(c.low, signed=True)}, {fmt(c.high, signed=True)}]"


def _comparison_row(c: Comparison) -> str:
    arrow = "↑" if c.higher_is_better else "↓"
    direction = "higher is better" if c.higher_is_better else "lower is better"
    return (
        f'<tr><td>{escape(c.metric)} <span class="muted" title="{direction}">{arrow}</span>'
        f'</td><td class="num">{fmt(c.baseline)}</td><td class="num">{fmt(c.candidate)}</td>'
        f'<td class="num">{_diff(c)}</td>'
        f'<td class="num">{escape(fmt_p(c.p_value))}</td>'
        f'<td class="num">{fmt(c.mde)} <span class="muted">(margin {fmt(c.margin)})</span></td>'
        f'<td>{escape(c.test)}</td><td class="num">{c.n}</td>'
        f'<td><span class="verdict v-{escape(c.verdict)}">{escape(c.verdict)}</span></td></tr>'
    )


def _comparison_section(runs: Sequence[RunSummary], comparisons: Sequence[Comparison]) -> str:
    if not comparisons:
        return ""
    which = (
        f"{escape(runs[1].id)} (candidate) minus {escape(runs[0].id)} (baseline)"
        if len(runs) > 1
        else "candidate minus baseline"
    )
    return (
        f'<section id="comparisons"><h2>Comparison</h2><p class="note">{which}, on the rows '
        "both measured. Inconclusive: the sample could not have detected a difference of "
        "the margin (MDE above it).</p>"
        '<table class="comparisons"><thead><tr><th>Metric</th><th>Baseline</th>'
        "<th>Candidate</th><th>Diff [95% CI]</th><th>p-value</th><th>MDE</th><th>Test</th>"
        "<th>Paired rows</th><th>Verdict</th></tr></thead><tbody>"
        + "".join(_comparison_row(c) for c in comparisons)
        + "</tbody></table></section>"
    )


# ------------------------------------------------------------------ rows side by side


@dataclass(frozen=True)
class _Pair:
    base: RowResult
    cand: RowResult
    disagreement: float  # the largest |difference| of a metric, over that metric's range
    metric: str | None  # the metric that disagrees most


def _first_repeats(results: Sequence[RowResult]) -> dict[str, RowResult]:
    first: dict[str, RowResult] = {}
    for result in results:
        if result.row.id not in first or result.repeat < first[result.row.id].repeat:
            first[result.row.id] = result
    return first


def _score(result: RowResult, metric: str) -> float | None:
    value = result.scores.get(metric)
    return None if value is None else value.value


def _ranges(results: Iterable[RowResult], metrics: Sequence[str]) -> dict[str, float]:
    values: dict[str, list[float]] = {m: [] for m in metrics}
    for result in results:
        for metric in metrics:
            if (score := _score(result, metric)) is not None:
                values[metric].append(score)
    return {m: (max(v) - min(v)) if v else 0.0 for m, v in values.items()}


def _pair(base: RowResult, cand: RowResult, ranges: Mapping[str, float]) -> _Pair:
    """A metric measured on one side only (a failed answer, a judge that did not answer)
    disagrees as much as a metric can: 1, its whole range."""
    best, which = 0.0, None
    for metric, span in ranges.items():
        b, c = _score(base, metric), _score(cand, metric)
        if (b is None) != (c is None) and best < 1.0:
            best, which = 1.0, f"{metric}, measured on one side only"
        elif b is not None and c is not None and span > 0 and abs(c - b) / span > best:
            best, which = abs(c - b) / span, metric
    return _Pair(base, cand, round(best, 6), which)  # rounded: ties go by the row's index


def _pairs(
    base: Sequence[RowResult], cand: Sequence[RowResult], metrics: Sequence[str]
) -> tuple[list[_Pair], int]:
    """Rows of both runs matched by id (first repeat), the largest disagreement first; and
    how many rows are in one run only."""
    left, right = _first_repeats(base), _first_repeats(cand)
    common = [key for key in left if key in right]
    ranges = _ranges([*left.values(), *right.values()], metrics)
    pairs = [_pair(left[key], right[key], ranges) for key in common]
    pairs.sort(key=lambda p: (-p.disagreement, p.base.row.index, p.base.row.id))
    return pairs, len(left) + len(right) - 2 * len(common)


def word_diff(old: str, new: str) -> tuple[str, str]:
    """Both texts escaped, with the words only in ``old`` in ``<del>`` and those only in
    ``new`` in ``<ins>``."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    if len(a) + len(b) > _MAX_DIFF_TOKENS:
        return escape(old), escape(new)
    left: list[str] = []
    right: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        removed, added = escape("".join(a[i1:i2])), escape("".join(b[j1:j2]))
        if tag == "equal":
            left.append(removed)
            right.append(added)
            continue
        if removed:
            left.append(f"<del>{removed}</del>")
        if added:
            right.append(f"<ins>{added}</ins>")
    return "".join(left), "".join(right)


def _plain(result: RowResult) -> str:
    if result.answer.error is not None:
        return f'<span class="error">error: {escape(result.answer.error)}</span>'
    return escape(result.answer.output)


def _outputs(base: RowResult, cand: RowResult) -> tuple[str, str]:
    if base.answer.ok and cand.answer.ok:
        return word_diff(base.answer.output, cand.answer.output)
    return _plain(base), _plain(cand)


def _score_cell(result: RowResult, metric: str) -> str:
    value = result.scores.get(metric)
    if value is None:
        return f'<td class="num muted" title="not scored">{DASH}</td>'
    if value.value is None:
        return f'<td class="num muted" title="{escape(value.reason or "unmeasured")}">{DASH}</td>'
    return f'<td class="num">{fmt(value.value)}</td>'


def _scores_table(pair: _Pair, metrics: Sequence[str]) -> str:
    lines = []
    for metric in metrics:
        b, c = _score(pair.base, metric), _score(pair.cand, metric)
        diff = fmt(c - b, signed=True) if b is not None and c is not None else DASH
        lines.append(
            f"<tr><td>{escape(metric)}</td>{_score_cell(pair.base, metric)}"
            f'{_score_cell(pair.cand, metric)}<td class="num">{diff}</td></tr>'
        )
    return (
        '<table class="scores"><thead><tr><th>Metric</th><th>Baseline</th><th>Candidate</th>'
        f"<th>Δ</th></tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _row_card(pair: _Pair, metrics: Sequence[str], index: int) -> str:
    row = pair.base.row
    most = f" · largest disagreement: {escape(pair.metric)}" if pair.metric is not None else ""
    reference = (
        f'<b>Reference</b><div class="text">{escape(row.reference)}</div>'
        if row.reference is not None
        else ""
    )
    base_text, cand_text = _outputs(pair.base, pair.cand)
    return (
        f'<article class="row" id="{slug("row", index, row.id)}"><h3>Row {escape(row.id)} '
        f'<span class="muted">(#{row.index}{most})</span></h3>'
        f'<b>Question</b><div class="text">{escape(row.prompt)}</div>{reference}'
        f'<div class="pair"><div><b>Baseline</b><div class="text out base">{base_text}</div>'
        f'</div><div><b>Candidate</b><div class="text out cand">{cand_text}</div></div></div>'
        f"{_scores_table(pair, metrics)}</article>"
    )


def _rows_section(
    runs: Sequence[RunSummary], rows: Mapping[str, Sequence[RowResult]], metrics: Sequence[str]
) -> str:
    head = '<section id="rows"><h2>Rows side by side</h2>'
    if len(runs) < 2 or runs[0].id not in rows or runs[1].id not in rows:
        return head + '<p class="note">Needs two runs with their row results.</p></section>'
    pairs, unmatched = _pairs(rows[runs[0].id], rows[runs[1].id], metrics)
    shown = pairs[:MAX_ROWS]
    notes = [
        f"{escape(runs[0].id)} (baseline, <del>removed</del>) and {escape(runs[1].id)} "
        "(candidate, <ins>added</ins>), first repeat; the rows whose metrics disagree most "
        "come first."
    ]
    if len(pairs) > len(shown):
        notes.append(f"Showing {len(shown)} of {len(pairs)} rows.")
    if unmatched:
        notes.append(f"{unmatched} rows are in one run only.")
    return (
        head
        + f'<p class="note">{" ".join(notes)}</p>'
        + '<p><input id="row-filter" type="search" placeholder="Filter rows" size="40"></p>'
        + "".join(_row_card(pair, metrics, i) for i, pair in enumerate(shown))
        + "</section>"
    )
