"""One reconcile step of a GenAIDeployment: observe, plan (pure), carry out, report.

:meth:`Operator.reconcile` is what every kopf handler calls (create, update, resume, the
resync timer): it checks the namespace is bound to the spec's project, resolves the spec
against that project's registry, observes the deployment's objects, pods and the adapters
each ready pod serves, calls :func:`genai.deploy.reconcile`, applies and prunes objects,
loads and unloads adapters through each pod's agent, and registers the ready revisions as
the gateway deployment's targets (a new deployment revision only when they change). It
returns the resource's status; a spec the platform refuses gives a status that says why.

Tenancy: who may create a GenAIDeployment in a namespace is Kubernetes RBAC's business; which
project a namespace's deployments belong to is the platform admin's, by the namespace label
``genai.dev/project``. A spec naming another project than its namespace's is refused, and its
registry lookups run for that project only (another project's model is "not found").
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from apps.k8s._kube import KINDS, KubeApi
from genai import Client
from genai.deploy import (
    AGENT_PORT,
    GROUP,
    MANAGED_BY,
    PLATFORM_IMAGE,
    AgentClient,
    ClientRegistry,
    ObjectKey,
    Observed,
    PodState,
    ResolvedDeployment,
    RevisionState,
    agent_url,
    carry_out,
    conditions_from,
    gpus_requested,
    key_of,
    label_value,
    parse_k8s_spec,
    reconcile,
    resolve,
)
from genai.errors import BackendError, GenAIError, NotFoundError, ValidationError
from genai.gateway import DeploymentSpec, parse_spec

__all__ = ["OWNED_KINDS", "PROJECT_LABEL", "Operator", "OperatorConfig", "refused_status"]

PROJECT_LABEL = f"{GROUP}/project"
#: The kinds the operator creates per deployment (pruned when no longer desired).
OWNED_KINDS = (
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "ScaledObject",
    "PodDisruptionBudget",
    "ServiceMonitor",
    "NetworkPolicy",
)


@dataclass(frozen=True)
class OperatorConfig:
    artifacts_url: str = ""  # where pods read the artifact store (s3://...)
    platform_image: str = PLATFORM_IMAGE
    gateway_namespace: str = "genai-system"
    agent_port: int = AGENT_PORT
    #: image prefixes the operator runs (a resource names its vLLM image)
    allowed_images: tuple[str, ...] = ("vllm/vllm-openai:",)


class Operator:
    def __init__(
        self,
        kube: KubeApi,
        client: Client,
        config: OperatorConfig,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.kube = kube
        self.client = client
        self.config = config
        self._clock = clock
        self._http = http or httpx.AsyncClient(timeout=120.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---------------------------------------------------------------- the step

    async def reconcile(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Bring the cluster, the pods' adapters and the gateway to ``body``'s spec; the
        status to write. Refusals (bad spec, foreign references, quota) are a status;
        failures of the API server or the registry raise (kopf retries)."""
        meta = body.get("metadata") or {}
        try:
            resolved = await self._resolve(body)
        except BackendError:
            raise  # the API server or the registry failed: kopf retries
        except GenAIError as error:  # refused: bad spec, foreign reference, quota
            return refused_status(error, int(meta.get("generation") or 0), self._clock())
        observed = await self.observe(resolved, body.get("status"))
        plan = reconcile(resolved, observed, now=self._clock())
        warnings: list[str] = []
        for manifest in plan.apply:
            if not await self.kube.apply(manifest):
                warnings.append(
                    f"{manifest['kind']} {manifest['metadata']['name']} skipped: the cluster "
                    f"has no {manifest['apiVersion']} {manifest['kind']} (install its CRD)"
                )
        for key in plan.delete:
            await self.kube.delete(key)
        warnings.extend(
            await carry_out(plan.adapters, port=self.config.agent_port, client=self._http)
        )
        status = dict(plan.status)
        if plan.gateway is not None:
            status["gatewayRevision"] = await asyncio.to_thread(
                self._register, resolved, plan.gateway
            )
        status["warnings"] = warnings
        return status

    async def _resolve(self, body: Mapping[str, Any]) -> ResolvedDeployment:
        meta = body.get("metadata") or {}
        spec = parse_k8s_spec(body.get("spec"))
        namespace = str(meta.get("namespace") or "")
        await self._check_namespace(namespace, spec.project)
        elsewhere = await self._gpus_elsewhere(namespace, str(meta.get("name") or ""), spec.project)
        return await asyncio.to_thread(
            resolve,
            ClientRegistry(self.client),
            spec,
            name=str(meta.get("name") or ""),
            namespace=namespace,
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 1),
            artifacts_url=self.config.artifacts_url,
            platform_image=self.config.platform_image,
            gateway_namespace=self.config.gateway_namespace,
            allowed_images=self.config.allowed_images,
            gpus_elsewhere=elsewhere,
        )

    async def _gpus_elsewhere(self, namespace: str, name: str, project: str) -> int:
        """GPUs the project's other deployments (in its namespace) may use at full scale;
        one whose spec does not parse counts for nothing (its own status says why)."""
        total = 0
        for item in await self.kube.list("GenAIDeployment", namespace):
            if item.get("metadata", {}).get("name") == name:
                continue
            try:
                other = parse_k8s_spec(item.get("spec"))
            except GenAIError:
                continue
            if other.project == project:
                total += gpus_requested(other)
        return total

    async def _check_namespace(self, namespace: str, project: str) -> None:
        found = await self.kube.get("v1", "Namespace", "", namespace)
        bound = ((found or {}).get("metadata", {}).get("labels") or {}).get(PROJECT_LABEL)
        if bound != project:
            raise ValidationError(
                f"namespace {namespace!r} is not bound to project {project!r} "
                f"(its {PROJECT_LABEL} label is {bound!r}): a platform admin binds it with "
                f"`kubectl label namespace {namespace} {PROJECT_LABEL}={project}`",
                field="spec.project",
            )

    # ---------------------------------------------------------------- observing

    async def observe(
        self, resolved: ResolvedDeployment, status: Mapping[str, Any] | None
    ) -> Observed:
        ns, name = resolved.namespace, resolved.name
        mine = {f"{GROUP}/deployment": name, "app.kubernetes.io/managed-by": MANAGED_BY}
        existing = set()
        deployments: dict[str, dict[str, Any]] = {}
        for kind in OWNED_KINDS:
            for item in await self.kube.list(kind, ns, mine):
                existing.add(_key(kind, item))
                if kind == "Deployment":
                    deployments[item["metadata"]["labels"].get(f"{GROUP}/revision", "")] = item
        quota = {
            PROJECT_LABEL: label_value(resolved.spec.project),
            "app.kubernetes.io/managed-by": MANAGED_BY,
        }
        for item in await self.kube.list("ResourceQuota", ns, quota):  # gone with the quota
            existing.add(_key("ResourceQuota", item))
        pods = await self.kube.list("Pod", ns, {f"{GROUP}/deployment": name})
        revisions = {}
        for revision in resolved.revisions:
            found = deployments.get(revision.name)
            mine_pods = [
                p
                for p in pods
                if (p["metadata"].get("labels") or {}).get(f"{GROUP}/revision") == revision.name
            ]
            revisions[revision.name] = await self._revision_state(found, mine_pods)
        return Observed(
            existing=frozenset(existing),
            revisions=revisions,
            conditions=conditions_from(dict(status) if status else None),
        )

    async def _revision_state(
        self, deployment: dict[str, Any] | None, pods: list[dict[str, Any]]
    ) -> RevisionState:
        if deployment is None:
            return RevisionState(observed_generation_current=False)
        status = deployment.get("status") or {}
        generation = int(deployment["metadata"].get("generation") or 0)
        states = []
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            ip = str((pod.get("status") or {}).get("podIP") or "")
            ready = bool(ip) and _pod_ready(pod)
            adapters: dict[str, str] = {}
            if ready:
                try:
                    agent = AgentClient(agent_url(ip, self.config.agent_port), client=self._http)
                    adapters = {
                        name: _digest(path) for name, path in (await agent.loaded()).items()
                    }
                except BackendError:
                    ready = False  # its agent does not answer: not a serving pod yet
            states.append(PodState(pod["metadata"]["name"], ip, ready, adapters))
        return RevisionState(
            replicas=int(status.get("replicas") or 0),
            ready_replicas=int(status.get("readyReplicas") or 0),
            updated_replicas=int(status.get("updatedReplicas") or 0),
            observed_generation_current=int(status.get("observedGeneration") or 0) >= generation,
            pods=tuple(states),
        )

    # ---------------------------------------------------------------- the gateway

    def _register(self, resolved: ResolvedDeployment, gateway: DeploymentSpec) -> int:
        """The gateway deployment's revision serving ``gateway``: the newest one when it
        already does with the same models and adapters, else a new one (lineage: the base
        model, and the adapter when there is one; the description names them all)."""
        project, name = resolved.spec.project, resolved.name
        live = next(r for r in resolved.revisions if r.shadow_sample is None)
        adapters = sorted({a.label for r in resolved.revisions for a in r.adapters})
        models = sorted({r.model.label for r in resolved.revisions})
        targets = ", ".join(f"{t.name}={t.weight:g}" for t in gateway.targets)
        description = (
            f"GenAIDeployment {resolved.namespace}/{name}: {targets}; serves "
            + ", ".join(models + adapters)
        )
        adapter = adapters[0] if len(adapters) == 1 else None
        try:
            newest = self.client.registry.deployments.get(project, name)
            same = (newest.model, newest.adapter, newest.description) == (
                live.model.label,
                adapter,
                description,
            )
            if same and parse_spec(newest.spec) == gateway:
                return newest.version
        except (NotFoundError, ValidationError):
            pass
        revision = self.client.registry.deployments.create(
            project,
            name,
            spec=gateway.model_dump(mode="json", exclude_defaults=True),
            model=live.model.label,
            adapter=adapter,
            description=description,
        )
        return revision.version

    async def finalize(self, body: Mapping[str, Any]) -> None:
        """On deletion: remove every object of the deployment (owner references would too,
        where the garbage collector runs). The gateway deployment keeps its revisions."""
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        mine = {f"{GROUP}/deployment": name, "app.kubernetes.io/managed-by": MANAGED_BY}
        for kind in OWNED_KINDS:
            for item in await self.kube.list(kind, ns, mine):
                await self.kube.delete(_key(kind, item))


def _key(kind: str, item: Mapping[str, Any]) -> ObjectKey:
    """A listed object's key (list items may omit their kind and apiVersion)."""
    return key_of({**item, "apiVersion": item.get("apiVersion") or KINDS[kind][0], "kind": kind})


def _digest(path: str) -> str:
    """The artifact digest an agent loaded an adapter from (its directory's name)."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name if re.fullmatch(r"[0-9a-f]{64}", name) else ""


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def refused_status(error: Exception, generation: int, now: datetime) -> dict[str, Any]:
    """The status of a spec the platform refuses: not Ready, Degraded, and why."""
    time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    reason = type(error).__name__
    message = str(error)
    return {
        "observedGeneration": generation,
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": time,
            },
            {
                "type": "Progressing",
                "status": "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": time,
            },
            {
                "type": "Degraded",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastTransitionTime": time,
            },
        ],
        "warnings": [],
    }
