"""``genai k8s fetch|agent``: the commands a GenAIDeployment's pods run.

``fetch`` is the init container that puts a stored model directory on the pod's volume
before vLLM starts; ``agent`` is the sidecar that loads and unloads LoRA adapters in the
running vLLM when the operator asks (see :mod:`genai.deploy._agent`).
"""

from __future__ import annotations

from pathlib import Path

import typer

from apps.cli._k8s import k8s_app
from apps.cli._output import console
from genai.deploy import AGENT_PORT, VLLM_PORT

__all__ = ["agent", "fetch"]

ArtifactsUrlOpt = typer.Option(
    ...,
    "--artifacts-url",
    envvar="GENAI_ARTIFACTS_URL",
    help="The artifact store's root as the pod reads it (s3://, gs://, az://, a directory).",
)


@k8s_app.command("fetch")
def fetch(
    artifacts_url: str = ArtifactsUrlOpt,
    digest: str = typer.Option(..., "--digest", help="The stored directory's sha256."),
    to: Path = typer.Option(..., "--to", help="Where the directory goes (kept if complete)."),
) -> None:
    """Put a stored directory at --to, atomically, every file checked (an init container)."""
    from genai.deploy import fetch_artifact

    path = fetch_artifact(artifacts_url, digest, to)
    console.print(f"[green]✓[/] artifact {digest[:12]}… at {path}")


@k8s_app.command("agent")
def agent(
    artifacts_url: str = ArtifactsUrlOpt,
    adapters_dir: Path = typer.Option(
        Path("/adapters"), "--dir", help="The volume vLLM reads adapters from."
    ),
    vllm: str = typer.Option(
        f"http://127.0.0.1:{VLLM_PORT}", "--vllm", help="The pod's vLLM OpenAI server."
    ),
    port: int = typer.Option(AGENT_PORT, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("0.0.0.0", "--host", help="Address to listen on."),
) -> None:
    """Serve the adapter agent: load and unload LoRA adapters in the running vLLM."""
    from genai.deploy import serve_agent

    console.print(f"adapter agent for {vllm} on {host}:{port}, adapters in {adapters_dir}")
    serve_agent(
        artifacts_url=artifacts_url, adapters_dir=adapters_dir, vllm_url=vllm, host=host, port=port
    )
