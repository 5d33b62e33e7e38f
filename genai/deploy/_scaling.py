"""The autoscaler, disruption budget and monitor of a revision's pods.

An ``autoscaling/v2`` HPA on a pods metric of vLLM (prometheus-adapter serves it), or a KEDA
``ScaledObject`` on a Prometheus query (which may scale to zero); a PodDisruptionBudget; a
ServiceMonitor for the Prometheus operator.
"""

from __future__ import annotations

from genai.deploy._objects import (
    Manifest,
    labels,
    metadata,
    number_text,
    object_name,
    selector,
)
from genai.deploy._resolve import ResolvedDeployment, ResolvedRevision

__all__ = ["hpa", "pdb", "scaled_object", "service_monitor"]


def _metric(deployment: ResolvedDeployment) -> str:
    return f"vllm:{deployment.spec.autoscaling.metric}"


def hpa(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    scaling = deployment.spec.autoscaling
    name = object_name(deployment, revision)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(deployment, name, revision),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": _metric(deployment)},
                        "target": {
                            "type": "AverageValue",
                            "averageValue": _quantity(scaling.target),
                        },
                    },
                }
            ],
            "behavior": {
                # a new replica takes minutes to load its weights: scale down slowly
                "scaleDown": {"stabilizationWindowSeconds": 300},
            },
        },
    }


def _quantity(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{round(value * 1000)}m"


def scaled_object(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    scaling = deployment.spec.autoscaling
    name = object_name(deployment, revision)
    query = f'sum({_metric(deployment)}{{namespace="{deployment.namespace}",service="{name}"}})'
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(deployment, name, revision),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicaCount": scaling.min_replicas,
            "maxReplicaCount": scaling.max_replicas,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": scaling.prometheus_url,
                        "query": query,
                        "threshold": number_text(scaling.target),
                    },
                }
            ],
        },
    }


def pdb(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(deployment, object_name(deployment, revision), revision),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(deployment, revision)}},
    }


def service_monitor(deployment: ResolvedDeployment, revision: ResolvedRevision) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": metadata(deployment, object_name(deployment, revision), revision),
        "spec": {
            "selector": {"matchLabels": labels(deployment, revision)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }
