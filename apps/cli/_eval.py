"""``genai eval run|resume|show|compare|gate|report``: evaluation through the gateway."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli._app import GatewayOpt, JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, err, print_json
from genai.errors import GenAIError

if TYPE_CHECKING:
    from eval import Comparison, GateResult, RowResult, RunSummary
    from genai import Client

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Evaluation: run suites through the gateway, compare runs, gate and report.",
    no_args_is_help=True,
)
app.add_typer(eval_app, name="eval")

KeyOpt = typer.Option(
    ...,
    "--api-key",
    envvar="GENAI_API_KEY",
    help="A key of the project (or GENAI_API_KEY): the run calls as it.",
)
ReportOpt = typer.Option(None, "--report", help="Write the HTML report here.")
BaselineOpt = typer.Option(
    None, "--baseline", help="Compare with this eval run, or the newest run on this target."
)


@eval_app.command("run")
def run_cmd(
    suite: Path = typer.Argument(..., help="The suite: a YAML file (see eval.Suite)."),
    target: str = typer.Option(..., "--target", "-t", help="DEPLOYMENT[:ADAPTER] to evaluate."),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    repeats: int | None = typer.Option(None, "--repeats", "-r", help="Answers per row."),
    fresh: bool = typer.Option(False, "--fresh", help="Reuse no earlier answer."),
    gateway_cache: bool = typer.Option(
        False, "--gateway-cache", help="Let the first repeat read the gateway's semantic cache."
    ),
    baseline: str | None = BaselineOpt,
    report: Path | None = ReportOpt,
    gate: bool = typer.Option(
        False, "--gate", help="Then check the suite's thresholds: exit as `genai eval gate`."
    ),
    junit: Path | None = typer.Option(None, "--junit", help="With --gate: JUnit XML here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Answer every row of SUITE with TARGET through the gateway, score it, keep it."""
    import eval as ev

    with client() as c:
        try:
            job = ev.run(
                c,
                project,
                suite,
                target=target,
                gateway=gateway,
                api_key=api_key,
                repeats=repeats,
                fresh=fresh,
                gateway_cache=gateway_cache,
                baseline=baseline,
                progress=not quiet and not as_json,
            )
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] the finished rows are kept; "
                f"`genai eval resume EVAL -p {project}` answers the rest"
            )
            raise
        _present(c, project, job.summary, job.results, baseline, report, as_json)
    if gate:
        gate_cmd(job.eval.id, project, baseline, junit, as_json=False)


@eval_app.command("resume")
def resume_cmd(
    eval_id: str = typer.Argument(..., help="The interrupted eval run (its id, or eval:ID)."),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    report: Path | None = ReportOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Answer the rows an interrupted run has not answered yet, then summarise it."""
    import eval as ev

    with client() as c:
        job = ev.resume(
            c,
            project,
            eval_id,
            gateway=gateway,
            api_key=api_key,
            progress=not quiet and not as_json,
        )
        _present(c, project, job.summary, job.results, None, report, as_json)


@eval_app.command("show")
def show_cmd(
    eval_id: str = typer.Argument(..., help="The eval run."),
    project: str = ProjectOpt,
    report: Path | None = ReportOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A stored run's scores with their confidence intervals."""
    import eval as ev

    with client() as c:
        summary, results = ev.load_run(c, project, eval_id)
        _present(c, project, summary, results, None, report, as_json)


@eval_app.command("compare")
def compare_cmd(
    baseline: str = typer.Argument(..., help="The baseline eval run (or a target: its newest)."),
    candidate: str = typer.Argument(..., help="The candidate eval run."),
    project: str = ProjectOpt,
    report: Path | None = ReportOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Paired comparison of two runs on the rows both answered."""
    import eval as ev

    with client() as c:
        summary, results = ev.load_run(c, project, candidate)
        _present(c, project, summary, results, baseline, report, as_json)


@eval_app.command("report")
def report_cmd(
    eval_ids: list[str] = typer.Argument(..., help="One run, or a baseline and a candidate."),
    project: str = ProjectOpt,
    output: Path = typer.Option(..., "--output", "-o", help="The HTML file to write."),
) -> None:
    """Write the self-contained HTML report of a run (or of two, compared)."""
    import eval as ev

    if len(eval_ids) > 2:
        raise typer.BadParameter("one run, or a baseline and a candidate")
    with client() as c:
        summary, results = ev.load_run(c, project, eval_ids[-1])
        baseline = eval_ids[0] if len(eval_ids) == 2 else None
        _present(c, project, summary, results, baseline, output, as_json=False, table=False)


@eval_app.command("gate")
def gate_cmd(
    eval_id: str = typer.Argument(..., help="The eval run to gate."),
    project: str = ProjectOpt,
    baseline: str | None = BaselineOpt,
    junit: Path | None = typer.Option(None, "--junit", help="Write JUnit XML here."),
    as_json: bool = JsonOpt,
) -> None:
    """Check the suite's thresholds: exit 0 pass, 1 fail or regression, 2 inconclusive,
    3 error."""
    import eval as ev

    try:
        with client() as c:
            result, _, _ = ev.gate_run(c, project, eval_id, baseline=baseline)
    except GenAIError as error:
        err.print(f"[red]error:[/red] {escape(error.message)}")
        sys.exit(ev.EXIT_CODES["error"])
    if junit is not None:
        ev.write_junit(junit, result)
    if as_json:
        print_json({**result.model_dump(mode="json"), "outcome": result.outcome})
    else:
        _show_gate(result)
    sys.exit(result.exit_code)


def _compare(
    c: Client, project: str, summary: RunSummary, against: str | None
) -> tuple[list[Comparison], str | None]:
    import eval as ev

    if against is None:
        return [], None
    comparisons, base_id = ev.compare_with(c, project, summary, against)
    return comparisons, base_id


def _present(
    c: Client,
    project: str,
    summary: RunSummary,
    results: Sequence[RowResult],
    baseline: str | None,
    report: Path | None,
    as_json: bool,
    *,
    table: bool = True,
) -> None:
    comparisons, base_id = _compare(c, project, summary, baseline)
    if report is not None:
        _write_report(c, project, summary, results, comparisons, base_id, report)
    if as_json:
        print_json(
            {
                "run": summary.model_dump(
                    mode="json", exclude={"metrics": {"__all__": {"per_row"}}}
                ),
                "comparisons": [x.model_dump(mode="json") for x in comparisons],
            }
        )
        return
    if table:
        _show_summary(summary)
        if comparisons:
            _show_comparisons(comparisons, base_id or "")
    if report is not None:
        console.print(f"[green]✓[/] report written to {report}")


def _write_report(
    c: Client,
    project: str,
    summary: RunSummary,
    results: Sequence[RowResult],
    comparisons: Sequence[Comparison],
    base_id: str | None,
    path: Path,
) -> None:
    import eval as ev
    from eval._report import write_html

    runs, rows = [summary], {summary.id: list(results)}
    if base_id is not None:
        base, base_rows = ev.load_run(c, project, base_id)
        runs, rows = [base, summary], {base.id: base_rows, summary.id: list(results)}
    write_html(path, runs, comparisons=comparisons, rows=rows, title=f"eval {summary.suite}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _show_summary(summary: RunSummary) -> None:
    table = Table(
        title=f"eval:{summary.id} · {summary.suite} · {summary.target} · "
        f"{summary.rows} rows × {summary.repeats} · {summary.errors} row errors"
    )
    for col in ("metric", "mean", "95% CI", "n", "unmeasured"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in summary.metrics.items():
        e = m.estimate
        why = ", ".join(f"{k} ({v})" for k, v in m.reasons.items())
        table.add_row(
            name,
            _num(e.mean),
            f"[{_num(e.low)}, {_num(e.high)}]",
            str(e.n),
            f"{e.unmeasured}" + (f": {why}" if why else ""),
        )
    console.print(table)


_VERDICT = {"better": "green", "worse": "red", "inconclusive": "yellow", "no-difference": "dim"}


def _show_comparisons(comparisons: Sequence[Comparison], baseline: str) -> None:
    table = Table(title=f"candidate vs baseline eval:{baseline} (paired)")
    for col in ("metric", "baseline", "candidate", "diff [95% CI]", "p", "MDE", "test", "verdict"):
        table.add_column(col)
    for x in comparisons:
        table.add_row(
            x.metric,
            _num(x.baseline),
            _num(x.candidate),
            f"{_num(x.diff)} [{_num(x.low)}, {_num(x.high)}]",
            _num(x.p_value),
            _num(x.mde),
            x.test,
            f"[{_VERDICT[x.verdict]}]{x.verdict}[/]",
        )
    console.print(table)


def _show_gate(result: GateResult) -> None:
    colour: dict[str, Any] = {
        "pass": "green",
        "fail": "red",
        "inconclusive": "yellow",
        "error": "red",
    }
    for check in result.checks:
        console.print(
            f"[{colour[check.outcome]}]{check.outcome:>12}[/] {check.metric}: {check.rule} — "
            f"{escape(check.detail)}"
        )
    console.print(f"gate: [{colour[result.outcome]}]{result.outcome}[/] (exit {result.exit_code})")
