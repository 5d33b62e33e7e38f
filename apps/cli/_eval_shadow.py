"""``genai eval shadow``: a deployment's recorded shadow answers judged against its callers'
answers, as two eval runs and their paired comparison."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from apps.cli._app import GatewayOpt, JsonOpt, ProjectOpt, client
from apps.cli._eval import KeyOpt, ReportOpt, _show_comparisons, _show_summary, eval_app
from apps.cli._output import console, err, print_json

if TYPE_CHECKING:
    from eval import ShadowJob

__all__ = ["shadow_cmd"]


@eval_app.command("shadow")
def shadow_cmd(
    deployment: str = typer.Argument(..., help="The deployment whose shadow answers to judge."),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    judge: str | None = typer.Option(
        None, "--judge", help="A judge deployment: llm_judge on both, pairwise on the shadow."
    ),
    metric: list[str] = typer.Option(
        ["embedding_similarity"], "--metric", help="A metric against the caller's answer."
    ),
    since: datetime | None = typer.Option(
        None, "--since", help="Only pairs recorded at or after this time (UTC unless told)."
    ),
    limit: int = typer.Option(200, "--limit", min=1, help="The newest this many pairs."),
    report: Path | None = ReportOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Judge DEPLOYMENT's recorded shadow answers against the answers its callers got: two
    eval runs (primary, shadow) over the same requests, compared; nothing is asked again."""
    import eval as ev

    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    with client() as c:
        job = ev.shadow(
            c,
            project,
            deployment,
            gateway=gateway,
            api_key=api_key,
            metrics=metric,
            judge=judge,
            since=since,
            limit=limit,
            progress=not quiet and not as_json,
        )
    if report is not None:
        _write_report(job, report)
    if as_json:
        print_json(_as_json(job))
        return
    _show(job, project)
    if report is not None:
        console.print(f"[green]✓[/] report written to {report}")


def _as_json(job: ShadowJob) -> dict[str, object]:
    per_row = {"metrics": {"__all__": {"per_row"}}}
    return {
        "deployment": job.deployment,
        "revision": job.revision,
        "dataset": job.dataset,
        "suite": job.suite,
        "pairs": job.pairs,
        "skipped": job.skipped,
        "primary": job.primary.summary.model_dump(mode="json", exclude=per_row),
        "shadow": job.shadow.summary.model_dump(mode="json", exclude=per_row),
        "comparisons": [x.model_dump(mode="json") for x in job.comparisons],
    }


def _show(job: ShadowJob, project: str) -> None:
    console.print(
        f"{job.deployment} ({job.revision}): {job.pairs} shadow pairs judged from {job.dataset}"
    )
    for why, n in sorted(job.skipped.items()):
        err.print(f"[yellow]skipped {n} pairs:[/] {why}")
    _show_summary(job.primary.summary)
    _show_summary(job.shadow.summary)
    _show_comparisons(job.comparisons, job.primary.eval.id)
    console.print(
        f"report: genai eval report {job.primary.eval.id} {job.shadow.eval.id} "
        f"-p {project} -o shadow.html"
    )


def _write_report(job: ShadowJob, path: Path) -> None:
    from eval import write_html

    runs = [job.primary.summary, job.shadow.summary]
    rows = {job.primary.eval.id: job.primary.results, job.shadow.eval.id: job.shadow.results}
    write_html(
        path, runs, comparisons=job.comparisons, rows=rows, title=f"shadow of {job.deployment}"
    )
