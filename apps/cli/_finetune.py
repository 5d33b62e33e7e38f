"""``genai finetune run|resume|validate``: adapters trained on registered models and data."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, err, print_json

__all__ = ["finetune_app"]

finetune_app = typer.Typer(
    help="Fine-tuning: validate data, train LoRA/QLoRA/DoRA/rsLoRA adapters, resume runs.",
    no_args_is_help=True,
)
app.add_typer(finetune_app, name="finetune")


def _done(job: object, as_json: bool) -> None:
    from finetune import FineTuneJob

    assert isinstance(job, FineTuneJob)
    if os.environ.get("RANK", "0") != "0":  # under torchrun: the main process reports
        return
    if as_json:
        print_json({"run": job.run, "adapter": job.adapter, "model": getattr(job, "model", None)})
        return
    loss = job.run.metrics.get("loss")
    console.print(
        f"[green]✓[/] run:{job.run.id} {job.run.status}"
        + (f", final loss {loss:.4g}" if loss is not None else "")
    )
    if job.adapter is not None:
        console.print(f"[green]✓[/] registered {job.adapter.ref}")
        for problem in job.adapter.lint:
            err.print(f"[yellow]vLLM would refuse it:[/] {problem}")
    model = getattr(job, "model", None)  # a vendor's fine-tuned model
    if model is not None:
        console.print(f"[green]✓[/] registered {model.ref} ({model.source})")


@finetune_app.command("run")
def run(
    config: Path = typer.Argument(..., help="The recipe: a YAML file (see FineTuneConfig)."),
    project: str = ProjectOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Train an adapter as CONFIG says; the run and the adapter are registered."""
    import finetune

    with client() as c:
        cfg = finetune.load_config(config)
        try:
            job = finetune.train(c, project, cfg, progress=not quiet)
        except KeyboardInterrupt:
            err.print(
                "[yellow]interrupted:[/] the run is kept; "
                f"`genai finetune resume RUN -p {project}` continues it "
                "(`genai registry runs list --status interrupted` lists it)"
            )
            raise
        _done(job, as_json)


@finetune_app.command("resume")
def resume(
    run_id: str = typer.Argument(..., help="The run (its id, or run:ID)."),
    project: str = ProjectOpt,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = JsonOpt,
) -> None:
    """Continue an interrupted or killed run from its last complete checkpoint."""
    import finetune

    with client() as c:
        job = finetune.resume(c, project, run_id.removeprefix("run:"), progress=not quiet)
        _done(job, as_json)


@finetune_app.command("validate")
def validate(
    dataset: str = typer.Argument(..., help="A JSONL file, or a dataset reference (with -p)."),
    project: str | None = typer.Option(None, "--project", "-p", envvar="GENAI_PROJECT"),
    split: str | None = typer.Option(None, help="Only this split of a registered dataset."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="Also render and tokenize with this base model (ref or dir)."
    ),
    max_length: int | None = typer.Option(None, "--max-length", help="Longest row in tokens."),
    fmt: str = typer.Option("auto", "--format", help="chat, alpaca, prompt_completion, text."),
    as_json: bool = JsonOpt,
) -> None:
    """Check every row before training: format, roles, empty turns, length, duplicates."""
    import finetune

    with client() as c:
        report = finetune.validate(
            dataset,
            client=c,
            project=project,
            split=split,
            base_model=model,
            fmt=fmt,
            max_length=max_length,
        )
    if as_json:
        print_json(
            {
                "format": report.format,
                "rows": report.rows,
                "ok": report.ok,
                "trained_tokens": report.trained_tokens,
                "longest": report.longest,
                "problems": [vars(p) for p in report.problems],
            }
        )
    else:
        for problem in report.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            console.print(f"[{colour}]{problem.severity}[/] {problem}")
        summary = f"{report.rows} {report.format} rows"
        if report.trained_tokens:
            summary += f", {report.trained_tokens} trained tokens, longest {report.longest}"
        mark = "[green]✓[/]" if report.ok else "[red]✗[/]"
        console.print(
            f"{mark} {summary}: {len(report.errors)} errors, {len(report.warnings)} warnings"
        )
    if not report.ok:
        raise typer.Exit(1)
