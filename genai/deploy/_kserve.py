"""The KServe equivalent of a GenAIDeployment: one ``LLMInferenceService`` per revision.

``genai k8s render --format kserve`` writes these for a cluster that runs KServe instead of
the platform's operator. The fields are those of KServe's ``serving.kserve.io/v1alpha1``
``LLMInferenceService`` as released in v0.16 (and kept in v0.17): ``spec.model.uri``,
``spec.model.name``, ``spec.model.lora.adapters[]`` (each an ``LLMModelSpec``: ``uri``,
``name``), ``spec.replicas`` and ``spec.template`` (a PodSpec merged over KServe's
``kserve-config-llm-template``, whose serving container is called ``main`` and runs
``vllm serve /mnt/models``). A revision's vLLM flags go in that container's ``args``, which
replace the template's, so the list repeats ``--served-model-name`` and ``--port``.

The model's ``uri`` is ``hf://ORG/NAME`` for a Hugging Face model, and for a model stored in
the platform's artifact store the URL of its directory manifest in that store; adapters
always live in the store and get the same kind of URL.

What the export cannot express, and what a KServe user does instead:

* Traffic between revisions: the gateway's weights, A/B and bandit policies, sticky header,
  retries and circuit breaker have no field in v0.16's ``LLMInferenceService``. Each revision
  is a service of its own; split traffic with a Gateway API ``HTTPRoute`` whose
  ``backendRefs`` carry the weights (KServe's ``router.route.http.refs`` points the service
  at a route you manage), or keep the platform's gateway in front of the KServe services.
* The shadow revision: exported as a service like the others (labelled
  ``genai.dev/shadow: "true"``) that nothing routes to; mirror requests to it with an
  ``HTTPRoute`` ``RequestMirror`` filter (sampling needs Gateway API's ``percent`` field).
* The adapter agent: the platform loads and unloads adapters on running pods without a
  restart; KServe v0.16/v0.17 do not act on ``model.lora.adapters`` (later versions download
  them). The export lists them and starts vLLM with ``--enable-lora`` and runtime LoRA
  updating enabled, so a user loads them with vLLM's ``POST /v1/load_lora_adapter``, or
  mounts them and adds ``--lora-modules NAME=PATH``; changing that list restarts the pods.
* Artifact-store URIs: KServe's storage initializer copies a URI's objects as they are, and
  the platform's store is content-addressed (a manifest and blobs), so a stored model or
  adapter must first be copied to a plain prefix (``genai`` download, then e.g.
  ``aws s3 sync``) and its ``uri`` replaced.
* Autoscaling: v0.16 has no autoscaler field; ``replicas`` is the minimum (one for a
  scale-to-zero deployment), and the HPA or KEDA ScaledObject that
  ``genai k8s render`` writes can target the Deployment KServe creates.
* The project's GPU quota (a ResourceQuota), NetworkPolicy, PodDisruptionBudget and
  ServiceMonitor: apply those from ``genai k8s render`` alongside, or KServe's own.

A pure function of a :class:`ResolvedDeployment`: the same input gives the same manifests,
named ``<deployment>-<revision>`` like the operator's objects, in the spec's revision order.
"""

from __future__ import annotations

from typing import Any

from genai.deploy._manifests import container_resources, engine_args, gpu_placement
from genai.deploy._objects import GROUP, number_text, object_name
from genai.deploy._resolve import ResolvedDeployment, ResolvedRevision

__all__ = ["KSERVE_API_VERSION", "kserve_manifests"]

KSERVE_API_VERSION = "serving.kserve.io/v1alpha1"
Manifest = dict[str, Any]


def kserve_manifests(resolved: ResolvedDeployment) -> list[Manifest]:
    """One ``LLMInferenceService`` per revision (live ones, then the shadow)."""
    return [_service(resolved, revision) for revision in resolved.revisions]


def artifact_uri(resolved: ResolvedDeployment, digest: str) -> str:
    """Where a stored directory's manifest lives in the artifact store, as pods see it."""
    return f"{resolved.artifacts_url.rstrip('/')}/sha256/{digest[:2]}/{digest}"


def _model_uri(resolved: ResolvedDeployment, revision: ResolvedRevision) -> str:
    model = revision.model
    return artifact_uri(resolved, model.artifact) if model.artifact else f"hf://{model.source}"


def _labels(resolved: ResolvedDeployment, revision: ResolvedRevision) -> dict[str, str]:
    found = {
        "app.kubernetes.io/part-of": "genai",
        "app.kubernetes.io/instance": object_name(resolved, revision),
        f"{GROUP}/project": _label_value(resolved.spec.project),
        f"{GROUP}/deployment": resolved.name,
        f"{GROUP}/revision": revision.name,
    }
    if revision.shadow_sample is not None:
        found[f"{GROUP}/shadow"] = "true"
    return found


def _label_value(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in text)[:63]
    return cleaned.strip("._-") or "none"


def _annotations(resolved: ResolvedDeployment, revision: ResolvedRevision) -> dict[str, str]:
    found = {
        f"{GROUP}/model": revision.model.label,
        f"{GROUP}/adapters": ",".join(a.label for a in revision.adapters),
        f"{GROUP}/weight": number_text(revision.weight),
    }
    if revision.shadow_sample is not None:
        found[f"{GROUP}/shadow-sample"] = number_text(revision.shadow_sample)
    return found


def _template(resolved: ResolvedDeployment, revision: ResolvedRevision) -> dict[str, Any]:
    main: dict[str, Any] = {
        "name": "main",
        "image": revision.image,
        "args": engine_args(resolved, revision),
        "env": [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}],
        "resources": container_resources(resolved),
    }
    return {"containers": [main], **gpu_placement(resolved)}


def _service(resolved: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    model: dict[str, Any] = {
        "uri": _model_uri(resolved, revision),
        "name": revision.model.served_name,
    }
    if revision.adapters:
        model["lora"] = {
            "adapters": [
                {"uri": artifact_uri(resolved, a.artifact), "name": a.name}
                for a in revision.adapters
            ]
        }
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "LLMInferenceService",
        "metadata": {
            "name": object_name(resolved, revision),
            "namespace": resolved.namespace,
            "labels": _labels(resolved, revision),
            "annotations": _annotations(resolved, revision),
        },
        "spec": {
            "model": model,
            "replicas": max(resolved.spec.autoscaling.min_replicas, 1),
            "template": _template(resolved, revision),
        },
    }
