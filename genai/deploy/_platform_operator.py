"""The GenAIDeployment operator: its ServiceAccount, least-privilege ClusterRole, binding and
Deployment (``genai k8s operator``, one replica).

The role grants what the reconciler writes (Deployments, Services, HPAs, PDBs,
NetworkPolicies, ResourceQuotas, ServiceMonitors, KEDA ScaledObjects) in any namespace, the
GenAIDeployment resources with their ``status`` and ``finalizers``, read access to pods and
namespaces, and what kopf itself needs: events, watching CustomResourceDefinitions and
namespaces (it runs standalone: no ``ClusterKopfPeering``). No Secrets:
the operator reads none and the pods it creates reference theirs by name.
"""

from __future__ import annotations

from typing import Any

from genai.deploy._crd import PLURAL
from genai.deploy._objects import GROUP
from genai.deploy._platform_base import (
    PLATFORM_SECRET,
    Manifest,
    PlatformOptions,
    container_security,
    labels,
    metadata,
    pod_security,
    selector,
    url_env,
)

__all__ = ["OPERATOR", "operator_objects", "operator_rules"]

OPERATOR = "genai-operator"
_WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]
_READ = ["get", "list", "watch"]
_UID = 10001


def _rule(group: str, resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": [group], "resources": resources, "verbs": verbs}


def operator_rules(options: PlatformOptions) -> list[dict[str, Any]]:
    """The ClusterRole's rules, in a fixed order (the same for every option set today)."""
    del options
    rules = [
        _rule(GROUP, [PLURAL], ["get", "list", "watch", "patch", "update"]),
        _rule(GROUP, [f"{PLURAL}/status"], ["get", "patch", "update"]),
        _rule(GROUP, [f"{PLURAL}/finalizers"], ["update"]),
        _rule("apps", ["deployments"], _WRITE),
        _rule("", ["services", "resourcequotas"], _WRITE),
        _rule("autoscaling", ["horizontalpodautoscalers"], _WRITE),
        _rule("policy", ["poddisruptionbudgets"], _WRITE),
        _rule("networking.k8s.io", ["networkpolicies"], _WRITE),
        _rule("monitoring.coreos.com", ["servicemonitors"], _WRITE),
        _rule("keda.sh", ["scaledobjects"], _WRITE),
        _rule("", ["pods"], _READ),
        _rule("", ["namespaces"], _READ),
        # kopf: posting events about its handlers, noticing CRDs come and go
        _rule("", ["events"], ["create"]),
        _rule("events.k8s.io", ["events"], ["create"]),
        _rule("apiextensions.k8s.io", ["customresourcedefinitions"], ["list", "watch"]),
    ]
    return rules


def operator_objects(options: PlatformOptions, config_hash: str) -> list[Manifest]:
    """ServiceAccount, ClusterRole, ClusterRoleBinding and Deployment."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(OPERATOR, "operator", options),
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(OPERATOR, "operator", options, namespaced=False),
        "rules": operator_rules(options),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(OPERATOR, "operator", options, namespaced=False),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": OPERATOR,
        },
        "subjects": [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": options.namespace}],
    }
    return [account, role, binding, _deployment(options, config_hash)]


def _deployment(options: PlatformOptions, config_hash: str) -> Manifest:
    env: list[dict[str, Any]] = [
        {"name": "GENAI_HOME", "value": "/var/lib/genai"},
        {"name": "GENAI_USER", "value": options.admin},  # the admin `genai init` registered
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    env += url_env(options)
    container = {
        "name": "operator",
        "image": options.image,
        "command": ["genai", "k8s", "operator"],
        # kopf's own liveness endpoint: it answers while the operator's loops run
        "args": ["--liveness", "http://0.0.0.0:8080/healthz"],
        "ports": [{"name": "health", "containerPort": 8080, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": "health"},
            "periodSeconds": 30,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "env": env,
        "envFrom": [
            {"configMapRef": {"name": "genai-platform"}},
            {"secretRef": {"name": PLATFORM_SECRET}},
        ],
        "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "100m", "memory": "256Mi"},
        },
        "securityContext": container_security(read_only=True),
        "volumeMounts": [
            {"name": "home", "mountPath": "/var/lib/genai"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(OPERATOR, "operator", options),
        "spec": {
            # one operator at a time: kopf without peering must not run twice
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector("operator")},
            "template": {
                "metadata": {
                    "labels": labels("operator", options),
                    "annotations": {f"{GROUP}/config-hash": config_hash},
                },
                "spec": {
                    "serviceAccountName": OPERATOR,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(_UID),
                    "containers": [container],
                    "volumes": [{"name": "home", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
