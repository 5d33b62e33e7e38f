"""PostgreSQL, Redis and a Chroma server for the platform, when no managed one is given.

Each is one pod (the platform's state is small; run a managed service for high
availability): PostgreSQL and Chroma as StatefulSets with a headless Service and a volume
claim template, Redis (counters, rate limits, the DLP vault's short-lived entries) as a
Deployment without persistence. A NetworkPolicy lets only the gateway and the operator reach
them. The PostgreSQL password comes from the Secret ``genai-postgres`` (key ``password``).
"""

from __future__ import annotations

from typing import Any

from genai.deploy._platform_base import (
    CHROMA_PORT,
    POSTGRES_PORT,
    POSTGRES_SECRET,
    REDIS_PORT,
    Manifest,
    PlatformOptions,
    container_security,
    labels,
    metadata,
    pod_security,
    selector,
    service_host,
)

__all__ = [
    "DATABASE",
    "DATABASE_USER",
    "data_service_objects",
    "in_cluster_urls",
]

DATABASE = "genai"
DATABASE_USER = "genai"
_POSTGRES_UID = 999  # the postgres user of the official image
_REDIS_UID = 999  # the redis user of the official image
_CHROMA_UID = 1000


def in_cluster_urls(options: PlatformOptions) -> dict[str, str]:
    """The URLs (no password in any) of the services that run in the cluster."""
    urls: dict[str, str] = {}
    if not options.managed("postgres"):
        host = service_host("genai-postgres", options)
        urls["GENAI_DATABASE_URL"] = (
            f"postgresql+psycopg://{DATABASE_USER}@{host}:{POSTGRES_PORT}/{DATABASE}"
        )
    if not options.managed("redis"):
        urls["GENAI_REDIS_URL"] = f"redis://{service_host('genai-redis', options)}:{REDIS_PORT}/0"
    if not options.managed("chroma"):
        urls["GENAI_CHROMA_URL"] = f"http://{service_host('genai-chroma', options)}:{CHROMA_PORT}"
    return urls


def data_service_objects(options: PlatformOptions) -> list[Manifest]:
    """The objects of every service that is not managed, then their NetworkPolicy."""
    found: list[Manifest] = []
    if not options.managed("postgres"):
        found += [_service("postgres", POSTGRES_PORT, options, headless=True), _postgres(options)]
    if not options.managed("redis"):
        found += [_service("redis", REDIS_PORT, options, headless=False), _redis(options)]
    if not options.managed("chroma"):
        found += [_service("chroma", CHROMA_PORT, options, headless=True), _chroma(options)]
    if found:
        found.append(_network_policy(options))
    return found


def _service(component: str, port: int, options: PlatformOptions, *, headless: bool) -> Manifest:
    spec: dict[str, Any] = {"type": "ClusterIP"}
    if headless:
        spec["clusterIP"] = "None"
    spec["selector"] = selector(component)
    spec["ports"] = [{"name": component, "port": port, "targetPort": component, "protocol": "TCP"}]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(f"genai-{component}", component, options),
        "spec": spec,
    }


def _exec_probe(command: list[str], *, period: int, failures: int) -> dict[str, Any]:
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    }


def _claim(name: str, size: str, options: PlatformOptions) -> Manifest:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
    }
    if options.storage_class is not None:
        spec["storageClassName"] = options.storage_class
    return {"metadata": {"name": name}, "spec": spec}


def _stateful_set(
    component: str, options: PlatformOptions, pod: dict[str, Any], claim: Manifest
) -> Manifest:
    name = f"genai-{component}"
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(name, component, options),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": selector(component)},
            "template": {"metadata": {"labels": labels(component, options)}, "spec": pod},
            "volumeClaimTemplates": [claim],
            # deleting the StatefulSet keeps the data
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain",
                "whenScaled": "Retain",
            },
        },
    }


def _postgres(options: PlatformOptions) -> Manifest:
    ready = ["pg_isready", "-h", "127.0.0.1", "-U", DATABASE_USER, "-d", DATABASE]
    password = {"secretKeyRef": {"name": POSTGRES_SECRET, "key": "password"}}
    container = {
        "name": "postgres",
        "image": options.postgres_image,
        "env": [
            {"name": "POSTGRES_USER", "value": DATABASE_USER},
            {"name": "POSTGRES_DB", "value": DATABASE},
            {"name": "POSTGRES_PASSWORD", "valueFrom": password},
            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
        ],
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "2", "memory": "2Gi"},
            "requests": {"cpu": "250m", "memory": "512Mi"},
        },
        "readinessProbe": _exec_probe(ready, period=5, failures=3),
        "livenessProbe": _exec_probe(ready, period=15, failures=6),
        "securityContext": container_security(read_only=True),
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(_POSTGRES_UID),
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": [{"name": "run", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    }
    return _stateful_set(
        "postgres", options, pod, _claim("data", options.postgres_storage, options)
    )


def _redis(options: PlatformOptions) -> Manifest:
    ping = ["redis-cli", "-p", str(REDIS_PORT), "ping"]
    container = {
        "name": "redis",
        "image": options.redis_image,
        # counters and short-lived vault entries: no snapshots, never evict silently
        "args": ["--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "readinessProbe": _exec_probe(ping, period=5, failures=3),
        "livenessProbe": _exec_probe(ping, period=15, failures=4),
        "securityContext": container_security(read_only=True),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata("genai-redis", "redis", options),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector("redis")},
            "template": {
                "metadata": {"labels": labels("redis", options)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(_REDIS_UID),
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }


def _chroma(options: PlatformOptions) -> Manifest:
    heartbeat = {"httpGet": {"path": "/api/v2/heartbeat", "port": "chroma"}, "timeoutSeconds": 5}
    container = {
        "name": "chroma",
        "image": options.chroma_image,
        "env": [{"name": "ANONYMIZED_TELEMETRY", "value": "FALSE"}],  # 1.x persists to /data
        "ports": [{"name": "chroma", "containerPort": CHROMA_PORT, "protocol": "TCP"}],
        "resources": {
            "limits": {"cpu": "2", "memory": "4Gi"},
            "requests": {"cpu": "250m", "memory": "1Gi"},
        },
        "readinessProbe": {**heartbeat, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**heartbeat, "periodSeconds": 20, "failureThreshold": 6},
        # the server writes next to its binary: a writable root
        "securityContext": container_security(read_only=False),
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security(_CHROMA_UID),
        "containers": [container],
    }
    return _stateful_set("chroma", options, pod, _claim("data", options.chroma_storage, options))


def _network_policy(options: PlatformOptions) -> Manifest:
    """Only the gateway and the operator (and, for the init container, the gateway's pods)
    reach the data services."""
    components = [c for c in ("postgres", "redis", "chroma") if not options.managed(c)]
    clients = {
        "matchExpressions": [
            {
                "key": "app.kubernetes.io/component",
                "operator": "In",
                "values": ["gateway", "operator"],
            },
            {"key": "app.kubernetes.io/part-of", "operator": "In", "values": ["genai"]},
        ]
    }
    ports = {"postgres": POSTGRES_PORT, "redis": REDIS_PORT, "chroma": CHROMA_PORT}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata("genai-data", "data", options),
        "spec": {
            "podSelector": {
                "matchExpressions": [
                    {"key": "app.kubernetes.io/component", "operator": "In", "values": components},
                    {"key": "app.kubernetes.io/part-of", "operator": "In", "values": ["genai"]},
                ]
            },
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [{"podSelector": clients}],
                    "ports": [{"port": ports[c], "protocol": "TCP"} for c in components],
                }
            ],
        },
    }
