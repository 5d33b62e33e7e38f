"""Properties of rendering and reconciling, over generated GenAIDeployment specs.

Hypothesis generates valid specs (revisions with weights, a shadow, adapters and per-revision
versions, HPA or KEDA autoscaling down to zero, engine options, resources, LoRA limits,
stored or Hugging Face models) and resolves them against an in-test registry of real
records. For every one: the custom resource passes the CRD schema, reconcile does not raise,
renders the same bytes twice, writes only objects Kubernetes 1.33 accepts (strict),
converges (reconciling what it applied deletes nothing and changes nothing), and once every
revision serves, is Ready with the gateway's weights equal to the spec's.

The profile is derandomized: CI runs the same examples every time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genai.deploy import (
    Observed,
    PodState,
    ResolvedDeployment,
    RevisionState,
    conditions_from,
    crd,
    gpus_requested,
    key_of,
    kserve_manifests,
    parse_k8s_spec,
    reconcile,
    resolve,
)
from genai.errors import NotFoundError
from genai.registry import AdapterVersion, ModelVersion
from genai.tenancy import QuotaLimits, QuotaStatus

settings.register_profile(
    "k8s-render",
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile("k8s-render")
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOM_KINDS = {"ServiceMonitor", "ScaledObject"}  # no schema in kubernetes-validate
ADAPTER_NAMES = ("tone", "faq", "sql")
VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # what --max-lora-rank accepts
MODELS = {"smollm2": "", "gguf": hashlib.sha256(b"gguf").hexdigest()}


# ------------------------------------------------------------------ an in-test registry


class Registry:
    """Models ``smollm2`` (Hugging Face) and ``gguf`` (stored), and for each base adapters
    ``<base>-<name>`` in versions 1 and 2 of rank 8; the project's GPU quota as given."""

    def __init__(self, gpus: int | None) -> None:
        self.gpus = gpus

    def model(self, project: str, ref: str) -> ModelVersion:
        name = ref.split("@", maxsplit=1)[0]
        if name not in MODELS:
            raise NotFoundError(f"model:{ref} not found")
        artifact = MODELS[name]
        return ModelVersion(
            kind="model",
            name=name,
            version=1,
            description="",
            created_at=NOW,
            created_by="user:admin",
            aliases=[],
            source="" if artifact else "HuggingFaceTB/SmolLM2-135M-Instruct",
            revision="",
            license="apache-2.0",
            metadata={},
            artifact=artifact,
        )

    def adapter(self, project: str, ref: str) -> AdapterVersion:
        name, _, version = ref.partition("@")
        base = name.split("-")[0]
        return AdapterVersion(
            kind="adapter",
            name=name,
            version=int(version or 2),
            description="",
            created_at=NOW,
            created_by="user:admin",
            aliases=[],
            base_model=f"model:{base}@1",
            method="lora",
            rank=8,
            alpha=16.0,
            target_modules=["q_proj", "v_proj"],
            run=None,
            artifact=hashlib.sha256(ref.encode()).hexdigest(),
        )

    def quota(self, project: str) -> QuotaStatus:
        return QuotaStatus(
            limits=QuotaLimits(gpus=self.gpus),
            requests_this_minute=0,
            tokens_today=0,
            spend_usd_this_month=0.0,
        )


# ------------------------------------------------------------------ strategies

_labels = st.from_regex(r"\A[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6})?\Z")
_weights = st.sampled_from([0.0, 0.5, 1.0, 10.0, 33.3, 90.0])
_quantities = {
    "cpu": st.sampled_from(["1", "4", "500m", "2.5", "16"]),
    "memory": st.sampled_from(["2Gi", "32Gi", "512Mi", "100G", "1Ti"]),
}


@st.composite
def spec_data(draw: st.DrawFn) -> dict[str, Any]:
    """A valid spec, as the mapping a user writes (camelCase)."""
    model = draw(st.sampled_from(sorted(MODELS)))
    names = draw(st.lists(st.sampled_from(ADAPTER_NAMES), unique=True, max_size=3))

    def adapters(version: int) -> list[dict[str, str]]:
        return [{"ref": f"{model}-{n}@{version}", "name": n} for n in names]

    policy = draw(st.sampled_from(["weighted", "ab", "bandit"]))
    with_shadow = draw(st.booleans())
    labels = draw(st.lists(_labels, min_size=2 if with_shadow else 1, max_size=5, unique=True))
    live = labels[:-1] if with_shadow else labels
    revisions = []
    for label in live:
        revision: dict[str, Any] = {"name": label, "weight": draw(_weights)}
        if draw(st.booleans()):
            revision["adapters"] = adapters(draw(st.sampled_from([1, 2])))
        if draw(st.booleans()):
            revision["image"] = "vllm/vllm-openai:v0.11.1"
        revisions.append(revision)
    if policy == "weighted" and not any(r["weight"] > 0 for r in revisions):
        revisions[0]["weight"] = 1.0
    traffic: dict[str, Any] = {
        "revisions": revisions,
        "policy": policy,
        "retries": draw(st.integers(0, 3)),
    }
    if with_shadow:
        traffic["shadow"] = {
            "name": labels[-1],
            "sample": draw(st.sampled_from([0.01, 0.25, 1.0])),
            "adapters": adapters(2),
        }

    engine_kind = draw(st.sampled_from(["hpa", "keda"]))
    low = draw(st.sampled_from([0, 0, 1, 2] if engine_kind == "keda" else [1, 1, 2, 3]))
    autoscaling = {
        "engine": engine_kind,
        "minReplicas": low,
        "maxReplicas": draw(st.integers(max(low, 1), 4)),
        "metric": draw(st.sampled_from(["num_requests_waiting", "num_requests_running"])),
        "target": draw(st.sampled_from([0.5, 1.0, 2.5, 5.0, 12.0])),
    }
    gpus = draw(st.integers(0, 4))
    resources: dict[str, Any] = {
        "gpus": gpus,
        "cpu": draw(_quantities["cpu"]),
        "memory": draw(_quantities["memory"]),
    }
    if draw(st.booleans()):
        resources["gpuType"] = draw(
            st.sampled_from(["NVIDIA-H100-80GB-HBM3", "NVIDIA-L4", "Tesla-T4"])
        )
    engine: dict[str, Any] = {
        "tensorParallelSize": draw(st.integers(1, max(gpus, 1))),
        "gpuMemoryUtilization": draw(st.sampled_from([0.5, 0.85, 0.9, 1.0])),
        "dtype": draw(st.sampled_from(["auto", "bfloat16", "float16", "float32"])),
    }
    if draw(st.booleans()):
        engine["quantization"] = draw(st.sampled_from(["awq", "gptq", "fp8", "bitsandbytes"]))
    if draw(st.booleans()):
        engine["maxModelLen"] = draw(st.integers(16, 131072))
    max_loras = draw(st.integers(max(len(names), 1), 8))
    lora: dict[str, Any] = {"maxLoras": max_loras, "maxLoraRank": draw(st.sampled_from(VLLM_RANKS))}
    if draw(st.booleans()):
        lora["maxCpuLoras"] = draw(st.integers(max_loras, 16))
    return {
        "project": "support",
        "model": f"{model}@1",
        "adapters": adapters(1),
        "lora": lora,
        "engine": engine,
        "resources": resources,
        "autoscaling": autoscaling,
        "traffic": traffic,
    }


@st.composite
def deployments(draw: st.DrawFn) -> ResolvedDeployment:
    spec = parse_k8s_spec(draw(spec_data()))
    wanted = gpus_requested(spec)
    quota = draw(st.one_of(st.none(), st.integers(wanted, wanted + 8)))
    return resolve(
        Registry(quota),
        spec,
        name=draw(_labels),
        namespace=draw(st.sampled_from(["support", "team-a", "default"])),
        artifacts_url="s3://bucket/genai/artifacts",
        uid=draw(st.sampled_from(["", "0b6f9a52-3c41-4f7e-8d2a-5e9c1b7d4f60"])),
        generation=draw(st.integers(1, 50)),
    )


def serving(deployment: ResolvedDeployment) -> dict[str, RevisionState]:
    """Every revision with one ready, updated pod that serves all its adapters."""
    return {
        r.name: RevisionState(
            replicas=1,
            ready_replicas=1,
            updated_replicas=1,
            pods=(
                PodState(
                    f"{r.name}-pod", "10.1.0.7", True, {a.name: a.artifact for a in r.adapters}
                ),
            ),
        )
        for r in deployment.revisions
    }


def _draft7(node: Any) -> Any:
    """OpenAPI 3.0's boolean exclusiveMinimum/Maximum as draft 7's numbers."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _draft7(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(flag) is True:
            out[flag] = out.pop(bound)
    return out


CR_SCHEMA = jsonschema.Draft7Validator(
    _draft7(crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
)


# ------------------------------------------------------------------ properties


@PROFILE
@given(deployments())
def test_reconcile_never_raises_and_is_deterministic(deployment: ResolvedDeployment) -> None:
    first = reconcile(deployment, Observed(), now=NOW)
    again = reconcile(deployment, Observed(), now=NOW)
    assert first == again
    assert json.dumps(first.apply) == json.dumps(again.apply)
    assert json.dumps(first.status) == json.dumps(again.status)
    # the spec as the custom resource holds it renders the same bytes
    reparsed = resolve(
        Registry(deployment.gpu_quota),
        parse_k8s_spec(deployment.spec.wire()),
        name=deployment.name,
        namespace=deployment.namespace,
        artifacts_url=deployment.artifacts_url,
        uid=deployment.uid,
        generation=deployment.generation,
    )
    assert json.dumps(reconcile(reparsed, Observed(), now=NOW).apply) == json.dumps(first.apply)
    assert json.dumps(kserve_manifests(reparsed)) == json.dumps(kserve_manifests(deployment))
    resource = {
        "apiVersion": "genai.dev/v1alpha1",
        "kind": "GenAIDeployment",
        "metadata": {"name": deployment.name, "namespace": deployment.namespace},
        "spec": deployment.spec.wire(),
    }
    CR_SCHEMA.validate(resource)
    keys = [key_of(m) for m in first.apply]
    assert len(set(keys)) == len(keys)
    assert all(k.namespace == deployment.namespace for k in keys)


@PROFILE
@given(deployments())
def test_every_built_in_kind_validates_strictly_for_1_33(deployment: ResolvedDeployment) -> None:
    for manifest in reconcile(deployment, Observed(), now=NOW).apply:
        if manifest["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(manifest, "1.33.0", strict=True)


@PROFILE
@given(deployments())
def test_reconciling_what_was_applied_deletes_nothing_and_changes_nothing(
    deployment: ResolvedDeployment,
) -> None:
    plan = reconcile(deployment, Observed(), now=NOW)
    observed = Observed(
        existing=frozenset(key_of(m) for m in plan.apply),
        conditions=conditions_from(plan.status),
    )
    again = reconcile(deployment, observed, now=NOW + timedelta(minutes=1))
    assert again.delete == []
    assert json.dumps(again.apply) == json.dumps(plan.apply)
    assert again.status == plan.status  # transition times kept: nothing changed


@PROFILE
@given(deployments())
def test_once_every_revision_serves_it_is_ready_with_the_specs_weights(
    deployment: ResolvedDeployment,
) -> None:
    first = reconcile(deployment, Observed(), now=NOW)
    observed = Observed(
        existing=frozenset(key_of(m) for m in first.apply),
        revisions=serving(deployment),
        conditions=conditions_from(first.status),
    )
    plan = reconcile(deployment, observed, now=NOW + timedelta(minutes=1))
    assert plan.adapters == []
    assert plan.delete == []
    assert plan.ready
    states = {c["type"]: c["status"] for c in plan.status["conditions"]}
    assert states == {"Ready": "True", "Progressing": "False", "Degraded": "False"}
    assert plan.gateway is not None
    spec = deployment.spec
    assert [(t.name, t.weight) for t in plan.gateway.targets] == [
        (r.name, r.weight) for r in spec.traffic.revisions
    ]
    if spec.traffic.shadow is None:
        assert plan.gateway.shadow is None
    else:
        assert plan.gateway.shadow is not None
        assert (plan.gateway.shadow.target.name, plan.gateway.shadow.sample) == (
            spec.traffic.shadow.name,
            spec.traffic.shadow.sample,
        )
    assert all(r["serving"] for r in plan.status["revisions"])
