"""Gates: a suite's thresholds checked against a run (and a baseline), with exit codes and
JUnit XML for CI.

- ``min``: pass when the lower CI bound reaches it; fail when the mean is below it;
  inconclusive when only the interval straddles it (more rows or repeats would tell).
- ``max``: the mirror image, on the upper bound.
- ``no_regression``: fail on a significant regression against the baseline run;
  inconclusive when the comparison could not have detected a regression of ``margin``.

Exit codes: 0 pass, 1 fail or regression, 2 inconclusive, 3 error (no baseline, nothing
measured, a run that did not finish). A failure outranks an error, an error outranks an
inconclusive check.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal
from xml.etree import ElementTree as ET

from pydantic import BaseModel, ConfigDict

from eval._stats import Comparison
from eval._suite import Threshold
from eval._summary import RunSummary
from genai.files import atomic_write_text

__all__ = ["EXIT_CODES", "Check", "GateResult", "gate", "junit_xml", "write_junit"]

Outcome = Literal["pass", "fail", "inconclusive", "error"]
EXIT_CODES: dict[Outcome, int] = {"pass": 0, "fail": 1, "inconclusive": 2, "error": 3}


class Check(BaseModel):
    model_config = ConfigDict(frozen=True)

    metric: str
    rule: str  # "min 0.8", "max 2000", "no regression (margin 0.05)"
    outcome: Outcome
    detail: str


class GateResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    suite: str
    run: str
    baseline: str | None
    checks: list[Check]

    @property
    def outcome(self) -> Outcome:
        found = {c.outcome for c in self.checks}
        order: tuple[Outcome, ...] = ("fail", "error", "inconclusive")
        return next((o for o in order if o in found), "pass")

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def gate(
    thresholds: Sequence[Threshold],
    run: RunSummary,
    *,
    comparisons: Sequence[Comparison] = (),
    baseline: str | None = None,
) -> GateResult:
    """Check every threshold; ``comparisons`` are the run against ``baseline``."""
    checks = []
    if run.status != "finished":
        checks.append(
            Check(metric="*", rule="run", outcome="error", detail=f"the run is {run.status}")
        )
    by_metric = {c.metric: c for c in comparisons}
    for th in thresholds:
        if th.min is not None:
            checks.append(_bound(th.metric, run, th.min, low=True))
        if th.max is not None:
            checks.append(_bound(th.metric, run, th.max, low=False))
        if th.no_regression:
            checks.append(_regression(th, by_metric.get(th.metric), baseline))
    return GateResult(suite=run.suite, run=run.id, baseline=baseline, checks=checks)


def _bound(metric: str, run: RunSummary, bound: float, *, low: bool) -> Check:
    rule = f"{'min' if low else 'max'} {bound:g}"
    summary = run.metrics.get(metric)
    est = summary.estimate if summary is not None else None
    if est is None or est.mean is None:
        return Check(metric=metric, rule=rule, outcome="error", detail="no row was measured")
    text = f"mean {est.mean:.4g}, 95% CI [{_num(est.low)}, {_num(est.high)}], n={est.n}"
    edge = est.low if low else est.high
    if edge is not None and (edge >= bound if low else edge <= bound):
        return Check(metric=metric, rule=rule, outcome="pass", detail=text)
    if est.mean < bound if low else est.mean > bound:
        return Check(metric=metric, rule=rule, outcome="fail", detail=text)
    return Check(
        metric=metric,
        rule=rule,
        outcome="inconclusive",
        detail=f"{text}: the interval straddles {bound:g} (more rows or repeats would tell)",
    )


def _regression(th: Threshold, comparison: Comparison | None, baseline: str | None) -> Check:
    rule = f"no regression (margin {th.margin:g})"
    if baseline is None:
        return Check(
            metric=th.metric, rule=rule, outcome="error", detail="no baseline run to compare with"
        )
    if comparison is None:
        return Check(
            metric=th.metric,
            rule=rule,
            outcome="error",
            detail=f"the baseline {baseline} did not measure it",
        )
    c = comparison
    text = (
        f"diff {_num(c.diff)} [{_num(c.low)}, {_num(c.high)}], p={_num(c.p_value)}, "
        f"MDE {_num(c.mde)}, n={c.n} ({c.test}): {c.verdict}"
    )
    outcome: Outcome = {
        "worse": "fail",
        "inconclusive": "inconclusive",
        "better": "pass",
        "no-difference": "pass",
    }[c.verdict]  # type: ignore[assignment]
    return Check(metric=th.metric, rule=rule, outcome=outcome, detail=text)


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def junit_xml(result: GateResult) -> str:
    """The gate as a JUnit XML test suite: one test case per check."""
    cases = ET.Element(
        "testsuite",
        name=f"eval {result.suite}",
        tests=str(len(result.checks)),
        failures=str(sum(c.outcome == "fail" for c in result.checks)),
        errors=str(sum(c.outcome == "error" for c in result.checks)),
        skipped=str(sum(c.outcome == "inconclusive" for c in result.checks)),
    )
    for check in result.checks:
        case = ET.SubElement(
            cases,
            "testcase",
            classname=f"eval.{result.suite}",
            name=f"{check.metric}: {check.rule}",
        )
        if check.outcome == "fail":
            ET.SubElement(case, "failure", message=check.detail)
        elif check.outcome == "error":
            ET.SubElement(case, "error", message=check.detail)
        elif check.outcome == "inconclusive":
            ET.SubElement(case, "skipped", message=f"inconclusive: {check.detail}")
        ET.SubElement(case, "system-out").text = check.detail
    root = ET.Element("testsuites")
    root.append(cases)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_junit(path: str | Path, result: GateResult) -> Path:
    target = Path(path)
    atomic_write_text(target, junit_xml(result))
    return target
