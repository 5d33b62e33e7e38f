"""Reconcile as a pure function: ``(resolved spec, observed state) → plan``.

The plan holds the desired objects (to apply with server-side apply), the objects of this
deployment that exist and are no longer desired (to delete), the adapter loads and unloads
each running pod needs, the gateway spec to register once a revision is ready, and the
resource's status. Nothing here talks to a cluster, a pod or the registry: the operator
(``apps/k8s_operator.py``) observes, calls :func:`reconcile`, and carries the plan out; the
property tests run it on generated specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from genai.deploy._manifests import deployment_objects, revision_objects
from genai.deploy._objects import object_name, service_url
from genai.deploy._resolve import ResolvedAdapter, ResolvedDeployment, ResolvedRevision
from genai.gateway import DeploymentSpec, ShadowConfig, TargetSpec

__all__ = [
    "AdapterAction",
    "Condition",
    "ObjectKey",
    "Observed",
    "Plan",
    "PodState",
    "RevisionState",
    "conditions_from",
    "desired_objects",
    "gateway_spec",
    "key_of",
    "reconcile",
]

Manifest = dict[str, Any]


@dataclass(frozen=True, order=True)
class ObjectKey:
    api_version: str
    kind: str
    namespace: str
    name: str


def key_of(manifest: Manifest) -> ObjectKey:
    meta = manifest["metadata"]
    return ObjectKey(
        manifest["apiVersion"], manifest["kind"], meta.get("namespace", ""), meta["name"]
    )


@dataclass(frozen=True)
class PodState:
    """A running pod of a revision, as the operator saw it."""

    name: str
    ip: str
    ready: bool
    #: what its vLLM serves now: LoRA name → the artifact digest it was loaded from ("" when
    #: unknown: then any version counts as the wanted one)
    adapters: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RevisionState:
    replicas: int = 0
    ready_replicas: int = 0
    updated_replicas: int = 0
    observed_generation_current: bool = True  # the Deployment controller saw the last change
    pods: tuple[PodState, ...] = ()


@dataclass(frozen=True)
class Condition:
    type: Literal["Ready", "Progressing", "Degraded"]
    status: Literal["True", "False"]
    reason: str
    message: str
    last_transition_time: str

    def wire(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(frozen=True)
class Observed:
    """What exists now: this deployment's objects, its revisions' rollout and pods, and
    the conditions it last reported (a condition keeps its transition time while its
    status stays)."""

    existing: frozenset[ObjectKey] = frozenset()
    revisions: dict[str, RevisionState] = field(default_factory=dict)
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class AdapterAction:
    pod: str
    pod_ip: str
    revision: str
    op: Literal["load", "unload"]
    adapter: str  # the LoRA name
    artifact: str = ""  # the digest to fetch (loads only)


@dataclass(frozen=True)
class Plan:
    apply: list[Manifest]
    delete: list[ObjectKey]
    adapters: list[AdapterAction]
    gateway: DeploymentSpec | None  # None until a live revision serves every adapter
    status: dict[str, Any]

    @property
    def ready(self) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in self.status["conditions"]
        )


def desired_objects(deployment: ResolvedDeployment) -> list[Manifest]:
    """Every object the deployment needs, in a fixed order: revisions as the spec lists
    them (live, then shadow), then the deployment-wide ones."""
    found: list[Manifest] = []
    for revision in deployment.revisions:
        found.extend(revision_objects(deployment, revision))
    found.extend(deployment_objects(deployment))
    return found


def reconcile(deployment: ResolvedDeployment, observed: Observed, *, now: datetime) -> Plan:
    desired = desired_objects(deployment)
    wanted = {key_of(m) for m in desired}
    delete = sorted(k for k in observed.existing if k not in wanted)
    actions: list[AdapterAction] = []
    serving: list[ResolvedRevision] = []
    for revision in deployment.revisions:
        state = observed.revisions.get(revision.name, RevisionState())
        todo = _adapter_actions(revision, state)
        actions.extend(todo)
        if _serves(revision, state):
            serving.append(revision)
    gateway = gateway_spec(deployment, serving)
    status = _status(deployment, observed, serving, actions, gateway, now)
    return Plan(desired, delete, actions, gateway, status)


def _adapter_actions(revision: ResolvedRevision, state: RevisionState) -> list[AdapterAction]:
    wanted = {a.name: a for a in revision.adapters}
    actions = []
    for pod in sorted(state.pods, key=lambda p: p.name):
        if not pod.ready:
            continue
        for name in sorted(pod.adapters.keys() - wanted.keys()):
            actions.append(AdapterAction(pod.name, pod.ip, revision.name, "unload", name))
        for name, adapter in sorted(wanted.items()):
            if not _has(pod, adapter):  # missing, or another version under its name
                actions.append(
                    AdapterAction(pod.name, pod.ip, revision.name, "load", name, adapter.artifact)
                )
    return actions


def _serves(revision: ResolvedRevision, state: RevisionState) -> bool:
    """A revision serves when one ready pod runs the current template with every adapter."""
    return state.observed_generation_current and any(
        pod.ready and all(_has(pod, a) for a in revision.adapters) for pod in state.pods
    )


def _has(pod: PodState, adapter: ResolvedAdapter) -> bool:
    loaded = pod.adapters.get(adapter.name)
    return loaded is not None and loaded in ("", adapter.artifact)


def gateway_spec(
    deployment: ResolvedDeployment, serving: list[ResolvedRevision]
) -> DeploymentSpec | None:
    """The gateway's spec for the revisions that serve: a target per live revision at its
    weight, the shadow revision as the shadow target. None when no live revision serves."""
    traffic = deployment.spec.traffic
    live = [r for r in serving if r.shadow_sample is None]
    if not live or (traffic.policy == "weighted" and not any(r.weight > 0 for r in live)):
        return None
    shadow = next((r for r in serving if r.shadow_sample is not None), None)
    adapters = sorted({a.name for a in live[0].adapters})
    return DeploymentSpec(
        targets=[_target(deployment, r) for r in live],
        policy=traffic.policy,
        sticky_header=traffic.sticky_header,
        shadow=ShadowConfig(target=_target(deployment, shadow), sample=shadow.shadow_sample or 1.0)
        if shadow is not None
        else None,
        retries=traffic.retries,
        circuit=traffic.circuit,
        bandit=traffic.bandit,
        adapters=adapters,
    )


def _target(deployment: ResolvedDeployment, revision: ResolvedRevision) -> TargetSpec:
    return TargetSpec(
        name=revision.name,
        url=service_url(deployment, revision),
        model=revision.model.served_name,
        weight=revision.weight,
        gpus=float(deployment.spec.resources.gpus),
        timeout_s=300.0,
    )


def _status(
    deployment: ResolvedDeployment,
    observed: Observed,
    serving: list[ResolvedRevision],
    actions: list[AdapterAction],
    gateway: DeploymentSpec | None,
    now: datetime,
) -> dict[str, Any]:
    revisions = []
    rolling = []
    for revision in deployment.revisions:
        state = observed.revisions.get(revision.name, RevisionState())
        ready = revision in serving
        rolled_out = (
            state.observed_generation_current
            and state.updated_replicas >= state.replicas
            and state.ready_replicas > 0
        )
        if not rolled_out:  # a missing adapter is an action, not a roll-out
            rolling.append(revision.name)
        revisions.append(
            {
                "name": revision.name,
                "object": object_name(deployment, revision),
                "model": revision.model.label,
                "adapters": [a.label for a in revision.adapters],
                "weight": revision.weight,
                "shadow": revision.shadow_sample is not None,
                "replicas": state.replicas,
                "readyReplicas": state.ready_replicas,
                "serving": ready,
                "url": service_url(deployment, revision),
            }
        )
    missing = [r.name for r in deployment.revisions if r not in serving]
    time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [
        _condition(
            observed,
            "Ready",
            gateway is not None,
            "Serving" if gateway is not None else "NoRevisionReady",
            "the gateway routes to " + ", ".join(t.name for t in gateway.targets)
            if gateway is not None
            else "no live revision has a ready pod with all its adapters yet",
            time,
        ),
        _condition(
            observed,
            "Progressing",
            bool(rolling or actions),
            "RollingOut" if rolling else ("LoadingAdapters" if actions else "Complete"),
            _progress_message(rolling, actions),
            time,
        ),
        _condition(
            observed,
            "Degraded",
            bool(missing) and gateway is not None,
            "RevisionsNotServing" if missing and gateway is not None else "AsExpected",
            f"not serving yet: {', '.join(missing)}" if missing else "every revision serves",
            time,
        ),
    ]
    return {
        "observedGeneration": deployment.generation,
        "gatewayModel": deployment.name,
        "revisions": revisions,
        "conditions": [c.wire() for c in conditions],
    }


def _progress_message(rolling: list[str], actions: list[AdapterAction]) -> str:
    parts = []
    if rolling:
        parts.append(f"rolling out: {', '.join(rolling)}")
    if actions:
        parts.append(f"{len(actions)} adapter change(s) on running pods")
    return "; ".join(parts) or "every revision is up to date"


def _condition(
    observed: Observed,
    kind: Literal["Ready", "Progressing", "Degraded"],
    value: bool,
    reason: str,
    message: str,
    now: str,
) -> Condition:
    status: Literal["True", "False"] = "True" if value else "False"
    before = next((c for c in observed.conditions if c.type == kind), None)
    since = before.last_transition_time if before is not None and before.status == status else now
    return Condition(kind, status, reason, message, since)


def conditions_from(status: dict[str, Any] | None) -> tuple[Condition, ...]:
    """The conditions a resource's status holds (to pass back as :attr:`Observed.conditions`)."""
    found = []
    for item in (status or {}).get("conditions") or []:
        if item.get("type") in ("Ready", "Progressing", "Degraded") and item.get("status") in (
            "True",
            "False",
        ):
            found.append(
                Condition(
                    item["type"],
                    item["status"],
                    str(item.get("reason", "")),
                    str(item.get("message", "")),
                    str(item.get("lastTransitionTime", "")),
                )
            )
    return tuple(found)
