"""``genai prompt …``: push prompt files, read, list, diff, label, roll back and render them.

Every command acts as the CLI's user in ``--project`` and is authorized there: viewers read
and render, developers push and move ordinary labels, maintainers and owners move the
protected ones (``production`` by default).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, print_json, show_table
from genai.errors import ValidationError
from genai.registry import AliasChange
from prompts import PromptHub, parse_ref

prompt_app = typer.Typer(
    help="Prompt templates: versions, labels (production, staging…), diff, render.",
    no_args_is_help=True,
)
app.add_typer(prompt_app, name="prompt")

RefArg = typer.Argument(..., help="NAME (newest), NAME@VERSION or NAME@LABEL.")


@prompt_app.command("push")
def push(
    file: Path = typer.Argument(..., help="A .yaml/.json prompt file, or a text template."),
    name: str = typer.Option(..., "--name", "-n", help="The prompt's name in the project."),
    project: str = ProjectOpt,
    label: str | None = typer.Option(None, "--label", "-l", help="Point this label at it."),
    message: str = typer.Option("", "--message", "-m", help="Why this version."),
    as_json: bool = JsonOpt,
) -> None:
    """Register a prompt file as the next version (the same content is the same version)."""
    with client() as c:
        version = PromptHub(c, project).push(name, file, message=message, label=label)
    if as_json:
        print_json(version.to_dict())
        return
    labels = f" (labels: {', '.join(version.labels)})" if version.labels else ""
    if version.created:
        console.print(f"[green]✓[/] pushed {version.ref}{labels}")
    else:
        console.print(f"[yellow]=[/] same content as {version.ref}: no new version{labels}")


@prompt_app.command("get")
def get(
    ref: str = RefArg,
    project: str = ProjectOpt,
    source: bool = typer.Option(False, "--source", help="Print the YAML prompt file only."),
    as_json: bool = JsonOpt,
) -> None:
    """Show one version: facts, variables and messages."""
    with client() as c:
        version = PromptHub(c, project).get(ref)
    if as_json:
        print_json(version.to_dict())
    elif source:
        console.print(version.template.to_yaml(), markup=False, end="")
    else:
        console.print(version)


@prompt_app.command("list")
def list_(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """The newest version of each prompt."""
    with client() as c:
        rows = PromptHub(c, project).list()
    if as_json:
        print_json([v.to_dict() for v in rows])
        return
    show_table(
        f"prompts in {project}",
        rows,
        [
            ("name", lambda v: v.name),
            ("version", lambda v: v.version),
            ("kind", lambda v: v.kind),
            ("labels", lambda v: list(v.labels)),
            ("variables", lambda v: list(v.template.variables)),
            ("by", lambda v: v.author),
            ("created", lambda v: v.created_at),
            ("message", lambda v: v.message),
        ],
        as_json=False,
    )


@prompt_app.command("history")
def history(
    name: str = typer.Argument(..., help="The prompt's name."),
    project: str = ProjectOpt,
    labels: bool = typer.Option(False, "--labels", help="Show the label moves instead."),
    as_json: bool = JsonOpt,
) -> None:
    """Every version of a prompt, newest first (or, with --labels, every label move)."""
    with client() as c:
        hub = PromptHub(c, project)
        if labels:
            moves = hub.label_history(name)
            show_table(
                f"label moves of {name}",
                moves,
                [
                    ("time", lambda e: e.ts),
                    ("label", lambda e: e.alias),
                    ("from", lambda e: e.from_version),
                    ("to", lambda e: e.to_version),
                    ("by", lambda e: e.actor),
                ],
                as_json=as_json,
            )
            return
        versions = hub.history(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    show_table(
        f"versions of {name}",
        versions,
        [
            ("version", lambda v: v.version),
            ("labels", lambda v: list(v.labels)),
            ("by", lambda v: v.author),
            ("created", lambda v: v.created_at),
            ("message", lambda v: v.message),
            ("hash", lambda v: v.content_hash[:12]),
        ],
        as_json=False,
    )


@prompt_app.command("diff")
def diff(
    a: str = typer.Argument(..., help="The old version: NAME@VERSION or NAME@LABEL."),
    b: str | None = typer.Argument(None, help="The new one (default: the newest of NAME)."),
    project: str = ProjectOpt,
) -> None:
    """A unified diff of two versions' sources."""
    old = parse_ref(a)
    with client() as c:
        text = PromptHub(c, project).diff(a, b if b is not None else old.name)
    if not text:
        console.print("[dim]no differences[/dim]")
        return
    out = Text()
    for line in text.splitlines(keepends=True):
        style = ""
        if line.startswith("+") and not line.startswith("+++"):
            style = "green"
        elif line.startswith("-") and not line.startswith("---"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        out.append(line, style=style)
    console.print(out, end="")


@prompt_app.command("label")
def label(
    ref: str = typer.Argument(..., help="The version: NAME@VERSION (or NAME@LABEL, NAME)."),
    name: str = typer.Argument(..., metavar="LABEL", help="production, staging or any name."),
    project: str = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Point a label at a version (moving it, recorded in its history and the audit log)."""
    with client() as c:
        change = PromptHub(c, project).label(ref, name)
    _moved(change, as_json)


@prompt_app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="The prompt's name."),
    label_: str = typer.Argument(..., metavar="LABEL", help="The label to move back."),
    project: str = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Move a label back to the version it pointed at before."""
    with client() as c:
        change = PromptHub(c, project).rollback(name, label_)
    _moved(change, as_json)


@prompt_app.command("render")
def render(
    ref: str = RefArg,
    project: str = ProjectOpt,
    var: list[str] = typer.Option(
        [], "--var", help="NAME=VALUE, repeatable (typed by the declaration: 3, true, JSON)."
    ),
    variables: str | None = typer.Option(
        None, "--vars", help="The variables as a JSON object, or @FILE holding one."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Render a version with variables: chat messages, or the text."""
    with client() as c:
        version = PromptHub(c, project).get(ref)
    values = _vars_json(variables) if variables is not None else {}
    values |= version.template.coerce(_pairs(var))
    rendered = version.render(values)
    if as_json:
        print_json(rendered)
    elif isinstance(rendered, str):
        console.print(rendered, markup=False)
    else:
        for i, message in enumerate(rendered):
            if i:
                console.print()
            console.print(f"[bold]── {message['role']} ──[/bold]")
            console.print(message["content"], markup=False)


def _moved(change: AliasChange, as_json: bool) -> None:
    if as_json:
        print_json(change)
        return
    if change.from_version == change.to_version:
        how = "unchanged"
    elif change.from_version is None:
        how = "set"
    else:
        how = f"moved from {change.from_version}"
    console.print(f"[green]✓[/] {change.name}@{change.alias} → {change.to_version} ({how})")


def _pairs(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValidationError(
                f"--var {item!r}: write NAME=VALUE, e.g. --var question='Where is my invoice?'",
                field="var",
            )
        out[key.strip()] = value
    return out


def _vars_json(text: str) -> dict[str, Any]:
    source = text
    if text.startswith("@"):
        path = Path(text[1:]).expanduser()
        if not path.is_file():
            raise ValidationError(f"--vars {text!r}: no such file", field="vars")
        source = path.read_text(encoding="utf-8")
    try:
        data = json.loads(source)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"--vars is not valid JSON ({error.msg}): give an object, e.g. "
            '\'{"question": "Where is my invoice?"}\' or @vars.json',
            field="vars",
        ) from None
    if not isinstance(data, dict):
        raise ValidationError("--vars must be a JSON object of name → value", field="vars")
    return data
