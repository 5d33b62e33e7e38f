"""``genai demo``: what ``make run`` shows. It sets up a demo project, a key and a deployment
that answers without any model download (the in-process ``extractive`` model), prints the
URL, the key and a working ``curl`` and openai-SDK call, then runs the gateway.

Running it again reuses the project and the deployment and issues a fresh key (the old demo
key is revoked: a key is shown only once).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import typer

from apps.cli._app import app, client
from apps.cli._output import console
from genai import Client
from genai.errors import ConflictError, NotFoundError
from genai.tenancy import CreatedKey

__all__ = ["DEMO_DEPLOYMENT", "DEMO_SPEC", "demo"]

DEMO_DEPLOYMENT = "chat"
DEMO_SPEC: dict[str, Any] = {"targets": [{"name": "local", "backend": "extractive"}]}
DEMO_KEY = "demo"
QUESTION = "When does the support desk open?"
PASSAGES = (
    ("faq-1", "The support desk opens at 9 am and closes at 6 pm, Monday to Friday."),
    ("faq-2", "Refunds reach your card within five business days."),
    ("faq-3", "Invoices are listed under Settings > Billing."),
)


@app.command()
def demo(
    project: str = typer.Option("demo", help="The project the demo creates or reuses."),
    host: str = typer.Option("127.0.0.1", help="Address the gateway listens on."),
    port: int = typer.Option(4000, help="Port the gateway listens on."),
    serve: bool = typer.Option(
        True,
        "--serve/--no-serve",
        help="Run the gateway after the set-up (--no-serve: print only).",
    ),
) -> None:
    """Set up a demo project, key and deployment, print how to call it, run the gateway."""
    with client() as c:
        _project(c, project)
        key = _key(c, project)
        _deployment(c, project)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    _print_calls(base, key.secret, project)
    if not serve:
        _print_usage(project)
        _print_start(project, port)
        return
    from apps.cli._gateway import gateway

    console.print("\nstarting the gateway (Ctrl-C stops it)…")
    threading.Thread(
        target=_first_call, args=(base, key.secret, project), name="demo-call", daemon=True
    ).start()
    gateway(host=host, port=port, workers=1, access_log=True)


def _first_call(base: str, secret: str, project: str) -> None:
    """Once the gateway answers: the printed question, its answer, and the usage report that
    call made, so the tour ends with something real in the ledger."""
    import httpx

    deadline = time.monotonic() + 120
    with httpx.Client(base_url=base, timeout=60) as http:
        while True:
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                console.print("[red]✗[/] the gateway did not come up within 120 s")
                return
            time.sleep(0.2)
        reply = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": DEMO_DEPLOYMENT, "messages": [{"role": "user", "content": _question()}]},
        )
    if reply.status_code != 200:
        console.print(f"[red]✗[/] the first call failed ({reply.status_code}): {reply.text}")
        return
    console.print(f"\nQ: {QUESTION}", markup=False, highlight=False)
    answer = reply.json()["choices"][0]["message"]["content"]
    console.print(f"A: {answer}", markup=False, highlight=False)
    _print_usage(project, wait_for=1)


def _print_usage(project: str, *, wait_for: int = 0) -> None:
    """The project's usage report; ``wait_for`` requests are awaited first (the ledger is
    written off the request path, a moment after the answer)."""
    from apps.cli._tenancy import print_usage

    deadline = time.monotonic() + 10
    with client() as c:
        report = c.usage.report(project)
        while report.total.requests < wait_for and time.monotonic() < deadline:
            time.sleep(0.2)
            report = c.usage.report(project)
    print_usage(report, as_json=False)


def _project(c: Client, project: str) -> None:
    try:
        c.projects.create(project, description="created by `genai demo`")
        console.print(f"[green]✓[/] project {project} created (you are its owner)")
    except ConflictError:
        c.projects.get(project)  # exists: make sure we may see it
        console.print(f"[green]✓[/] project {project} exists")


def _key(c: Client, project: str) -> CreatedKey:
    """A fresh developer key; the demo key of an earlier run is revoked."""
    for old in c.keys.list(project):
        if old.name == DEMO_KEY:
            c.keys.revoke(project, old.prefix)
    key = c.keys.create(project, role="developer", name=DEMO_KEY, expires_in="30d")
    console.print(f"[green]✓[/] developer key {key.prefix} (expires in 30 days)")
    return key


def _deployment(c: Client, project: str) -> None:
    """The demo deployment, applied only when its newest revision serves something else."""
    from apps.deployments import apply_spec
    from genai.gateway import parse_spec

    wanted = parse_spec(DEMO_SPEC).model_dump(mode="json", exclude_unset=True)
    try:
        current = c.registry.deployments.get(project, DEMO_DEPLOYMENT)
    except NotFoundError:
        current = None
    if current is not None and current.spec == wanted:
        revision = current
    else:
        revision = apply_spec(
            c, project, DEMO_DEPLOYMENT, DEMO_SPEC, description="genai demo: extractive"
        )
    console.print(
        f"[green]✓[/] deployment {DEMO_DEPLOYMENT} (revision {revision.version}): the in-process "
        "extractive model, which quotes the context passages (no download)"
    )


def _question() -> str:
    lines = "\n".join(f"[{pid}] {text}" for pid, text in PASSAGES)
    return f"{QUESTION}\n<context>\n{lines}\n</context>"


def _print_calls(base: str, secret: str, project: str) -> None:
    """The URL, the key, and a curl and an openai-SDK call that work as printed."""
    body = {
        "model": DEMO_DEPLOYMENT,
        "messages": [{"role": "user", "content": _question()}],
    }
    curl = "\n".join(
        [
            f"curl -s {base}/v1/chat/completions \\",
            f'  -H "Authorization: Bearer {secret}" \\',
            '  -H "Content-Type: application/json" \\',
            f"  -d '{json.dumps(body)}'",
        ]
    )
    python = "\n".join(
        [
            "from openai import OpenAI",
            "",
            f'client = OpenAI(base_url="{base}/v1", api_key="{secret}")',
            "answer = client.chat.completions.create(",
            f'    model="{DEMO_DEPLOYMENT}",',
            f'    messages=[{{"role": "user", "content": {json.dumps(_question())}}}],',
            ")",
            "print(answer.choices[0].message.content)",
        ]
    )
    console.print(f"\nthe gateway: {base}/v1  (admin API: {base}/api, its docs: {base}/docs)")
    console.print(f"project: {project}   model: {DEMO_DEPLOYMENT}")
    console.print("your key (shown once):")
    _plain(secret)
    console.print("\ntry it with curl:")
    _plain(curl)
    console.print("\nor with the openai SDK (pip install openai):")
    _plain(python)
    console.print("")


def _plain(text: str) -> None:
    """Printed as it is: no markup, no colours, no wrapping (so it can be copied)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_start(project: str, port: int) -> None:
    console.print(
        f"start the gateway with `genai gateway --port {port}` (or `genai demo` without "
        f"--no-serve); then `genai usage report -p {project}` shows the calls"
    )
