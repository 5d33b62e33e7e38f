"""``genai eval lm-eval``: lm-evaluation-harness benchmarks of a deployment, through the
gateway, kept as an eval run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from apps.cli._app import GatewayOpt, JsonOpt, ProjectOpt, client
from apps.cli._eval import KeyOpt, eval_app
from apps.cli._output import console, print_json

if TYPE_CHECKING:
    from eval import LmEvalJob

__all__ = ["lm_eval_cmd"]


@eval_app.command("lm-eval")
def lm_eval_cmd(
    tasks: list[str] = typer.Argument(..., help="lm-eval tasks (names, or comma-separated)."),
    target: str = typer.Option(..., "--target", "-t", help="DEPLOYMENT[:ADAPTER] to evaluate."),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="The served model's tokenizer (a directory); default: the deployment's "
        "registered model's files.",
    ),
    include_path: Path | None = typer.Option(
        None,
        "--include-path",
        help="A directory of task YAML files (their relative data files are taken from it).",
    ),
    limit: float | None = typer.Option(
        None, "--limit", help="Documents per task (a count, or a fraction below 1)."
    ),
    num_fewshot: int | None = typer.Option(None, "--num-fewshot", help="Few-shot examples."),
    batch_size: int = typer.Option(1, "--batch-size", help="Prompts per request.", min=1),
    concurrency: int = typer.Option(1, "--concurrency", help="Requests at once.", min=1),
    python: Path | None = typer.Option(
        None,
        "--python",
        help="The python of an environment with lm-eval (or GENAI_LM_EVAL_PYTHON); "
        "default: this one, with the lm-eval extra.",
    ),
    model_arg: list[str] = typer.Option(
        [], "--model-arg", help="More lm-eval model_args, KEY=VALUE (repeatable)."
    ),
    online: bool = typer.Option(
        False, "--online", help="Let lm-eval download task datasets from the Hugging Face Hub."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    as_json: bool = JsonOpt,
) -> None:
    """Run lm-evaluation-harness TASKS on TARGET through the gateway; keep an eval run."""
    import eval as ev

    extra = dict(_pair(item) for item in model_arg)
    with client() as c:
        job = ev.lm_eval(
            c,
            project,
            tasks,
            target=target,
            gateway=gateway,
            api_key=api_key,
            tokenizer=tokenizer,
            include_path=include_path,
            limit=limit,
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            concurrency=concurrency,
            python=python,
            extra_model_args=extra,
            online=online,
            progress=not quiet and not as_json,
        )
    if as_json:
        print_json(
            {
                "eval": job.eval.id,
                "suite": job.eval.config.get("suite"),
                "status": job.eval.status,
                "lm_eval": job.version,
                "scores": [s.model_dump(mode="json") for s in job.scores],
            }
        )
        return
    _show(job, project)


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise typer.BadParameter(f"{item!r}: write KEY=VALUE", param_hint="--model-arg")
    return key, value


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _show(job: LmEvalJob, project: str) -> None:
    table = Table(
        title=f"eval:{job.eval.id} · {job.eval.config.get('target')} · lm-eval {job.version}",
        title_justify="left",
    )
    for col in ("task", "metric", "value", "95% CI", "± stderr", "n"):
        table.add_column(col, justify="left" if col in ("task", "metric") else "right")
    for s in job.scores:
        e = s.estimate
        metric = s.metric if s.filter == "none" else f"{s.metric} ({s.filter})"
        table.add_row(
            s.task,
            metric + ("" if s.higher_is_better else " ↓"),
            _num(s.value),
            f"[{_num(e.low)}, {_num(e.high)}]",
            _num(s.stderr),
            str(e.n),
        )
    console.print(table)
    console.print(
        f"[green]✓[/] kept as eval:{job.eval.id} ({job.eval.config.get('suite')}): "
        f"`genai eval show {job.eval.id} -p {project}`"
    )
