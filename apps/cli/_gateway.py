"""``genai gateway``: the OpenAI-compatible front door for every AI Project."""

from __future__ import annotations

import logging
import os
import sys

import typer

from apps.cli._app import app, settings
from apps.cli._output import console
from genai.store import Store, check_schema

__all__ = ["gateway"]


@app.command()
def gateway(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(4000, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (share counters via Redis)."),
    access_log: bool = typer.Option(True, help="A JSON line per request on stdout."),
) -> None:
    """Serve OpenAI's API for every project: keys, deployments, quotas, usage."""
    run_app(
        "apps.gateway:create_app",
        host,
        port,
        workers,
        access_log=access_log,
        banner=f"gateway on http://{host}:{port}/v1 ({{workers}}); admin API on /api, metrics "
        f"on /metrics, the Hub on http://{host}:{port}/hub",
    )


def run_app(
    factory: str, host: str, port: int, workers: int, *, access_log: bool, banner: str
) -> None:
    """Serve the app ``factory`` makes with uvicorn, after checking the store's schema (in
    one line, before workers start); ``banner`` is printed with ``{workers}`` filled in."""
    import uvicorn

    cfg = settings()
    check_schema(Store(cfg.resolved_database_url))
    if workers > 1 and not cfg.redis_url:
        console.print(
            "[yellow]![/] several workers without GENAI_REDIS_URL: each counts its own "
            "rate limits and quotas"
        )
    os.environ["GENAI_USER"] = cfg.user
    configure_logging(access_log)
    count = f"{workers} worker{'s' if workers > 1 else ''}"
    console.print("[green]✓[/] " + banner.format(workers=count))
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def configure_logging(access: bool) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("genai.gateway.access")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO if access else logging.WARNING)
