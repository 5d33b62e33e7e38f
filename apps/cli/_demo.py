"""``genai demo``: a first tour of the core layer, run by ``make run``."""

from __future__ import annotations

import typer
from rich.markup import escape

from apps.cli._app import app, client, settings
from apps.cli._output import console
from apps.cli._tenancy import print_usage
from genai import connect
from genai.errors import ConflictError, NotFoundError
from genai.tenancy import UsageEvent

DEMO_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@app.command()
def demo(
    project: str = typer.Option("demo", help="The project the demo creates or reuses."),
) -> None:
    """Create a demo project and a key, use the key, and print the usage report."""
    with client() as c:
        try:
            c.projects.create(project, description="created by `genai demo`")
            console.print(f"[green]✓[/] project {project} created (you are its owner)")
        except ConflictError:
            c.projects.get(project)  # exists: make sure we may see it
            console.print(f"[green]✓[/] project {project} exists")
        for old in c.keys.list(project):
            if old.name == "demo":
                c.keys.revoke(project, old.prefix)
        key = c.keys.create(project, role="developer", name="demo", expires_in="30d")
        console.print(f"[green]✓[/] developer key {key.prefix} (expires in 30 days)")
        try:
            model = c.registry.models.get(project, "smollm2")
        except NotFoundError:
            model = c.registry.models.register(
                project,
                "smollm2",
                source=DEMO_MODEL,
                license="apache-2.0",
                description="metadata only: nothing is downloaded",
            )
        console.print(f"[green]✓[/] base model {model.ref} ({model.source}, {model.license})")

    # What the gateway does for every request: authenticate the key, check the quota,
    # then write a ledger row. These three rows are labelled as demo traffic.
    with connect(settings(), api_key=key.secret) as as_key:
        me = as_key.keys.verify(key.secret)
        console.print(f"[green]✓[/] the key authenticates as {me.label}")
        for prompt, completion in ((42, 17), (120, 64), (8, 3)):
            as_key.quotas.acquire(project)
            as_key.usage.record(
                project,
                UsageEvent(
                    model="smollm2",
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    cost_usd=(prompt + completion) * 2e-7,
                    latency_ms=0.0,
                    status="ok",
                    request_id="demo",
                ),
            )
        console.print("[green]✓[/] 3 demo requests recorded in the usage ledger")
        report = as_key.usage.report(project)
    print_usage(report, as_json=False)
    console.print("\nyour key (shown once):")
    console.print(f"  [bold]{escape(key.secret)}[/bold]")
    console.print(
        f"next: `genai key list -p {project}`, `genai usage report`, "
        f"`genai audit list -p {project}`"
    )
