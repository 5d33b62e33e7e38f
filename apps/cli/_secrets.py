"""``genai secret set|list|delete``: a project's upstream credentials, write-only.

A deployment target names one as ``api_key_secret: NAME``; the gateway sends its value to
the target's url. The value is read from ``--from-env VAR`` (your own shell's variable),
else from standard input when it is piped, else from a hidden prompt. It is never printed.
"""

from __future__ import annotations

import os
import sys

import typer

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, show_table
from genai.errors import ValidationError

__all__ = ["secret_app"]

secret_app = typer.Typer(
    help="A project's secrets (upstream API keys): set, list names, delete. Values are write-only.",
    no_args_is_help=True,
)
app.add_typer(secret_app, name="secret")


def _value(from_env: str | None) -> str:
    """The value to store: the named variable of this shell, piped stdin, or a prompt."""
    if from_env is not None:
        value = os.environ.get(from_env)
        if not value:
            raise ValidationError(
                f"--from-env {from_env}: that variable is not set (or empty) in this shell: "
                "export it first, or pipe the value on standard input",
                field="from_env",
            )
        return value
    if not sys.stdin.isatty():
        text = sys.stdin.read()
        return text[:-1] if text.endswith("\n") else text  # `echo` adds one newline
    value = typer.prompt("Value (hidden)", hide_input=True)
    return str(value)


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(..., help="The secret's name, as targets write it."),
    project: str = ProjectOpt,
    from_env: str | None = typer.Option(
        None, "--from-env", metavar="VAR", help="Read the value from this variable of your shell."
    ),
) -> None:
    """Create or replace a secret (maintainers and owners). The value comes from --from-env,
    piped standard input, or a hidden prompt; it is never shown again."""
    value = _value(from_env)
    if value.endswith("\r"):
        value = value[:-1]
    with client() as c:
        info = c.secrets.set(project, name, value)
    console.print(
        f"[green]✓[/] secret {info.name} set in {info.project}; targets use it as "
        f"`api_key_secret: {info.name}`"
    )


@secret_app.command("list")
def secret_list(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """The project's secrets by name (never their values)."""
    with client() as c:
        rows = c.secrets.list(project)
    show_table(
        f"secrets of {project}",
        rows,
        [
            ("name", lambda r: r.name),
            ("updated", lambda r: r.updated_at),
            ("updated by", lambda r: r.updated_by),
            ("created", lambda r: r.created_at),
            ("created by", lambda r: r.created_by),
        ],
        as_json=as_json,
        empty=f"none yet: `genai secret set NAME --project {project}`",
    )


@secret_app.command("delete")
def secret_delete(name: str, project: str = ProjectOpt) -> None:
    """Delete a secret (maintainers and owners); deployments that use it fail until it is
    set again."""
    with client() as c:
        c.secrets.delete(project, name)
    console.print(f"[green]✓[/] secret {name} deleted from {project}")
