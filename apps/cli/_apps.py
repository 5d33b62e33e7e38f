"""``genai app publish|list|unpublish|revoke``: a deployment as a public chat app of the Hub.

A published app answers anyone at ``/hub/apps/SLUG`` of the gateway, without sign-in, as the
project (its quotas, DLP and usage ledger apply), within the app's own daily quota. Other
sites embed it with a script tag (a chat bubble) or an iframe; ``--origin`` lists the sites
that may (none: any site may).
"""

from __future__ import annotations

import typer
from rich.markup import escape

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, show_table

__all__ = ["app_app"]

app_app = typer.Typer(
    help="Published chat apps: a deployment at a public Hub link, with a widget for other sites.",
    no_args_is_help=True,
)
app.add_typer(app_app, name="app")

UrlOpt = typer.Option(
    "http://127.0.0.1:4000",
    "--url",
    envvar="GENAI_HUB_URL",
    help="The gateway's address, without /hub (or GENAI_HUB_URL): the snippets use it.",
)


def _base(url: str) -> str:
    from apps.hub import HUB_PREFIX

    return url.rstrip("/") + HUB_PREFIX


@app_app.command("publish")
def publish(
    deployment: str = typer.Argument(..., help="The deployment to publish."),
    project: str = ProjectOpt,
    slug: str | None = typer.Option(
        None,
        "--slug",
        help="The link's last part (default: the deployment's name, random letters).",
    ),
    title: str | None = typer.Option(None, "--title", help="The page's title."),
    origin: list[str] = typer.Option(
        [], "--origin", help="A site that may embed it (repeat; none: any site may)."
    ),
    daily_requests: int | None = typer.Option(
        1000, "--daily-requests", help="Requests per day (0: no limit)."
    ),
    daily_tokens: int | None = typer.Option(
        None, "--daily-tokens", help="Tokens per day (default: no limit)."
    ),
    url: str = UrlOpt,
) -> None:
    """Publish a deployment as a public chat app (maintainers and owners)."""
    from apps.hub._published_store import PublishedApps

    with client() as c:
        info = PublishedApps(c).publish(
            project,
            deployment,
            slug=slug,
            title=title,
            origins=origin,
            requests_per_day=daily_requests or None,
            tokens_per_day=daily_tokens,
        )
    base = _base(url)
    console.print(f"[green]✓[/] {info.deployment} published as app {info.slug}")
    console.print(f"  link:   {base}/apps/{info.slug}", soft_wrap=True, markup=False)
    script = f'<script src="{base}/apps/{info.slug}/widget.js" async></script>'
    console.print(f"  bubble: {script}", soft_wrap=True, markup=False)
    frame = f'<iframe src="{base}/apps/{info.slug}?embed=1" width="400" height="560"></iframe>'
    console.print(f"  iframe: {frame}", soft_wrap=True, markup=False)


@app_app.command("list")
def list_apps(project: str = ProjectOpt, as_json: bool = JsonOpt, url: str = UrlOpt) -> None:
    """The project's published apps."""
    from apps.hub._published_store import PublishedApps

    with client() as c:
        rows = PublishedApps(c).list(project)
    base = _base(url)
    show_table(
        f"apps of {escape(project)}",
        rows,
        [
            ("slug", lambda r: r.slug),
            ("deployment", lambda r: r.deployment),
            ("link", lambda r: f"{base}/apps/{r.slug}"),
            ("requests/day", lambda r: r.requests_per_day),
            ("tokens/day", lambda r: r.tokens_per_day),
            ("origins", lambda r: " ".join(r.allowed_origins) or "any"),
            ("created", lambda r: r.created_at),
        ],
        as_json=as_json,
        empty=f"none yet: `genai app publish DEPLOYMENT --project {project}`",
    )


@app_app.command("unpublish")
def unpublish(slug: str, project: str = ProjectOpt) -> None:
    """Unpublish an app: its link, widget and tokens stop at once, its key is revoked."""
    from apps.hub._published_store import PublishedApps

    with client() as c:
        info = PublishedApps(c).unpublish(project, slug)
    console.print(
        f"[green]✓[/] app {escape(info.slug)} unpublished; key {info.key_prefix}… revoked"
    )


@app_app.command("revoke")
def revoke(slug: str, project: str = ProjectOpt) -> None:
    """Revoke the app tokens handed out so far (open pages must reload)."""
    from apps.hub._published_store import PublishedApps

    with client() as c:
        info = PublishedApps(c).revoke_tokens(project, slug)
    console.print(f"[green]✓[/] the tokens of app {escape(info.slug)} are revoked")
