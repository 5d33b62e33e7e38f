"""``genai hub``: the Hub, the gateway's web UI.

The gateway serves the Hub at ``/hub`` (``genai gateway``, ``genai up``). ``genai hub link``
prints a link for the local user into one project, as Jupyter prints its token links (anyone
with the link can use it once, within 15 minutes: paste it only into your own browser).
``genai hub serve`` runs the Hub alone: the gateway's app with only ``/hub`` reachable
(see ``apps/hub/_standalone.py``).
"""

from __future__ import annotations

import typer

from apps.cli._app import ProjectOpt, app, settings
from apps.cli._output import console

__all__ = ["hub_app"]

hub_app = typer.Typer(help="The Hub, the gateway's web UI at /hub.", no_args_is_help=True)
app.add_typer(hub_app, name="hub")


@hub_app.command("link")
def link(
    project: str = ProjectOpt,
    url: str = typer.Option(
        "http://127.0.0.1:4000",
        "--url",
        envvar="GENAI_HUB_URL",
        help="The gateway's address, without /hub (or GENAI_HUB_URL).",
    ),
) -> None:
    """Print a one-time sign-in link to the project's Hub (it mints a 12-hour key for you,
    and revokes the key of your previous link)."""
    from apps.hub import sign_in_link

    console.print(sign_in_link(settings(), project, base_url=url), soft_wrap=True)


@hub_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(4001, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (share counters via Redis)."),
) -> None:
    """Serve the Hub alone at /hub: the gateway's app in this process, without its /v1,
    /api and /metrics (run `genai gateway` for those)."""
    from apps.cli._gateway import run_app

    run_app(
        "apps.hub._standalone:create_hub_app",
        host,
        port,
        workers,
        access_log=False,
        banner=f"Hub on http://{host}:{port}/hub ({{workers}}); this process serves no /v1, "
        "/api or /metrics",
    )
