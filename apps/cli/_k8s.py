"""``genai k8s crd|render|operator``: deployments on Kubernetes (vLLM with LoRA adapters).

``crd`` prints the GenAIDeployment CustomResourceDefinition, ``render`` the manifests of a
spec (resolved against the project's registry: tenancy, adapter bases and ranks, the GPU
quota), ``operator`` runs the kopf operator. The pods' own commands (``fetch``, ``agent``)
and the platform's manifests (``platform``) are in ``_k8s_pod.py`` and ``_k8s_platform.py``.
Needs the ``k8s`` extra for the operator.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import typer

from apps.cli._app import ProjectOpt, app, client
from apps.cli._output import console
from genai.deploy import PLATFORM_IMAGE, parse_k8s_spec
from genai.errors import ValidationError
from genai.settings import Settings

__all__ = ["k8s_app"]

k8s_app = typer.Typer(
    help="Kubernetes: the GenAIDeployment CRD, rendered manifests, the operator.",
    no_args_is_help=True,
)
app.add_typer(k8s_app, name="k8s")


@k8s_app.command("crd")
def crd_() -> None:
    """Print the GenAIDeployment CustomResourceDefinition (kubectl apply -f -)."""
    from genai.deploy import crd, dump_yaml

    sys.stdout.write(dump_yaml([crd()]))


@k8s_app.command("render")
def render(
    file: Path = typer.Argument(..., help="The spec: a GenAIDeployment resource, or its spec."),
    project: str = ProjectOpt,
    name: str | None = typer.Option(
        None, "--name", "-n", help="The deployment (default: the resource's metadata.name)."
    ),
    namespace: str | None = typer.Option(
        None, help="Its namespace (default: the resource's, else genai-PROJECT)."
    ),
    artifacts_url: str | None = typer.Option(
        None,
        help="Where pods read the artifact store (s3://..., gs://...); default: "
        "GENAI_ARTIFACT_ROOT when it is such a URL.",
    ),
    fmt: str = typer.Option("k8s", "--format", help="k8s (what the operator applies) or kserve."),
    image: str = typer.Option(PLATFORM_IMAGE, help="The platform image of the pods' agent."),
    gateway_namespace: str = typer.Option("genai-system", help="The gateway's namespace."),
) -> None:
    """Print the manifests of a spec, resolved against the project's registry (its models
    and adapters, their bases and ranks, the project's GPU quota)."""
    from apps.cli._deploy import load_spec
    from genai.deploy import ClientRegistry, desired_objects, dump_yaml, kserve_manifests, resolve

    if fmt not in ("k8s", "kserve"):
        raise ValidationError(f"--format {fmt!r}: use k8s or kserve", field="format")
    data = load_spec(file)
    meta = data.get("metadata") or {} if data.get("kind") == "GenAIDeployment" else {}
    spec = parse_k8s_spec(_with_project(data, project))
    with client() as c:
        resolved = resolve(
            ClientRegistry(c),
            spec,
            name=name or str(meta.get("name") or "") or _missing_name(file),
            namespace=namespace or str(meta.get("namespace") or "") or _namespace(project),
            artifacts_url=artifacts_url if artifacts_url is not None else _remote(c.settings),
            platform_image=image,
            gateway_namespace=gateway_namespace,
        )
    manifests = kserve_manifests(resolved) if fmt == "kserve" else desired_objects(resolved)
    sys.stdout.write(dump_yaml(manifests))


@k8s_app.command("operator")
def operator(
    namespace: list[str] = typer.Option(
        [], "--namespace", help="Watch only these namespaces (repeat); default: all."
    ),
    kubeconfig: str | None = typer.Option(None, help="Outside a cluster: this kubeconfig."),
    context: str | None = typer.Option(None, help="The kubeconfig's context."),
    artifacts_url: str | None = typer.Option(
        None, help="Where pods read the artifact store; default: GENAI_ARTIFACT_ROOT."
    ),
    image: str = typer.Option(PLATFORM_IMAGE, help="The platform image of the pods' agent."),
    gateway_namespace: str = typer.Option("genai-system", help="The gateway's namespace."),
    allowed_image: list[str] = typer.Option(
        ["vllm/vllm-openai:"],
        "--allowed-image",
        help="An image prefix resources may name for vLLM (repeat); default: vLLM's own.",
    ),
    resync: float = typer.Option(30.0, help="Seconds between re-observations of each resource."),
    liveness: str | None = typer.Option(
        None, help="Serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz."
    ),
) -> None:
    """Run the GenAIDeployment operator (kopf) until interrupted."""
    from apps.k8s import KubeApi, Operator, OperatorConfig, run_operator

    async def main() -> None:
        kube = KubeApi.from_config(kubeconfig=kubeconfig, context=context)
        with client() as c:
            config = OperatorConfig(
                artifacts_url=artifacts_url if artifacts_url is not None else _remote(c.settings),
                platform_image=image,
                gateway_namespace=gateway_namespace,
                allowed_images=tuple(allowed_image),
            )
            op = Operator(kube, c, config)
            console.print(
                f"[green]✓[/] operator watching {', '.join(namespace) or 'every namespace'}"
            )
            try:
                await run_operator(
                    op, namespaces=namespace or None, resync_s=resync, liveness_endpoint=liveness
                )
            finally:
                await op.aclose()
                await kube.aclose()

    asyncio.run(main())


def _with_project(data: dict[str, Any], project: str) -> dict[str, Any]:
    """The spec, with the project of ``-p`` (which it must not contradict)."""
    spec = data.get("spec") if data.get("kind") == "GenAIDeployment" else data
    if not isinstance(spec, dict):
        raise ValidationError("the file holds no GenAIDeployment spec (a mapping)", field="spec")
    given = spec.get("project")
    if given is not None and given != project:
        raise ValidationError(
            f"the spec's project is {given!r} and -p says {project!r}: they must agree",
            field="spec.project",
        )
    return {**spec, "project": project}


def _missing_name(file: Path) -> str:
    raise ValidationError(
        f"{file}: give the deployment's name (--name NAME, or metadata.name in the resource)",
        field="name",
    )


def _namespace(project: str) -> str:
    cleaned = "".join(c if c.isalnum() else "-" for c in project.lower()).strip("-")
    return f"genai-{cleaned}"[:63].rstrip("-")


def _remote(settings: Settings) -> str:
    """The artifact root when pods can read it (a URL), else '' (resolve says what to do)."""
    root = settings.artifact_root or ""
    return root if "://" in root and not root.startswith("file://") else ""
