"""``genai hub link``: a one-time link that signs you in to the Hub, the gateway's web UI.

The gateway serves the Hub at ``/hub`` (``genai gateway``, ``genai up``); this prints a link
for the local user into one project, as Jupyter prints its token links. Anyone with the link
can use it once, within 15 minutes: paste it only into your own browser.
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
