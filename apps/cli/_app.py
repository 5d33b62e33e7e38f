"""The ``genai`` command: the root app, global options, and error handling."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import typer
from rich.markup import escape

from apps.cli._output import console, err
from genai import Client, Settings, connect
from genai import init as genai_init
from genai.errors import GenAIError

__all__ = ["app", "client", "main", "settings"]

app = typer.Typer(
    name="genai",
    help="genai-platform: AI Projects, registry, serving, gateway and more.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state: dict[str, str | None] = {"user": None}

ProjectOpt = typer.Option(
    ..., "--project", "-p", envvar="GENAI_PROJECT", help="The AI Project (or GENAI_PROJECT)."
)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
GatewayOpt = typer.Option(
    "http://127.0.0.1:4000/v1",
    "--gateway",
    envvar="GENAI_GATEWAY_URL",
    help="The gateway's /v1 URL (or GENAI_GATEWAY_URL).",
)


@app.callback()
def _root(
    as_user: str | None = typer.Option(
        None, "--as", metavar="USER", help="Act as this local user (default: GENAI_USER or $USER)."
    ),
) -> None:
    _state["user"] = as_user


def settings() -> Settings:
    user = _state["user"]
    return Settings(user=user) if user else Settings()


@contextmanager
def client() -> Iterator[Client]:
    with connect(settings()) as c:
        yield c


@app.command()
def init(
    admin: str | None = typer.Option(
        None, help="The first platform admin (default: the current user)."
    ),
) -> None:
    """Create or upgrade the platform's database; the first user becomes its admin."""
    cfg = settings()
    result = genai_init(cfg, admin=admin)
    state = (
        "created"
        if result.revision_before is None
        else ("upgraded" if result.revision_before != result.revision else "up to date")
    )
    console.print(f"[green]✓[/] database {state} at revision {result.revision}: {result.database}")
    if result.admin:
        console.print(f"[green]✓[/] {result.admin} is the platform admin")
    console.print(f"  home: {result.home}")


@app.command()
def whoami() -> None:
    """The user the CLI acts as."""
    with client() as c:
        me = c.users.whoami()
    console.print(f"{me.name}" + (" (platform admin)" if me.is_admin else ""))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``genai`` script: one line per error, non-zero exit."""
    import apps.cli._agents  # registers `genai agent`
    import apps.cli._apps  # registers `genai app`
    import apps.cli._cache  # registers `genai cache`
    import apps.cli._dlp  # registers `genai dlp`
    import apps.cli._eval_lm  # registers `genai eval lm-eval`
    import apps.cli._eval_promote  # registers `genai eval promote`, `genai eval canary`
    import apps.cli._eval_shadow  # registers `genai eval shadow`
    import apps.cli._hub  # registers `genai hub`
    import apps.cli._k8s  # registers `genai k8s`
    import apps.cli._k8s_platform  # registers `genai k8s platform`
    import apps.cli._k8s_pod  # registers `genai k8s fetch`, `genai k8s agent`
    import apps.cli._prompts  # registers `genai prompt`
    import apps.cli._rag  # registers `genai kb`, `genai ingest`, `genai ask`
    import apps.cli._secrets  # noqa: F401 - registers `genai secret`
    from apps.cli import _deploy, _eval, _finetune, _gateway, _registry, _serve, _tenancy  # noqa: F401
    from apps.cli._up import up  # noqa: F401

    try:
        app(args=list(argv) if argv is not None else None, prog_name="genai")
    except GenAIError as error:
        err.print(f"[red]error:[/red] {escape(error.message)}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:  # a bug: one line, the traceback only when asked for
        if os.environ.get("GENAI_DEBUG"):
            traceback.print_exc()
        err.print(
            f"[red]internal error:[/red] {type(error).__name__}: {escape(str(error))} "
            "(set GENAI_DEBUG=1 for the traceback, and please report it)"
        )
        sys.exit(2)
