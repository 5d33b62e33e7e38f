"""The Kubernetes objects of one revision of a GenAIDeployment, and of the deployment.

Pure functions of a :class:`ResolvedDeployment`: stable names (``<deployment>-<revision>``),
stable labels, every mapping built in one fixed order, so rendering twice gives the same
bytes. A revision runs vLLM's OpenAI server with ``--enable-lora`` and no adapter on its
command line: adapters are loaded at run time through the pod's adapter agent (which fetches
them from the artifact store and calls ``/v1/load_lora_adapter``), so adding or removing one
changes no pod template and restarts no pod.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from genai.deploy._objects import (
    AGENT_PORT,
    GROUP,
    MANAGED_BY,
    VLLM_PORT,
    Manifest,
    label_value,
    labels,
    metadata,
    object_name,
    selector,
)
from genai.deploy._resolve import ResolvedDeployment, ResolvedRevision
from genai.deploy._scaling import hpa, pdb, scaled_object, service_monitor

__all__ = [
    "container_resources",
    "deployment_objects",
    "engine_args",
    "gpu_placement",
    "revision_objects",
]

# ------------------------------------------------------------------ a revision


def revision_objects(deployment: ResolvedDeployment, revision: ResolvedRevision) -> list[Manifest]:
    """Deployment, Service, autoscaler, PodDisruptionBudget and ServiceMonitor."""
    found = [_deployment(deployment, revision), _service(deployment, revision)]
    scaling = deployment.spec.autoscaling
    if scaling.engine == "keda":
        found.append(scaled_object(deployment, revision))
    elif scaling.scales:
        found.append(hpa(deployment, revision))
    found.append(pdb(deployment, revision))
    found.append(service_monitor(deployment, revision))
    return found


def _vllm_args(deployment: ResolvedDeployment, revision: ResolvedRevision) -> list[str]:
    model = revision.model
    uri = f"/models/{model.artifact}" if model.artifact else model.source
    return ["--model", uri, "--host", "0.0.0.0", *engine_args(deployment, revision)]


def engine_args(deployment: ResolvedDeployment, revision: ResolvedRevision) -> list[str]:
    """vLLM's options for a revision, but the model itself (``--model``) and the host."""
    spec = deployment.spec
    args = [
        "--served-model-name",
        revision.model.served_name,
        "--port",
        str(VLLM_PORT),
        "--enable-lora",
        "--max-loras",
        str(spec.lora.max_loras),
        "--max-lora-rank",
        str(spec.lora.max_lora_rank),
        "--max-cpu-loras",
        str(spec.lora.max_cpu_loras_or_default),
        "--tensor-parallel-size",
        str(spec.engine.tensor_parallel_size),
        "--gpu-memory-utilization",
        str(spec.engine.gpu_memory_utilization),
        "--dtype",
        spec.engine.dtype,
    ]
    if revision.model.revision:
        args += ["--revision", revision.model.revision]
    if spec.engine.max_model_len is not None:
        args += ["--max-model-len", str(spec.engine.max_model_len)]
    if spec.engine.quantization is not None:
        args += ["--quantization", spec.engine.quantization]
    return args


def container_resources(deployment: ResolvedDeployment) -> dict[str, Any]:
    """A vLLM container's requests and limits (equal: a GPU pod is not overcommitted)."""
    res = deployment.spec.resources
    amounts: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpus:
        amounts["nvidia.com/gpu"] = str(res.gpus)
    return {"limits": dict(amounts), "requests": dict(amounts)}


def _probe(path: str, port: int, *, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _containers(deployment: ResolvedDeployment, revision: ResolvedRevision) -> list[Manifest]:
    vllm = {
        "name": "vllm",
        "image": revision.image,
        "args": _vllm_args(deployment, revision),
        "env": [
            {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
            {"name": "HF_HOME", "value": "/models/hf"},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        ],
        "envFrom": [{"secretRef": {"name": "genai-hf", "optional": True}}],
        "ports": [{"name": "http", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "resources": container_resources(deployment),
        # loading weights can take many minutes: the startup probe allows 30
        "startupProbe": _probe("/health", VLLM_PORT, period=10, failures=180),
        "readinessProbe": _probe("/health", VLLM_PORT, period=5, failures=3),
        "livenessProbe": _probe("/health", VLLM_PORT, period=15, failures=4),
        "volumeMounts": [
            {"name": "models", "mountPath": "/models"},
            {"name": "adapters", "mountPath": "/adapters"},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
    }
    agent = {
        "name": "adapter-agent",
        "image": deployment.platform_image,
        "command": ["genai", "k8s", "agent"],
        "args": [
            "--artifacts-url",
            deployment.artifacts_url,
            "--dir",
            "/adapters",
            "--vllm",
            f"http://127.0.0.1:{VLLM_PORT}",
            "--port",
            str(AGENT_PORT),
        ],
        "envFrom": [{"secretRef": {"name": "genai-artifacts", "optional": True}}],
        "ports": [{"name": "agent", "containerPort": AGENT_PORT, "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "readinessProbe": _probe("/health", AGENT_PORT, period=10, failures=3),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "adapters", "mountPath": "/adapters"}],
    }
    return [vllm, agent]


def _init_containers(deployment: ResolvedDeployment, revision: ResolvedRevision) -> list[Manifest]:
    if not revision.model.artifact:
        return []
    digest = revision.model.artifact
    return [
        {
            "name": "fetch-model",
            "image": deployment.platform_image,
            "command": ["genai", "k8s", "fetch"],
            "args": [
                "--artifacts-url",
                deployment.artifacts_url,
                "--digest",
                digest,
                "--to",
                f"/models/{digest}",
            ],
            "envFrom": [{"secretRef": {"name": "genai-artifacts", "optional": True}}],
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": [{"name": "models", "mountPath": "/models"}],
        }
    ]


def _pod_spec(deployment: ResolvedDeployment, revision: ResolvedRevision) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "containers": _containers(deployment, revision),
        "volumes": [
            {"name": "models", "emptyDir": {}},
            {"name": "adapters", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}},
        ],
    }
    init = _init_containers(deployment, revision)
    if init:
        pod["initContainers"] = init
    pod.update(gpu_placement(deployment))
    return pod


def gpu_placement(deployment: ResolvedDeployment) -> dict[str, Any]:
    """A pod's node selector (the GPU type) and toleration of GPU nodes' taint."""
    res = deployment.spec.resources
    found: dict[str, Any] = {}
    if res.gpu_type:
        found["nodeSelector"] = {"nvidia.com/gpu.product": res.gpu_type}
    if res.gpus:
        found["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    return found


def _deployment(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    name = object_name(deployment, revision)
    template = {
        "metadata": {
            "labels": labels(deployment, revision),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(VLLM_PORT),
            },
        },
        "spec": _pod_spec(deployment, revision),
    }
    # the hash of what the pods run, so that a change is visible in `kubectl describe`;
    # adapters are not in it: they change on running pods
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]
    template["metadata"]["annotations"][f"{GROUP}/pod-spec-hash"] = digest
    spec: dict[str, Any] = {
        "selector": {"matchLabels": selector(deployment, revision)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": template,
    }
    scaling = deployment.spec.autoscaling
    if not scaling.scales and scaling.engine == "hpa":
        spec["replicas"] = scaling.min_replicas  # else the autoscaler owns the count
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(deployment, name, revision),
        "spec": spec,
    }


def _service(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(deployment, object_name(deployment, revision), revision),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(deployment, revision),
            "ports": [
                {"name": "http", "port": VLLM_PORT, "targetPort": "http", "protocol": "TCP"},
                {"name": "agent", "port": AGENT_PORT, "targetPort": "agent", "protocol": "TCP"},
            ],
        },
    }


# ------------------------------------------------------------------ the deployment


def deployment_objects(deployment: ResolvedDeployment) -> list[Manifest]:
    """The NetworkPolicy of its pods and, when the project has a GPU quota, the namespace's
    ResourceQuota."""
    found = [_network_policy(deployment)]
    if deployment.gpu_quota is not None:
        found.append(_resource_quota(deployment))
    return found


def _network_policy(deployment: ResolvedDeployment) -> Manifest:
    """Only the same namespace, the platform's (gateway and operator) and the monitoring
    namespace reach the pods: not another project's namespace."""

    def ns(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(deployment, deployment.name, None),
        "spec": {
            "podSelector": {"matchLabels": {f"{GROUP}/deployment": deployment.name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {}},
                        ns(deployment.gateway_namespace),
                        ns("monitoring"),
                    ],
                    "ports": [
                        {"port": VLLM_PORT, "protocol": "TCP"},
                        {"port": AGENT_PORT, "protocol": "TCP"},
                    ],
                }
            ],
        },
    }


def _resource_quota(deployment: ResolvedDeployment) -> Manifest:
    """The project's GPU quota, for the whole namespace. Not owned by one deployment (it
    outlives each): its labels name the project, not a deployment."""
    meta = {
        "name": "genai-project-quota",
        "namespace": deployment.namespace,
        "labels": {
            "app.kubernetes.io/part-of": "genai",
            "app.kubernetes.io/managed-by": MANAGED_BY,
            f"{GROUP}/project": label_value(deployment.spec.project),
        },
    }
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": meta,
        "spec": {"hard": {"requests.nvidia.com/gpu": str(deployment.gpu_quota)}},
    }
