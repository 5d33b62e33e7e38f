"""The evaluation report (eval/_report.py): one self-contained HTML file, opened offline.

Two runs built by hand (four metrics: a binary one, two continuous, one lower-is-better;
unmeasured values with their reasons; a comparison of each verdict; model outputs that
carry markup) are rendered; the page is checked as text, then opened in headless Chromium
(Debian's ``chromium`` through Playwright), which must show every chart, fetch nothing and
log no error. Chromium or Playwright missing: skipped on a developer's machine, failed
under CI=true.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium

from eval._report import MAX_ROWS, render_html, word_diff, write_html
from eval._report_svg import fmt, fmt_p, nice_ticks, unmeasured_note
from eval._stats import Comparison, Estimate
from eval._summary import MetricSummary, RowResult, RunSummary
from eval._types import Answer, EvalRow, Message, MetricKind, MetricValue

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"
BASE, CAND = "run-base-01", "run-cand-02"
METRICS: dict[str, tuple[MetricKind, bool]] = {  # name: kind, higher_is_better
    "exact_match": ("binary", True),
    "similarity": ("continuous", True),
    "judge:faithfulness": ("continuous", True),
    "latency_ms": ("continuous", False),
}


# ------------------------------------------------------------------ the runs, by hand


def _row(i: int) -> EvalRow:
    question = f"What is the capital of country {i}?"
    return EvalRow(
        index=i,
        id=f"q{i}",
        messages=(Message(role="user", content=question),),
        question=question,
        reference=None if i == 3 else f"The capital is City {i}.",
    )


def _scores(i: int, candidate: bool) -> dict[str, MetricValue]:
    if candidate and i == 6:  # the answer failed
        return dict.fromkeys(METRICS, MetricValue.unmeasured("the answer failed"))
    better = candidate and i % 2 == 0
    faithful = (
        MetricValue.unmeasured("row has no reference")
        if i == 3
        else MetricValue.unmeasured(f"the judge failed: {IMG}")
        if i in (1, 5) and candidate
        else MetricValue.of(0.5 + 0.05 * (i % 4) + (0.2 if better else 0.0))
    )
    return {
        "exact_match": MetricValue.of(float((i % 3 != 0) != (candidate and i == 4))),
        "similarity": MetricValue.of(0.4 + 0.07 * i + (0.25 if better else 0.0)),
        "judge:faithfulness": faithful,
        "latency_ms": MetricValue.of(800.0 + 35 * i - (120 if candidate else 0)),
    }


def _output(i: int, candidate: bool) -> str:
    if candidate and i == 2:
        return f"The capital is City {i}. {SCRIPT} Also see the map."
    if candidate:
        return f"The capital of country {i} is City {i}, a large city."
    return f"The capital is City {i}."


def _results(run: str, n: int = 8) -> list[RowResult]:
    candidate = run == CAND
    results = []
    for i in range(n):
        answer = (
            Answer(error="upstream timed out after 30 s")
            if candidate and i == 6
            else Answer(output=_output(i, candidate), latency_ms=800.0)
        )
        results.append(
            RowResult(row=_row(i), repeat=0, answer=answer, scores=_scores(i, candidate))
        )
        # a second repeat, never shown side by side (the first repeat is)
        results.append(
            RowResult(row=_row(i), repeat=1, answer=Answer(output="SECOND REPEAT"), scores={})
        )
    return results


def _summary(name: str, results: list[RowResult]) -> MetricSummary:
    kind, higher = METRICS[name]
    per_row: dict[str, float | None] = {}
    reasons: dict[str, int] = {}
    for result in (r for r in results if r.repeat == 0):
        value = result.scores[name]
        per_row[result.row.id] = value.value
        if value.reason is not None:
            reasons[value.reason] = reasons.get(value.reason, 0) + 1
    measured = [v for v in per_row.values() if v is not None]
    mean = sum(measured) / len(measured)
    spread = (max(measured) - min(measured)) / 4
    estimate = Estimate(
        mean=mean,
        low=mean - spread,
        high=mean + spread,
        n=len(measured),
        unmeasured=sum(reasons.values()),
    )
    return MetricSummary(
        name=name,
        kind=kind,
        higher_is_better=higher,
        estimate=estimate,
        per_row=per_row,
        reasons=reasons,
    )


def _run(run: str, results: list[RowResult]) -> RunSummary:
    return RunSummary(
        id=run,
        suite="support-qa",
        target="gpt-small" if run == BASE else "gpt-small-v2",
        status="succeeded",
        rows=8,
        repeats=2,
        errors=1 if run == CAND else 0,
        metrics={name: _summary(name, results) for name in METRICS},
    )


def _comparisons() -> list[Comparison]:
    def one(metric: str, verdict: str, **values: Any) -> Comparison:
        kind, higher = METRICS[metric]
        test = "mcnemar" if kind == "binary" else "paired-bootstrap"
        return Comparison.model_validate(
            dict(metric=metric, test=test, n=7, margin=0.05, higher_is_better=higher)
            | dict(verdict=verdict)
            | values
        )

    numbers = dict(baseline=0.5, candidate=0.6, diff=0.1, low=0.04, high=0.16, mde=0.03)
    worse = numbers | dict(diff=-0.125, low=-0.2, high=-0.05)
    return [
        one("similarity", "better", p_value=0.0004, **numbers),
        one("exact_match", "worse", p_value=0.03, **worse),
        one(
            "judge:faithfulness",
            "inconclusive",
            baseline=0.6,
            candidate=None,
            diff=None,
            low=None,
            high=None,
            p_value=None,
            mde=None,
        ),
        one("latency_ms", "no-difference", **numbers | dict(mde=0.02), p_value=0.41),
    ]


def build() -> tuple[list[RunSummary], list[Comparison], dict[str, list[RowResult]]]:
    rows = {BASE: _results(BASE), CAND: _results(CAND)}
    return [_run(BASE, rows[BASE]), _run(CAND, rows[CAND])], _comparisons(), rows


@pytest.fixture(scope="module")
def page_html() -> str:
    runs, comparisons, rows = build()
    return render_html(runs, comparisons=comparisons, rows=rows, title=f"Report {SCRIPT}")


# ------------------------------------------------------------------ the page as text


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str, str | None]] = []  # tag, name, value
        self.scripts: list[str] = []
        self._in_script = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [(tag, name, value) for name, value in attrs]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)


def _parse(page: str) -> _Collect:
    parser = _Collect()
    parser.feed(page)
    parser.close()
    return parser


def test_nothing_is_loaded_from_elsewhere(page_html: str) -> None:
    parsed = _parse(page_html)
    links = [(t, n, v) for t, n, v in parsed.attrs if n in ("src", "href", "xlink:href", "action")]
    assert [link for link in links if not (link[2] or "").startswith("data:")] == []
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page_html, re.I)
    assert "@import" not in page_html and "url(" not in page_html
    assert len(parsed.scripts) == 1  # the row filter; the CSP allows it by its hash alone
    assert "default-src 'none'" in page_html


def test_data_is_escaped(page_html: str) -> None:
    parsed = _parse(page_html)
    assert SCRIPT not in page_html and IMG not in page_html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page_html  # the output, the title
    assert all("alert" not in script for script in parsed.scripts)
    assert not [a for a in parsed.attrs if a[1].startswith("on")]  # no onerror=
    text = "".join(parsed.text)
    assert SCRIPT in text  # shown as text
    assert f"the judge failed: {IMG}" in text


def test_no_number_is_none_or_nan(page_html: str) -> None:
    text = "".join(_parse(page_html).text)
    assert not re.search(r"\b(None|nan|NaN|inf)\b", text)
    inconclusive = page_html.split('<span class="verdict v-inconclusive">', maxsplit=1)[0]
    last_row = inconclusive[inconclusive.rindex("<tr>") :]
    assert last_row.count("—") == 4  # candidate, diff (no interval), p-value, MDE


def test_the_header_and_the_comparison_table(page_html: str) -> None:
    text = " ".join(_parse(page_html).text)
    for expected in ("support-qa", "gpt-small", "gpt-small-v2", BASE, CAND, "8 × 2"):
        assert expected in text
    for verdict in ("better", "worse", "inconclusive", "no-difference"):
        assert f'<span class="verdict v-{verdict}">{verdict}</span>' in page_html
    assert "+0.100 [+0.040, +0.160]" in page_html
    assert "&lt;0.001" in page_html  # p = 0.0004
    assert "mcnemar" in page_html and "paired-bootstrap" in page_html


def test_unmeasured_reasons_are_counted_under_the_metric(page_html: str) -> None:
    runs, _, _ = build()
    note = unmeasured_note(runs[1].metrics["judge:faithfulness"])
    assert note == (
        f"4 unmeasured: the judge failed: {IMG} (2), row has no reference (1), "
        "the answer failed (1)"
    )
    assert (
        "4 unmeasured: the judge failed: &lt;img src=x onerror=alert(2)&gt; (2), "
        "row has no reference (1), the answer failed (1)"
    ) in page_html
    assert "1 unmeasured: row has no reference (1)" in page_html  # the baseline's
    assert unmeasured_note(runs[0].metrics["similarity"]) == "all measured"


def test_rows_side_by_side(page_html: str) -> None:
    section = page_html[page_html.index('id="rows"') : page_html.index('id="distributions"')]
    cards = re.findall(r'<article class="row" id="row-\d+-(q\d+)"', section)
    assert sorted(cards) == [f"q{i}" for i in range(8)]
    # a metric measured on one side only (q1, q5: the judge failed; q6: the answer failed)
    # disagrees as much as exact_match's flip (q4, its whole range); then q0 and q2, whose
    # faithfulness rose by 2/3 of its range
    assert cards[:6] == ["q1", "q4", "q5", "q6", "q0", "q2"]
    assert "SECOND REPEAT" not in section  # the first repeat is shown
    assert "<ins>" in section and "<del>" in section
    assert "error: upstream timed out after 30 s" in section
    assert 'title="row has no reference"' in section


def test_the_side_by_side_view_is_capped() -> None:
    runs, _, _ = build()
    many = MAX_ROWS + 5
    rows = {BASE: _results(BASE, many), CAND: _results(CAND, many)}
    page = render_html(runs, rows=rows)
    assert page.count('<article class="row"') == MAX_ROWS
    assert f"Showing {MAX_ROWS} of {many} rows." in page


def test_word_diff_marks_words_and_escapes() -> None:
    old, new = word_diff("the cat <b>sat</b>", "the dog <b>sat</b>")
    assert old == "the <del>cat</del> &lt;b&gt;sat&lt;/b&gt;"
    assert new == "the <ins>dog</ins> &lt;b&gt;sat&lt;/b&gt;"


def test_numbers() -> None:
    assert fmt(None) == "—" and fmt(float("nan")) == "—" and fmt_p(None) == "—"
    assert fmt(-0.00001, signed=True) == "-1.0e-05"
    assert fmt(-0.0004999) == "-5.0e-04" and fmt(-0.0) == "0.000"
    assert fmt(0.12345) == "0.123" and fmt(12.345) == "12.3" and fmt(1234.5) == "1,234"
    assert fmt(0.1, signed=True) == "+0.100" and fmt_p(0.0001) == "<0.001"
    assert nice_ticks(0, 0.87) == [0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(-0.13, 0.3) == [-0.2, 0, 0.2, 0.4]
    assert nice_ticks(640, 1010) == [600, 700, 800, 900, 1000, 1100]
    assert nice_ticks(0.5, 0.5) == [0.5, 0.75, 1.0, 1.25, 1.5]


def test_a_run_with_nothing_measured_shows_dashes() -> None:
    empty = Estimate(mean=None, low=None, high=None, n=0, unmeasured=4)
    summary = MetricSummary(
        name="judge", kind="continuous", higher_is_better=True, estimate=empty, per_row={}
    )
    run = RunSummary(
        id="r", suite="s", target="t", status="failed", rows=4, repeats=1, errors=4,
        metrics={"judge": summary},
    )  # fmt: skip
    page = render_html([run])
    text = "".join(_parse(page).text)
    assert "— (not measured)" in text and "4 unmeasured" in text
    assert "no measured values" in text
    assert not re.search(r"\b(None|nan|NaN)\b", text)
    assert "Needs two runs" in text


def test_write_html_writes_the_page(tmp_path: Path) -> None:
    runs, comparisons, rows = build()
    path = write_html(tmp_path / "report.html", runs, comparisons=comparisons, rows=rows)
    assert path.read_text(encoding="utf-8") == render_html(runs, comparisons=comparisons, rows=rows)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary left


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def _open(browser: Any, path: Path) -> tuple[Any, list[str], list[str]]:
    """The page loaded from ``path``; what else it asked for; what it logged as errors."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests: list[str] = []
    errors: list[str] = []
    url = path.as_uri()

    def route(route: Any) -> None:  # the page itself loads; nothing else does
        if route.request.url == url:
            route.continue_()
        else:
            route.abort()

    def dialog(dialog: Any) -> None:  # alert(1) run: the escaping failed
        errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    page.route("**/*", route)
    page.on("request", lambda r: None if r.url == url else requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", dialog)
    page.goto(url, wait_until="load")
    return page, requests, errors


def test_the_browser_check_sees_fetches_and_scripts(browser: Any, tmp_path: Path) -> None:
    """The check itself: a page that fetches and alerts is caught."""
    path = tmp_path / "bad.html"
    path.write_text(
        '<html><body><img src="http://127.0.0.1:9/x.png"><script>alert(1)</script></body></html>'
    )
    page, requests, errors = _open(browser, path)
    assert requests == ["http://127.0.0.1:9/x.png"]
    assert "dialog: 1" in errors
    page.close()


def test_the_charts_are_shown_in_chromium(browser: Any, tmp_path: Path) -> None:
    runs, comparisons, rows = build()
    path = write_html(tmp_path / "report.html", runs, comparisons=comparisons, rows=rows)
    page, requests, errors = _open(browser, path)
    charts = page.locator("[data-chart]")
    assert charts.count() == 2 * len(METRICS)
    for index in range(charts.count()):
        chart = charts.nth(index)
        chart.scroll_into_view_if_needed()
        box = chart.bounding_box()
        assert chart.is_visible() and box is not None, chart.get_attribute("id")
        assert box["width"] > 100 and box["height"] > 50, (chart.get_attribute("id"), box)
    bars = page.locator('[data-chart="bars"]')
    assert bars.count() == len(METRICS)
    for index in range(bars.count()):
        figure = bars.nth(index)
        rects = figure.locator("svg rect.bar")
        assert rects.count() == len(runs), figure.get_attribute("id")
        for r in range(rects.count()):
            box = rects.nth(r).bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0
        assert figure.locator("svg line.err").count() == len(runs)
        assert figure.locator("svg line.err-cap").count() == 2 * len(runs)
    hists = page.locator('[data-chart="hist"]')
    assert hists.count() == len(METRICS)
    for index in range(hists.count()):
        assert hists.nth(index).locator("rect.hist-bar").count() >= len(runs)
    assert requests == []
    assert errors == []
    page.close()


def test_the_row_filter_works_in_chromium(browser: Any, tmp_path: Path) -> None:
    runs, comparisons, rows = build()
    path = write_html(tmp_path / "report.html", runs, comparisons=comparisons, rows=rows)
    page, requests, errors = _open(browser, path)
    assert page.locator("article.row:visible").count() == 8
    page.fill("#row-filter", "country 5")
    assert page.locator("article.row:visible").count() == 1
    assert page.locator("article.row:visible h3").inner_text().startswith("Row q5")
    assert requests == [] and errors == []
    page.close()


def test_a_notebook_shows_a_run_as_its_report_in_a_frame(browser: Any, tmp_path: Path) -> None:
    runs, _, _ = build()
    fragment = runs[1]._repr_html_()
    assert fragment.startswith("<iframe srcdoc=") and "<script>alert(1)" not in fragment
    # a notebook page around it: the frame's charts show, its styles stay inside it
    path = tmp_path / "notebook.html"
    path.write_text(f"<html><body><h1 id='nb'>notebook</h1>{fragment}</body></html>")
    page, requests, errors = _open(browser, path)
    frame = page.frame_locator("iframe")
    assert frame.locator('[data-chart="bars"]').count() == len(METRICS)
    frame.locator('[data-chart="bars"]').first.wait_for(state="visible")
    assert frame.locator("svg rect.bar").count() == len(METRICS)  # one run: a bar per metric
    assert page.evaluate("getComputedStyle(document.getElementById('nb')).fontSize") != "22px"
    assert requests == [] and errors == []
    page.close()
