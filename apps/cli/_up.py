"""``genai up``: the platform with its embedded defaults, what ``make run`` runs.

It initialises the metadata store, sets up a ``demo`` project with a developer key, a
knowledge base ``docs`` of this project's own documentation (the README and ``docs/``,
synced: a re-run indexes only what changed), the ``qa`` prompt at ``production``, a DLP
policy (personal data pseudonymised before any model sees it), the semantic cache turned on
for ``docs-bot`` (it is off unless a project turns it on), and a deployment ``docs-bot``: a
knowledge bot on the ``extractive`` model (no weights, nothing to download) — or on a local
Hugging Face model (``--model DIR``) or an OpenAI-compatible server (``--upstream URL``). It
prints the URL, the key, the Hub's URL with a one-time sign-in link, and a working curl
and openai-SDK call, then runs the gateway, asks
the bot one question and prints the answer, its citations and the usage report.

Beside the bot it deploys the project assistant (``assistant``): an agent that answers
questions about the caller's project (deployments, adapters, eval runs, lineage, usage) and
about the platform (the ``docs`` knowledge base) through read-only platform tools acting as
the caller, and drafts an adapter's model card from its lineage. Its model is the
deployment ``assistant-llm``: the bot's LLM, so with no ``--model`` or ``--upstream`` the
``extractive`` backend, which calls the tool a question names and quotes its result.

Running it again reuses everything and issues a fresh key (the old demo key is revoked:
a key is shown only once).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import typer

from apps.cli._app import app, client, settings
from apps.cli._output import console
from genai import Client
from genai.errors import ConflictError, NotFoundError, UsageError
from genai.tenancy import CreatedKey

__all__ = [
    "ASSISTANT",
    "ASSISTANT_QUESTION",
    "DEPLOYMENT",
    "KB",
    "QUESTION",
    "assistant_specs",
    "bot_spec",
    "up",
]

DEPLOYMENT = "docs-bot"
ASSISTANT = "assistant"
ASSISTANT_LLM = "assistant-llm"
ASSISTANT_QUESTION = "Which deployments does this project have?"
KB = "docs"
PROMPT = "qa"
DEMO_KEY = "demo"
UPSTREAM_SECRET = "upstream-key"  # the project secret --upstream-key-env's value goes to
QUESTION = "How do I run the tests?"
ROOT = Path(__file__).resolve().parents[2]


@app.command()
def up(
    project: str = typer.Option("demo", help="The project it creates or reuses."),
    host: str = typer.Option("127.0.0.1", help="Address the gateway listens on."),
    port: int = typer.Option(4000, help="Port the gateway listens on."),
    model: Path | None = typer.Option(
        None, "--model", help="A local Hugging Face model directory for the bot's answers."
    ),
    upstream: str | None = typer.Option(
        None, "--upstream", help="An OpenAI-compatible server (…/v1) for the bot's answers."
    ),
    upstream_model: str | None = typer.Option(
        None, "--upstream-model", help="The upstream's model name (default: its first)."
    ),
    upstream_key_env: str | None = typer.Option(
        None,
        "--upstream-key-env",
        help="The variable of your shell that holds the upstream's API key (stored as the "
        f"project secret {UPSTREAM_SECRET!r}; the gateway never reads the variable).",
    ),
    docs: list[Path] = typer.Option(
        [], "--docs", help="Files or folders for the knowledge base (default: this project's)."
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Run the gateway after the set-up (--no-serve: print)."
    ),
) -> None:
    """Set up the demo project and its knowledge bot, print how to call it, run the gateway."""
    if model is not None and upstream is not None:
        raise UsageError("give --model or --upstream, not both")
    if model is not None and not model.is_dir():
        raise UsageError(f"--model {model}: no such directory (a local Hugging Face model)")
    if model is not None:
        _allow_local_model(model)
    from genai import init

    result = init(settings())
    console.print(f"[green]✓[/] metadata store at revision {result.revision} ({result.database})")
    with client() as c:
        _project(c, project)
        key = _key(c, project)
        _knowledge_base(c, project, docs or _project_docs())
        _prompt(c, project)
        _dlp(c, project)
        _cache(c, project)
        llm = _llm(c, project, model, upstream, upstream_model, upstream_key_env)
        _apply(c, project, DEPLOYMENT, bot_spec(llm), f"a knowledge bot over {KB}", llm)
        for name, spec in assistant_specs(llm, project).items():
            _apply(c, project, name, spec, _WHAT[name], llm)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}"
    _print_calls(base, key.secret, project)
    _print_hub(base, project)
    if not serve:
        _print_usage(project)
        allow = ""
        if model is not None:  # the gateway must be told it may run this model
            allow = (
                f"GENAI_INPROCESS_BACKENDS={os.environ['GENAI_INPROCESS_BACKENDS']} "
                f"GENAI_MODEL_ROOTS={os.environ['GENAI_MODEL_ROOTS']} "
            )
        console.print(
            f"start the gateway with `{allow}genai gateway --port {port}` (or `genai up` "
            f"without --no-serve); then `genai usage report -p {project}` shows the calls"
        )
        return
    from apps.cli._gateway import gateway

    console.print("\nstarting the gateway (Ctrl-C stops it)…")
    threading.Thread(
        target=_first_call, args=(base, key.secret, project), name="up-call", daemon=True
    ).start()
    gateway(host=host, port=port, workers=1, access_log=True)


# ---------------------------------------------------------------- set-up steps


def _allow_local_model(model: Path) -> None:
    """``--model DIR``: the operator, on their own machine, lets the gateway this command
    starts run ``transformers`` on DIR (deployments may not name in-process backends or
    model files the operator did not allow: GENAI_INPROCESS_BACKENDS, GENAI_MODEL_ROOTS)."""
    backends = [b for b in os.environ.get("GENAI_INPROCESS_BACKENDS", "").split(",") if b]
    backends = backends or ["extractive", "fake"]
    roots = [r for r in os.environ.get("GENAI_MODEL_ROOTS", "").split(",") if r]
    os.environ["GENAI_INPROCESS_BACKENDS"] = ",".join(dict.fromkeys([*backends, "transformers"]))
    os.environ["GENAI_MODEL_ROOTS"] = ",".join(dict.fromkeys([*roots, str(model.resolve())]))


def _project(c: Client, project: str) -> None:
    try:
        c.projects.create(project, description="created by `genai up`")
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


def _project_docs() -> list[Path]:
    """This project's documentation: the README and ``docs/`` of the source tree."""
    found = [p for p in (ROOT / "README.md", ROOT / "docs") if p.exists()]
    if not found:
        raise UsageError(
            "no documentation found next to the installed package (README.md, docs/): "
            "give the knowledge base's files with --docs PATH"
        )
    return found


def _knowledge_base(c: Client, project: str, paths: list[Path]) -> None:
    from rag import KnowledgeBases

    kb = KnowledgeBases(c).create(
        project, KB, description="this project's documentation", exist_ok=True
    )
    report = kb.ingest(paths, progress=True)
    counts = (
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.deleted)} deleted, {len(report.unchanged)} unchanged"
    )
    console.print(f"[green]✓[/] knowledge base {KB} (version {report.version}): {counts}")


def _prompt(c: Client, project: str) -> None:
    from apps._knowledge import DEFAULT_PROMPT
    from prompts import PromptHub

    hub = PromptHub(c, project)
    version = hub.push(PROMPT, DEFAULT_PROMPT, message="genai up: the knowledge bot's prompt")
    if "production" not in version.labels:
        hub.label(version.ref, "production")
    console.print(f"[green]✓[/] prompt {version.ref} at production")


def _dlp(c: Client, project: str) -> None:
    from genai.dlp import Policy, ProjectPolicies

    policies = ProjectPolicies(c)
    if policies.get(project) is None:
        policies.set(project, Policy())
    console.print("[green]✓[/] DLP: personal data is pseudonymised before any model sees it")


def _cache(c: Client, project: str) -> None:
    """The semantic cache, on for the bot (a project's cache is off unless turned on)."""
    from cache import ProjectCaches

    caches = ProjectCaches(c)
    if caches.options(project).settings(DEPLOYMENT) is None:
        caches.enable(project, DEPLOYMENT)
    console.print(f"[green]✓[/] the semantic cache is on for {DEPLOYMENT}")


def _llm(
    c: Client,
    project: str,
    model: Path | None,
    upstream: str | None,
    upstream_model: str | None,
    key_env: str | None,
) -> dict[str, Any]:
    """The bot's LLM. An upstream's key is read from ``key_env`` here, in the user's shell,
    and stored as a project secret the bot refers to by name."""
    if model is not None:
        return {"backend": "transformers", "options": {"model": str(model.resolve())}}
    if upstream is not None:
        value = os.environ.get(key_env) if key_env else None
        if key_env and not value:
            raise UsageError(
                f"--upstream-key-env {key_env}: that variable is not set (or empty) in "
                "this shell: export the upstream's key in it first"
            )
        url = upstream.rstrip("/")
        llm: dict[str, Any] = {"url": url, "model": upstream_model or _first_model(url, value)}
        if key_env and value:
            c.secrets.set(project, UPSTREAM_SECRET, value)
            console.print(
                f"[green]✓[/] the upstream's key (from ${key_env}) is the project secret "
                f"{UPSTREAM_SECRET}"
            )
            llm["api_key_secret"] = UPSTREAM_SECRET
        return llm
    return {"backend": "extractive"}


def _first_model(url: str, key: str | None) -> str:
    """The upstream's first model (what the bot would answer with by default): the project
    assistant's model deployment names its model."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        reply = httpx.get(f"{url}/models", headers=headers, timeout=10)
        reply.raise_for_status()
        return str(reply.json()["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise UsageError(
            f"--upstream {url}: its /models did not name a model ({exc}); give the model "
            "with --upstream-model NAME"
        ) from exc


def bot_spec(llm: dict[str, Any]) -> dict[str, Any]:
    """The ``docs-bot`` deployment: the knowledge bot over ``docs`` with ``qa@production``."""
    options = {"kb": KB, "prompt": f"{PROMPT}@production", "llm": llm}
    return {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": options}]}


_WHAT = {
    ASSISTANT_LLM: "the project assistant's model",
    ASSISTANT: "the project assistant (an agent with read-only platform tools)",
}

ASSISTANT_INSTRUCTIONS = """\
You are the assistant of the AI project {project}. Answer questions about the project's \
deployments, adapters, evaluation runs, lineage and usage, and about the platform from its \
documentation, with the tools: they read only, with the caller's permissions. Cite \
documentation passages as [n]. For an adapter's model card, call adapter_card and write \
the card from its facts only. Say so when the tools do not answer the question."""


def assistant_specs(llm: dict[str, Any], project: str) -> dict[str, dict[str, Any]]:
    """The project assistant: its model (a deployment of the bot's LLM) and the agent."""
    if "url" in llm:
        target: dict[str, Any] = {"name": "llm", **llm}
    else:
        target = {"name": "llm", "backend": llm["backend"], "options": llm.get("options", {})}
    kinds = ["deployments", "adapters", "eval_runs", "lineage", "adapter_card", "usage"]
    agent = {
        "name": ASSISTANT,
        "model": ASSISTANT_LLM,
        "instructions": ASSISTANT_INSTRUCTIONS.format(project=project),
        "tools": [{"platform": "kb_search", "kb": KB}, *({"platform": k} for k in kinds)],
        "budget": {"max_steps": 6, "max_tool_calls": 8},
    }
    return {
        ASSISTANT_LLM: {"targets": [target]},
        ASSISTANT: {
            "targets": [{"name": "agent", "backend": "agent", "options": {"agent": agent}}]
        },
    }


def _apply(
    c: Client, project: str, name: str, spec: dict[str, Any], what: str, llm: dict[str, Any]
) -> None:
    """A deployment, applied only when its newest revision serves something else."""
    from apps.deployments import apply_spec
    from genai.gateway import parse_spec

    wanted = parse_spec(spec).model_dump(mode="json", exclude_unset=True)
    try:
        current = c.registry.deployments.get(project, name)
    except NotFoundError:
        current = None
    if current is not None and current.spec == wanted:
        revision = current
    else:
        revision = apply_spec(c, project, name, spec, description=f"genai up: {what}")
    answering = llm.get("backend") or llm.get("url")
    console.print(
        f"[green]✓[/] deployment {name} (revision {revision.version}): {what}, answering "
        f"with {answering}"
    )


# ---------------------------------------------------------------- what it prints


def _print_calls(base: str, secret: str, project: str) -> None:
    """The URL, the key, and a curl and an openai-SDK call that work as printed."""
    body = {"model": DEPLOYMENT, "messages": [{"role": "user", "content": QUESTION}]}
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
            f'    model="{DEPLOYMENT}",',
            f'    messages=[{{"role": "user", "content": "{QUESTION}"}}],',
            ")",
            "print(answer.choices[0].message.content)",
            'for cited in answer.model_extra["citations"]:',
            "    print(f\"[{cited['number']}] {cited['label']}\")",
        ]
    )
    console.print(f"\nthe gateway: {base}/v1  (admin API: {base}/api, its docs: {base}/docs)")
    console.print(f"project: {project}   model: {DEPLOYMENT}")
    console.print("your key (shown once):")
    _plain(secret)
    console.print("\ntry it with curl:")
    _plain(curl)
    console.print("\nor with the openai SDK (pip install openai):")
    _plain(python)
    assistant = "\n".join(
        [
            "from openai import OpenAI",
            "",
            f'client = OpenAI(base_url="{base}/v1", api_key="{secret}")',
            "answer = client.chat.completions.create(",
            f'    model="{ASSISTANT}",',
            f'    messages=[{{"role": "user", "content": "{ASSISTANT_QUESTION}"}}],',
            ")",
            "print(answer.choices[0].message.content)",
            'print(answer.model_extra["agent_run"]["status"])',
        ]
    )
    console.print(f"\nthe project assistant, an agent over this project (model {ASSISTANT}):")
    _plain(assistant)
    console.print("")


def _print_hub(base: str, project: str) -> None:
    """The Hub's URL, and a one-time sign-in link for the local user (as Jupyter's)."""
    from apps.hub import HUB_PREFIX, sign_in_link

    link = sign_in_link(settings(), project, base_url=base)
    console.print(
        f"the Hub (the web UI): {base}{HUB_PREFIX}/ — sign in with the key above, or open "
        "this link once (within 15 minutes):"
    )
    _plain(link)
    console.print("")


def _plain(text: str) -> None:
    """Printed as it is: no markup, no colours, no wrapping (so it can be copied)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _first_call(base: str, secret: str, project: str) -> None:
    """Once the gateway answers: the printed question, the bot's answer and citations, and
    the usage report that call made, so the tour ends with something real in the ledger."""
    import httpx

    deadline = time.monotonic() + 180
    with httpx.Client(base_url=base, timeout=120) as http:
        while True:
            try:
                if http.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                console.print("[red]✗[/] the gateway did not come up within 180 s")
                return
            time.sleep(0.2)
        reply = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={"model": DEPLOYMENT, "messages": [{"role": "user", "content": QUESTION}]},
        )
        if reply.status_code != 200:
            console.print(f"[red]✗[/] the first call failed ({reply.status_code}): {reply.text}")
            return
        body = reply.json()
        _plain(f"\nQ: {QUESTION}")
        _plain(f"A: {body['choices'][0]['message']['content']}")
        for cited in body.get("citations", []):
            _plain(f"   [{cited['number']}] {cited['label']}")
        asked = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {secret}"},
            json={
                "model": ASSISTANT,
                "messages": [{"role": "user", "content": ASSISTANT_QUESTION}],
            },
        )
    if asked.status_code != 200:
        console.print(f"[red]✗[/] the assistant failed ({asked.status_code}): {asked.text}")
        return
    answer = asked.json()
    run = answer["agent_run"]
    _plain(f"\nQ ({ASSISTANT}): {ASSISTANT_QUESTION}")
    _plain(f"A: {answer['choices'][0]['message']['content']}")
    _plain(f"   (agent run {run['id']}: {run['status']}, {run['steps']} steps)")
    _print_usage(project, wait_for=1 + 1 + run["steps"])


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
