"""``genai k8s platform``: the platform's own manifests (gateway, PostgreSQL, Redis, Chroma,
the operator), printed as YAML or written as a kustomize base.

A managed service is named, never its URL: ``--managed-postgres`` means the URL is the key
``GENAI_DATABASE_URL`` of the Secret ``genai-platform``; ``--postgres-url-secret NAME/KEY``
names another key. No password is taken on the command line or written in a manifest; the
Secrets the pods read are listed on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from apps.cli._k8s import k8s_app
from apps.cli._output import console, err
from genai.deploy import (
    PLATFORM_IMAGE,
    PLATFORM_SECRET,
    URL_ENV,
    PlatformOptions,
    SecretRef,
    dump_yaml,
    platform_manifests,
    required_secrets,
    write_kustomize,
)

__all__ = ["platform"]


def _ref(service: str, managed: bool, secret: str | None) -> SecretRef | None:
    """Where a managed service's URL is: the named key, or its key in the platform Secret."""
    if secret is not None:
        return SecretRef.parse(secret)
    return SecretRef(name=PLATFORM_SECRET, key=URL_ENV[service]) if managed else None


@k8s_app.command("platform")
def platform(
    namespace: str = typer.Option("genai-system", help="The platform's namespace."),
    workers: int = typer.Option(2, help="Worker processes per gateway pod."),
    replicas: int = typer.Option(2, help="Gateway pods."),
    image: str = typer.Option(PLATFORM_IMAGE, help="The platform's image."),
    managed_postgres: bool = typer.Option(
        False, help=f"A managed PostgreSQL: its URL is GENAI_DATABASE_URL in {PLATFORM_SECRET}."
    ),
    postgres_url_secret: str | None = typer.Option(
        None, metavar="SECRET/KEY", help="A managed PostgreSQL whose URL is in this Secret key."
    ),
    managed_redis: bool = typer.Option(
        False, help=f"A managed Redis: its URL is GENAI_REDIS_URL in {PLATFORM_SECRET}."
    ),
    redis_url_secret: str | None = typer.Option(
        None, metavar="SECRET/KEY", help="A managed Redis whose URL is in this Secret key."
    ),
    managed_chroma: bool = typer.Option(
        False, help=f"A managed Chroma: its URL is GENAI_CHROMA_URL in {PLATFORM_SECRET}."
    ),
    chroma_url_secret: str | None = typer.Option(
        None, metavar="SECRET/KEY", help="A managed Chroma whose URL is in this Secret key."
    ),
    artifact_root: str | None = typer.Option(
        None, help="The artifact store's URL (s3://bucket/path, gs://...)."
    ),
    storage_class: str | None = typer.Option(None, help="StorageClass of the volumes."),
    postgres_storage: str = typer.Option("20Gi", help="PostgreSQL's volume."),
    chroma_storage: str = typer.Option("20Gi", help="Chroma's volume."),
    operator: bool = typer.Option(True, help="Run the GenAIDeployment operator (and its CRD)."),
    admin: str = typer.Option(
        "platform-admin", help="The first platform admin (genai init); the operator acts as it."
    ),
    out: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Write a kustomize base into DIR instead of printing."
    ),
) -> None:
    """Print the platform's manifests (or write a kustomize base): gateway, data services,
    operator."""
    options = PlatformOptions(
        namespace=namespace,
        image=image,
        gateway_workers=workers,
        gateway_replicas=replicas,
        postgres_url_secret=_ref("postgres", managed_postgres, postgres_url_secret),
        redis_url_secret=_ref("redis", managed_redis, redis_url_secret),
        chroma_url_secret=_ref("chroma", managed_chroma, chroma_url_secret),
        artifact_root=artifact_root,
        storage_class=storage_class,
        postgres_storage=postgres_storage,
        chroma_storage=chroma_storage,
        operator=operator,
        admin=admin,
    )
    manifests = platform_manifests(options)
    if out is None:
        sys.stdout.write(dump_yaml(manifests))
    else:
        paths = write_kustomize(manifests, out)
        console.print(f"[green]✓[/] kustomize base in {out}: {len(paths) - 1} objects")
    needed = ", ".join(f"{s.name}/{s.key}" for s in required_secrets(options))
    err.print(f"create these Secret keys in {options.namespace} before applying: {needed}")
