"""``genai eval promote|canary``: move prompt labels, adapter aliases and deployment weights
on an eval run's passing gate, and stage a canary that rolls back by itself.

Exit codes. ``promote``: 0 the gate passed and the move was made; 1 the gate failed (or
found a regression); 2 it was inconclusive; 3 an error (no such run, a bad option, a run
that did not finish). Nothing moves unless it exits 0. ``canary``: 0 promoted, 1 rolled
back, 3 an error.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.markup import escape

from apps.cli._app import JsonOpt, ProjectOpt, client
from apps.cli._deploy import parse_weights
from apps.cli._eval import eval_app
from apps.cli._output import console, err, print_json
from genai.errors import GenAIError, ValidationError

if TYPE_CHECKING:
    from eval import CanaryResult, CanaryStep, GateResult, Promotion

__all__ = ["canary_cmd", "parse_steps", "promote_cmd"]

_ERROR = 3
_COLOUR: dict[str, Any] = {"pass": "green", "fail": "red", "inconclusive": "yellow", "error": "red"}


@eval_app.command("promote")
def promote_cmd(
    eval_id: str = typer.Argument(..., help="The eval run whose gate decides (ID or eval:ID)."),
    project: str = ProjectOpt,
    prompt: str | None = typer.Option(None, "--prompt", help="NAME@VERSION: a prompt version."),
    label: str | None = typer.Option(None, "--label", help="The label to point at --prompt."),
    adapter: str | None = typer.Option(None, "--adapter", help="NAME@VERSION: an adapter version."),
    alias: str | None = typer.Option(None, "--alias", help="The alias to point at --adapter."),
    deployment: str | None = typer.Option(
        None, "--deployment", help="A deployment whose weights change (with --weights)."
    ),
    weights: str | None = typer.Option(
        None, "--weights", help="NAME=WEIGHT pairs for --deployment, e.g. stable=75,canary=25."
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Gate against this eval run, or the newest run on this target."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Move a prompt label, an adapter alias or a deployment's weights if EVAL_ID's gate
    passes, with the run as the evidence: exit 0 moved, 1 fail, 2 inconclusive, 3 error."""
    import eval as ev

    try:
        with client() as c:
            done = ev.promote(
                c,
                project,
                eval_id,
                prompt=prompt,
                label=label,
                adapter=adapter,
                alias=alias,
                deployment=deployment,
                weights=parse_weights(weights) if weights is not None else None,
                baseline=baseline,
            )
    except ev.PromotionRefused as refused:
        _refused(refused.gate, refused.message, as_json)
    except GenAIError as error:
        _fail(error.message)
    if as_json:
        print_json(done)
    else:
        _show_promotion(done)
    if not done.covered:
        err.print(
            f"[yellow]warning:[/] eval:{done.eval.removeprefix('eval:')} did not evaluate "
            f"{done.promoted} (it evaluated: {', '.join(done.evaluated) or 'nothing recorded'})"
        )


@eval_app.command("canary")
def canary_cmd(
    deployment: str = typer.Argument(..., help="The deployment whose traffic moves."),
    project: str = ProjectOpt,
    canary: str = typer.Option(..., "--canary", help="The target that takes over."),
    stable: str = typer.Option(..., "--stable", help="The target it takes over from."),
    steps: str = typer.Option(
        "5,25,50,100", "--steps", help="The canary's share at each step, in %, the last 100."
    ),
    min_requests: int = typer.Option(
        50, "--min-requests", help="Scored answers each arm needs before a step is judged."
    ),
    margin: float = typer.Option(
        0.05, "--margin", help="The regression (in score units) a step must rule out."
    ),
    poll_s: float = typer.Option(30.0, "--poll-s", help="Seconds between looks."),
    timeout_s: float = typer.Option(
        3600.0, "--timeout-s", help="The longest a step waits; then it rolls back."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Raise CANARY's share step by step while callers' feedback holds; roll back by itself
    on a significant regression (or a step that cannot tell): exit 0 promoted, 1 rolled
    back, 3 error."""
    import eval as ev

    try:
        with client() as c:
            result = ev.canary(
                c,
                project,
                deployment,
                canary=canary,
                stable=stable,
                steps=parse_steps(steps),
                min_requests=min_requests,
                margin=margin,
                poll_s=poll_s,
                timeout_s=timeout_s,
                on_step=None if as_json else _show_step,
            )
    except GenAIError as error:
        _fail(error.message)
    if as_json:
        print_json({**result.model_dump(mode="json"), "exit_code": result.exit_code})
    else:
        _show_canary(result)
    sys.exit(result.exit_code)


def parse_steps(text: str) -> list[float]:
    """``5,25,50,100`` → ``[5.0, 25.0, 50.0, 100.0]``."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValidationError(
            f"--steps {text!r}: write percentages separated by commas (e.g. 5,25,50,100)",
            field="steps",
        ) from None


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    sys.exit(_ERROR)


def _refused(result: GateResult, message: str, as_json: bool) -> NoReturn:
    if as_json:
        print_json({"moved": False, "outcome": result.outcome, "gate": result})
    else:
        for check in result.checks:
            console.print(
                f"[{_COLOUR[check.outcome]}]{check.outcome:>12}[/] {check.metric}: "
                f"{check.rule} — {escape(check.detail)}"
            )
        err.print(f"[red]refused:[/red] {escape(message)}")
    sys.exit(result.exit_code)


def _show_promotion(done: Promotion) -> None:
    if done.revision is not None:
        console.print(
            f"[green]✓[/] {done.subject} revision {done.revision.version}: "
            f"{done.revision.description} (gate: pass)"
        )
        return
    state = f"→ {done.promoted}" if done.moved else f"already at {done.promoted}"
    console.print(f"[green]✓[/] {done.subject} {state} (gate: pass, evidence {done.eval})")


def _show_step(step: CanaryStep) -> None:
    c = step.comparison
    said = ""
    if c is not None and c.diff is not None and c.p_value is not None:
        said = f": diff {c.diff:+.4g}, p={c.p_value:.3g}"
    console.print(
        f"  step {step.percent:g}% ({step.revision}): {step.outcome}"
        + (f", canary n={step.canary_n}, stable n={step.stable_n}" if step.canary_n else "")
        + said
    )


def _show_canary(result: CanaryResult) -> None:
    colour = "green" if result.status == "promoted" else "red"
    console.print(
        f"[{colour}]{result.status}[/]: {result.deployment} {escape(result.reason)} "
        f"({result.revision})"
    )
