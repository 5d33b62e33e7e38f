"""The platform's own Kubernetes manifests: gateway, PostgreSQL, Redis, Chroma, operator.

:func:`platform_manifests` is a pure function of :class:`PlatformOptions`, like the
GenAIDeployment manifests: stable names (``genai-gateway``, ``genai-postgres``...), labels
``app.kubernetes.io/*``, a fixed order (Namespace, CRD, ConfigMap, data services, gateway,
operator). Services given as managed (a URL, or a Secret key holding it) are not run; their
URLs reach the pods through ``secretKeyRef`` and are never rendered. The Secrets the pods
need are created by the administrator (:func:`required_secrets` lists them); only
:func:`platform_secret` renders secret values, for whoever wants to apply them from a file
kept out of version control. :func:`dump_yaml` and :func:`write_kustomize` turn the
manifests into one YAML stream or a kustomize base.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from genai.deploy._crd import crd
from genai.deploy._objects import GROUP
from genai.deploy._platform_base import (
    GATEWAY_PORT,
    PLATFORM_SECRET,
    POSTGRES_SECRET,
    URL_ENV,
    Manifest,
    PlatformOptions,
    SecretRef,
    container_security,
    labels,
    metadata,
    pod_security,
    selector,
    url_env,
)
from genai.deploy._platform_files import dump_yaml, file_name, write_kustomize
from genai.deploy._platform_operator import operator_objects, operator_rules
from genai.deploy._platform_services import data_service_objects, in_cluster_urls

__all__ = [
    "GATEWAY_PORT",
    "PLATFORM_SECRET",
    "POSTGRES_SECRET",
    "URL_ENV",
    "PlatformOptions",
    "RequiredSecret",
    "SecretRef",
    "dump_yaml",
    "file_name",
    "gateway_objects",
    "operator_rules",
    "platform_manifests",
    "platform_secret",
    "required_secrets",
    "write_kustomize",
]

_GATEWAY_UID = 10001


@dataclass(frozen=True)
class RequiredSecret:
    """A Secret key the platform's pods read; the administrator creates it."""

    name: str
    key: str
    purpose: str


def platform_manifests(options: PlatformOptions) -> list[Manifest]:
    """Every object of the platform, in apply order."""
    config = _config_map(options)
    digest = _hash(config["data"])
    found: list[Manifest] = [_namespace(options)]
    if options.operator:
        definition = dict(crd())
        definition["metadata"] = {**definition["metadata"], "labels": labels("operator", options)}
        found.append(definition)
    found.append(config)
    found += data_service_objects(options)
    found += gateway_objects(options, digest)
    if options.operator:
        found += operator_objects(options, digest)
    return found


def required_secrets(options: PlatformOptions) -> list[RequiredSecret]:
    """The Secret keys the rendered pods read, in a fixed order."""
    found = [
        RequiredSecret(PLATFORM_SECRET, "GENAI_SECRET_KEY", "encrypts project secrets"),
        RequiredSecret(PLATFORM_SECRET, "GENAI_DLP_KEY", "the DLP vault's key"),
        RequiredSecret(PLATFORM_SECRET, "GENAI_ADMIN_TOKEN", "the operator token (/metrics)"),
    ]
    if not options.managed("postgres"):
        found.append(RequiredSecret(POSTGRES_SECRET, "password", "the in-cluster PostgreSQL"))
    for service in URL_ENV:
        if options.managed(service):
            ref = options.url_secret(service)
            found.append(RequiredSecret(ref.name, ref.key, f"the managed {service} URL"))
    return found


def platform_secret(options: PlatformOptions) -> Manifest | None:
    """The Secret ``genai-platform`` with the managed URLs given as values (None when no
    URL was given). It holds secrets: keep it out of the kustomize base and of git."""
    data: dict[str, str] = {}
    for service in URL_ENV:
        url = getattr(options, f"{service}_url")
        if url is not None:
            data[options.url_secret(service).key] = url.get_secret_value()
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(PLATFORM_SECRET, "gateway", options),
        "type": "Opaque",
        "stringData": data,
    }


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _namespace(options: PlatformOptions) -> Manifest:
    meta = metadata(options.namespace, "platform", options, namespaced=False)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _config_map(options: PlatformOptions) -> Manifest:
    """The settings every platform pod shares that are not secret."""
    data = dict(in_cluster_urls(options))
    if options.artifact_root is not None:
        data["GENAI_ARTIFACT_ROOT"] = options.artifact_root
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata("genai-platform", "platform", options),
        "data": data,
    }


def _http_probe(period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": "http"},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _gateway_env(options: PlatformOptions) -> list[dict[str, Any]]:
    return [{"name": "GENAI_HOME", "value": "/var/lib/genai"}, *url_env(options)]


def _env_from() -> list[dict[str, Any]]:
    # the Secret after the ConfigMap: a key in both takes the Secret's value
    return [
        {"configMapRef": {"name": "genai-platform"}},
        {"secretRef": {"name": PLATFORM_SECRET}},
    ]


def _gateway_pod(options: PlatformOptions) -> dict[str, Any]:
    volumes = [
        {"name": "home", "mountPath": "/var/lib/genai"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    migrate = ["genai", "init", "--admin", options.admin]
    init = {
        # create or upgrade the schema; a replica that races another retries
        "name": "migrate",
        "image": options.image,
        "command": migrate,
        "env": _gateway_env(options),
        "envFrom": _env_from(),
        "resources": {
            "limits": {"cpu": "500m", "memory": "512Mi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "securityContext": container_security(read_only=True),
        "volumeMounts": volumes,
    }
    workers = str(options.gateway_workers)
    amounts = {"cpu": options.gateway_cpu, "memory": options.gateway_memory}
    gateway = {
        "name": "gateway",
        "image": options.image,
        "command": ["genai", "gateway"],
        "args": ["--host", "0.0.0.0", "--port", str(GATEWAY_PORT), "--workers", workers],
        "env": _gateway_env(options),
        "envFrom": _env_from(),
        "ports": [{"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"}],
        "resources": {"limits": dict(amounts), "requests": dict(amounts)},
        "startupProbe": _http_probe(period=5, failures=60),
        "readinessProbe": _http_probe(period=5, failures=3),
        "livenessProbe": _http_probe(period=15, failures=4),
        "securityContext": container_security(read_only=True),
        "volumeMounts": volumes,
    }
    return {
        "automountServiceAccountToken": False,
        # service links would add GENAI_*_PORT variables next to the platform's settings
        "enableServiceLinks": False,
        "securityContext": pod_security(_GATEWAY_UID),
        "terminationGracePeriodSeconds": 30,
        "initContainers": [init],
        "containers": [gateway],
        "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }


def gateway_objects(options: PlatformOptions, config_hash: str) -> list[Manifest]:
    """The gateway's Service, Deployment and (with several replicas) PodDisruptionBudget."""
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata("genai-gateway", "gateway", options),
        "spec": {
            "type": "ClusterIP",
            "selector": selector("gateway"),
            "ports": [
                {"name": "http", "port": GATEWAY_PORT, "targetPort": "http", "protocol": "TCP"}
            ],
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("genai-gateway", "gateway", options),
        "spec": {
            "replicas": options.gateway_replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": selector("gateway")},
            "template": {
                "metadata": {
                    "labels": labels("gateway", options),
                    # a changed ConfigMap rolls the pods
                    "annotations": {f"{GROUP}/config-hash": config_hash},
                },
                "spec": _gateway_pod(options),
            },
        },
    }
    found = [service, deployment]
    if options.gateway_replicas > 1:
        found.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": metadata("genai-gateway", "gateway", options),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector("gateway")}},
            }
        )
    return found
