"""``genai serve``: an OpenAI-compatible model server for one backend and its adapters."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import typer

from apps.cli._app import app, settings
from apps.cli._output import console
from genai import connect
from genai.errors import GenAIError, ValidationError
from genai.models import backend_names, create_backend

__all__ = ["serve", "serve_backend"]


def _adapter_pairs(items: list[str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValidationError(
                f"--adapter {item!r}: write NAME=DIR or NAME=adapter:REF", field="adapter"
            )
        if name in pairs:
            raise ValidationError(f"--adapter {name} is given twice", field="adapter")
        pairs[name] = path
    return pairs


@app.command()
def serve(
    model: str | None = typer.Option(
        None, "--model", "-m", help="A model directory, or model:NAME[@VERSION] with --project."
    ),
    adapter: list[str] = typer.Option(
        [], "--adapter", "-a", help="NAME=DIR or NAME=adapter:REF, repeatable."
    ),
    backend: str = typer.Option(
        "transformers",
        help="transformers, openai, vllm, extractive, fake (scripted, for tests) or a plug-in's.",
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    max_batch_size: int = typer.Option(16, min=1, help="Most requests decoded together."),
    max_wait_ms: float = typer.Option(5.0, min=0, help="How long a batch waits for company."),
    device: str = typer.Option("auto", help="auto, cpu or cuda (transformers)."),
    dtype: str = typer.Option("auto", help="auto, float32, float16, bfloat16 (transformers)."),
    served_model_name: str | None = typer.Option(None, help="The model id clients use."),
    chat_template: Path | None = typer.Option(None, help="A Jinja chat template file."),
    tool_parser: str | None = typer.Option(
        None, help="hermes, llama3_json or mistral (default: the chat template's format)."
    ),
    upstream: str | None = typer.Option(None, help="The OpenAI-compatible URL (openai backend)."),
    project: str | None = typer.Option(
        None, "--project", "-p", envvar="GENAI_PROJECT", help="Resolve registry references here."
    ),
) -> None:
    """Serve a model (and LoRA adapters) over OpenAI's API, as vLLM's server does."""
    if backend not in backend_names():
        raise ValidationError(
            f"unknown backend {backend!r}: use one of {', '.join(backend_names())}"
        )
    serve_backend(
        backend=backend,
        model=model,
        adapters=_adapter_pairs(adapter),
        host=host,
        port=port,
        options={
            "max_batch_size": max_batch_size,
            "max_wait_ms": max_wait_ms,
            "device": device,
            "dtype": dtype,
            "served_name": served_model_name,
            "chat_template": chat_template.read_text() if chat_template else None,
            "tool_parser": tool_parser,
        },
        upstream=upstream,
        project=project,
    )


def serve_backend(
    *,
    backend: str,
    model: str | None,
    adapters: dict[str, str],
    host: str,
    port: int,
    options: dict[str, Any],
    upstream: str | None,
    project: str | None,
) -> None:
    import uvicorn

    from genai.serving import RegistrySource, ServerMetrics, create_app

    metrics = ServerMetrics()
    source = None
    refs = (model or "").startswith("model:") or any(
        p.startswith("adapter:") for p in adapters.values()
    )
    if refs:
        if project is None:
            raise ValidationError(
                "registry references need --project (or GENAI_PROJECT)", field="project"
            )
        source = RegistrySource(connect(settings()), project)
    if backend == "transformers":
        if not model:
            raise ValidationError("the transformers backend needs --model DIR", field="model")
        model_dir = (
            source.model_dir(model) if source and model.startswith("model:") else Path(model)
        )
        if source and not model.startswith("model:"):
            source.serve_directory(model_dir)
        local = {
            name: asyncio.run(source.adapter_dir(p)) if source else p
            for name, p in adapters.items()
        }
        llm = create_backend(
            "transformers", model=model_dir, adapters=local, on_step=metrics.observe_step, **options
        )
    elif backend == "openai":
        if not upstream:
            raise ValidationError("the openai backend needs --upstream URL", field="upstream")
        llm = create_backend("openai", base_url=upstream, model=model)
    elif backend == "vllm":
        if not model:
            raise ValidationError("the vllm backend needs --model", field="model")
        llm = create_backend(
            "vllm", model=model, adapters=adapters, served_name=options["served_name"]
        )
    else:
        llm = create_backend(backend)
    app_ = create_app(llm, metrics=metrics, resolve_adapter=source.adapter_dir if source else None)
    server = uvicorn.Server(uvicorn.Config(app_, host=host, port=port, log_level="warning"))
    quiet = _QuietStartupFailure()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    console.print(f"[green]✓[/] serving {backend} on http://{host}:{port}/v1 (Ctrl-C stops)")
    try:
        server.run()
    except SystemExit:  # uvicorn exits this way when the app fails to start
        if app_.state.startup_error is None:
            raise
    if app_.state.startup_error is not None:
        raise app_.state.startup_error  # the CLI prints it in one line and exits 1
    if not server.started:
        raise ValidationError(f"the server could not start on {host}:{port}: {quiet.reason}")


class _QuietStartupFailure(logging.Filter):
    """Keeps uvicorn from printing a traceback for a startup failure the CLI reports itself."""

    def __init__(self) -> None:
        super().__init__()
        self.reason = "see the log above"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], GenAIError):
            return False
        message = record.getMessage()
        if "Application startup failed" in message:
            return False
        if message.startswith("Traceback") and "genai.errors." in message:
            return False
        if record.levelno >= logging.ERROR and "address already in use" in message.lower():
            self.reason = message
        return True
