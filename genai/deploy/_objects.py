"""Names, labels and metadata every object of a GenAIDeployment carries.

Stable names (``<deployment>-<revision>``), the labels the operator finds its objects by,
and owner references to the resource when it has a uid (``genai k8s render`` of a file has
none).
"""

from __future__ import annotations

from typing import Any

from genai.deploy._resolve import ResolvedDeployment, ResolvedRevision

__all__ = [
    "AGENT_PORT",
    "GROUP",
    "MANAGED_BY",
    "VERSION",
    "VLLM_PORT",
    "Manifest",
    "label_value",
    "labels",
    "metadata",
    "number_text",
    "object_name",
    "selector",
    "service_url",
]

GROUP = "genai.dev"
VERSION = "v1alpha1"
MANAGED_BY = "genai-operator"
VLLM_PORT = 8000
AGENT_PORT = 8081
Manifest = dict[str, Any]


def number_text(value: float) -> str:
    """A number as a manifest string: ``5`` for 5.0, ``0.25`` otherwise."""
    return str(int(value)) if float(value).is_integer() else str(float(value))


def object_name(deployment: ResolvedDeployment, revision: ResolvedRevision) -> str:
    return f"{deployment.name}-{revision.name}"


def service_url(deployment: ResolvedDeployment, revision: ResolvedRevision) -> str:
    """The OpenAI base URL of a revision inside the cluster (the gateway's target)."""
    host = f"{object_name(deployment, revision)}.{deployment.namespace}.svc.cluster.local"
    return f"http://{host}:{VLLM_PORT}/v1"


def labels(
    deployment: ResolvedDeployment, revision: ResolvedRevision | None = None
) -> dict[str, str]:
    found = {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/part-of": "genai",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{GROUP}/project": label_value(deployment.spec.project),
        f"{GROUP}/deployment": deployment.name,
    }
    if revision is not None:
        found["app.kubernetes.io/instance"] = object_name(deployment, revision)
        found[f"{GROUP}/revision"] = revision.name
    return found


def selector(deployment: ResolvedDeployment, revision: ResolvedRevision) -> dict[str, str]:
    return {f"{GROUP}/deployment": deployment.name, f"{GROUP}/revision": revision.name}


def label_value(text: str) -> str:
    """A label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:63]
    return cleaned.strip("._-") or "none"


def metadata(
    deployment: ResolvedDeployment, name: str, revision: ResolvedRevision | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": deployment.namespace,
        "labels": labels(deployment, revision),
    }
    if deployment.uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "GenAIDeployment",
                "name": deployment.name,
                "uid": deployment.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return meta
