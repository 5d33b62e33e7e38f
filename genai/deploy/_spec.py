"""The typed spec of a model deployment on Kubernetes: the ``GenAIDeployment`` resource.

One pydantic model is the whole contract. ``genai k8s render SPEC`` reads it from YAML,
the operator reads it from the custom resource, and the CRD's OpenAPI schema is generated
from it (:func:`genai.deploy.crd`) — there is no second, hand-kept schema. Its traffic part
is the gateway's own: the policy, sticky header, retries and circuit breaker are the
fields of :class:`genai.gateway.DeploymentSpec`, and the reconciler turns the revisions
into that spec's targets once their pods are ready.

Example (``spec:`` of the resource, or a file of its own; camelCase or snake_case keys)::

    project: support
    model: smollm2@1                 # a registered base model of the project
    adapters: [{ref: support-tone@2}] # registered adapters, served with --enable-lora
    lora: {maxLoras: 4, maxLoraRank: 16}
    resources: {gpus: 1, gpuType: NVIDIA-H100-80GB-HBM3, cpu: "4", memory: 32Gi}
    autoscaling: {minReplicas: 1, maxReplicas: 4, metric: num_requests_waiting, target: 5}
    traffic:
      revisions:
        - {name: stable, weight: 90}
        - {name: canary, weight: 10, adapters: [{ref: support-tone@3}]}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from genai.errors import ValidationError
from genai.gateway import BanditConfig, CircuitConfig
from genai.validation import first_problem

__all__ = [
    "VLLM_IMAGE",
    "AdapterRef",
    "Autoscaling",
    "EngineOptions",
    "GenAIDeploymentSpec",
    "LoraOptions",
    "Resources",
    "Revision",
    "ShadowRevision",
    "Traffic",
    "parse_k8s_spec",
]

#: The vLLM OpenAI server image a revision runs unless its engine names another.
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"

#: A DNS-1123 label (what Kubernetes accepts as a name part), kept short enough that
#: ``genai-<deployment>-<revision>`` fits in 63 characters.
_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,27}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_IMAGE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$")
#: vLLM accepts only these LoRA ranks (--max-lora-rank).
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class _Spec(BaseModel):
    """Strict, frozen, camelCase on the wire (Kubernetes' convention), snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )


def label_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name part of a Kubernetes object, or None."""
    if _LABEL.match(value):
        return None
    return (
        f"{value!r} is not a valid Kubernetes name part: use 1-29 lowercase letters, digits "
        "or '-', starting with a letter and ending with a letter or digit (e.g. 'support-bot')"
    )


class AdapterRef(_Spec):
    """A registered LoRA adapter of the deployment's project, by registry reference."""

    ref: str = Field(description="The adapter: NAME, NAME@VERSION or NAME@ALIAS.")
    name: str | None = Field(
        default=None,
        description="The name callers pick it by (model=DEPLOYMENT:NAME); default: its name.",
    )

    @model_validator(mode="after")
    def _check(self) -> AdapterRef:
        # it becomes vLLM's lora_name, the agent's URL path and the gateway's model suffix
        if self.name is not None and not _ADAPTER_NAME.match(self.name):
            raise ValueError(
                f"adapter name {self.name!r}: use 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return self


class LoraOptions(_Spec):
    """vLLM's LoRA limits (--max-loras, --max-lora-rank, --max-cpu-loras)."""

    max_loras: int = Field(default=4, ge=1, le=256, description="Adapters in one batch.")
    max_lora_rank: int = Field(default=16, description="The highest adapter rank served.")
    max_cpu_loras: int | None = Field(
        default=None, ge=1, description="Adapters kept in CPU memory (default: max_loras)."
    )

    @model_validator(mode="after")
    def _check(self) -> LoraOptions:
        if self.max_lora_rank not in VLLM_RANKS:
            raise ValueError(
                f"maxLoraRank {self.max_lora_rank} is not one vLLM accepts: use one of "
                f"{', '.join(map(str, VLLM_RANKS))}"
            )
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError(
                f"maxCpuLoras {self.max_cpu_loras} is below maxLoras {self.max_loras}: "
                "vLLM needs at least as many CPU slots as GPU slots"
            )
        return self

    @property
    def max_cpu_loras_or_default(self) -> int:
        return self.max_cpu_loras or self.max_loras


class EngineOptions(_Spec):
    """How vLLM runs the model."""

    image: str = Field(default=VLLM_IMAGE, description="The vLLM OpenAI server image.")
    tensor_parallel_size: int = Field(default=1, ge=1, le=16)
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes"] | None = None
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)
    max_model_len: int | None = Field(default=None, ge=16)
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"

    @model_validator(mode="after")
    def _check(self) -> EngineOptions:
        if not _IMAGE.match(self.image):
            raise ValueError(f"image {self.image!r} is not a container image reference")
        return self


class Resources(_Spec):
    """What each replica asks of its node."""

    gpus: int = Field(default=1, ge=0, le=16, description="nvidia.com/gpu per replica.")
    gpu_type: str | None = Field(
        default=None,
        description="The nvidia.com/gpu.product node label to schedule on (e.g. "
        "NVIDIA-H100-80GB-HBM3).",
    )
    cpu: str = Field(default="4", description="CPU request and limit (a Kubernetes quantity).")
    memory: str = Field(default="32Gi", description="Memory request and limit.")

    @model_validator(mode="after")
    def _check(self) -> Resources:
        for field, value in (("cpu", self.cpu), ("memory", self.memory)):
            if not _QUANTITY.match(value):
                raise ValueError(
                    f"{field} {value!r} is not a Kubernetes quantity (e.g. 4, 500m, 32Gi)"
                )
        if self.gpu_type is not None and not re.match(
            r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", self.gpu_type
        ):
            raise ValueError(f"gpuType {self.gpu_type!r} is not a node label value")
        return self


class Autoscaling(_Spec):
    """Replicas per revision, scaled on vLLM's queue (``vllm:num_requests_waiting``) or its
    running requests. ``minReplicas: 0`` (scale to zero) needs KEDA: an HPA cannot."""

    min_replicas: int = Field(default=1, ge=0, le=100)
    max_replicas: int = Field(default=1, ge=1, le=100)
    metric: Literal["num_requests_waiting", "num_requests_running"] = "num_requests_waiting"
    target: float = Field(default=5.0, gt=0, description="The metric's average per replica.")
    engine: Literal["hpa", "keda"] = Field(
        default="hpa",
        description="hpa: autoscaling/v2 on a pods metric (prometheus-adapter serves it); "
        "keda: a KEDA ScaledObject on a Prometheus query.",
    )
    prometheus_url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        description="Where KEDA queries the metric.",
    )

    @model_validator(mode="after")
    def _check(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas {self.min_replicas} is above maxReplicas {self.max_replicas}"
            )
        if self.min_replicas == 0 and self.engine != "keda":
            raise ValueError(
                "minReplicas 0 (scale to zero) needs engine: keda; an HPA keeps one replica"
            )
        if not re.match(r"^https?://[^\s/]+", self.prometheus_url):
            raise ValueError(f"prometheusUrl {self.prometheus_url!r} is not an http(s) URL")
        return self

    @property
    def scales(self) -> bool:
        return self.max_replicas > self.min_replicas


class Revision(_Spec):
    """One version of what is served, with its share of the traffic. A revision runs pods of
    its own; it serves the deployment's model and adapters unless it names others."""

    name: str
    weight: float = Field(default=1.0, ge=0)
    model: str | None = Field(default=None, description="Another base model (registry ref).")
    adapters: list[AdapterRef] | None = Field(
        default=None, description="Other adapters (replaces the deployment's list)."
    )
    image: str | None = Field(default=None, description="Another vLLM image.")

    @model_validator(mode="after")
    def _check(self) -> Revision:
        problem = label_problem(self.name)
        if problem:
            raise ValueError(f"revision name: {problem}")
        if self.image is not None and not _IMAGE.match(self.image):
            raise ValueError(f"image {self.image!r} is not a container image reference")
        return self


class ShadowRevision(Revision):
    """A revision that gets a copy of a share of the requests; its answers reach no caller."""

    sample: float = Field(default=1.0, gt=0, le=1, description="The share of requests copied.")


def _stable() -> list[Revision]:
    return [Revision(name="stable")]


class Traffic(_Spec):
    """How the gateway spreads requests over the revisions (its DeploymentSpec's fields)."""

    revisions: list[Revision] = Field(default_factory=_stable, min_length=1, max_length=8)
    policy: Literal["weighted", "ab", "bandit"] = "weighted"
    sticky_header: str = "x-genai-user"
    shadow: ShadowRevision | None = None
    retries: int = Field(default=2, ge=0, le=10)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    bandit: BanditConfig = Field(default_factory=BanditConfig)

    @model_validator(mode="after")
    def _check(self) -> Traffic:
        names = [r.name for r in self.revisions] + ([self.shadow.name] if self.shadow else [])
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"revision names must be unique; repeated: {', '.join(dupes)}")
        if self.policy == "weighted" and not any(r.weight > 0 for r in self.revisions):
            raise ValueError("a weighted policy needs a revision with weight above 0")
        return self


class GenAIDeploymentSpec(_Spec):
    """The ``spec`` of a ``GenAIDeployment``: a project's model on vLLM behind its gateway."""

    project: str = Field(description="The owning AI Project (its namespace's project).")
    model: str = Field(description="The base model: a registry reference of the project.")
    adapters: list[AdapterRef] = Field(default_factory=list, max_length=64)
    lora: LoraOptions = Field(default_factory=LoraOptions)
    engine: EngineOptions = Field(default_factory=EngineOptions)
    resources: Resources = Field(default_factory=Resources)
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    traffic: Traffic = Field(default_factory=Traffic)

    @model_validator(mode="after")
    def _check(self) -> GenAIDeploymentSpec:
        for revision in self.revisions:
            adapters = self.adapters_of(revision)
            served = [adapter_name(a) for a in adapters]
            dupes = sorted({n for n in served if served.count(n) > 1})
            if dupes:
                raise ValueError(
                    f"revision {revision.name!r} serves two adapters as {', '.join(dupes)}: "
                    "give one of them another name"
                )
        names = {
            r.name: sorted(adapter_name(a) for a in self.adapters_of(r)) for r in self.revisions
        }
        if len({tuple(v) for v in names.values()}) > 1:
            listed = "; ".join(f"{k}: {', '.join(v) or 'none'}" for k, v in names.items())
            raise ValueError(
                "every revision serves the same adapter names, so that a caller's "
                f"model=DEPLOYMENT:ADAPTER works on all of them ({listed}): a canary serves "
                "another version under the same name (adapters: [{ref: NAME@3, name: NAME}])"
            )
        if self.engine.tensor_parallel_size > max(self.resources.gpus, 1):
            raise ValueError(
                f"tensorParallelSize {self.engine.tensor_parallel_size} needs as many GPUs per "
                f"replica; resources.gpus is {self.resources.gpus}"
            )
        return self

    @property
    def revisions(self) -> list[Revision]:
        """Every revision that runs pods: the live ones, then the shadow."""
        shadow = [self.traffic.shadow] if self.traffic.shadow else []
        return [*self.traffic.revisions, *shadow]

    def adapters_of(self, revision: Revision) -> list[AdapterRef]:
        return self.adapters if revision.adapters is None else revision.adapters

    def model_of(self, revision: Revision) -> str:
        return revision.model or self.model

    def wire(self) -> dict[str, Any]:
        """The spec as a custom resource holds it: camelCase, defaults filled, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _ref_name(ref: str) -> str:
    return re.split(r"[@:]", ref.removeprefix("adapter:"), maxsplit=1)[0]


def adapter_name(adapter: AdapterRef) -> str:
    """The name an adapter is served under (vLLM's lora_name)."""
    return adapter.name or _ref_name(adapter.ref)


def parse_k8s_spec(data: Any) -> GenAIDeploymentSpec:
    """Check a spec (a mapping, or a whole ``GenAIDeployment`` resource), naming the first
    problem, where it is, and the fix."""
    if isinstance(data, dict) and data.get("kind") == "GenAIDeployment":
        data = data.get("spec")
    if not isinstance(data, dict):
        raise ValidationError(
            "a GenAIDeployment spec is a mapping (project, model, adapters, traffic...), "
            f"not {type(data).__name__}"
        )
    try:
        return GenAIDeploymentSpec.model_validate(data)
    except PydanticValidationError as error:
        where, message = first_problem(error)
        raise ValidationError(
            f"invalid GenAIDeployment spec at {where}: {message}", field=where
        ) from None
