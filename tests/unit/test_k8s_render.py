"""Rendering a GenAIDeployment: manifests valid for Kubernetes, the CRD, status, refusals.

Every manifest of several representative specs validates strictly against Kubernetes'
own OpenAPI schemas (kubernetes-validate, for 1.33 and the newest it ships); the custom
resources validate against the CRD's schema (jsonschema). The registry is a small in-test
:class:`RegistryReader` returning real registry records: :func:`resolve` is the only caller,
and the real client's behaviour is tested in tests/integration/test_k8s_resolve.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]  # ships no py.typed
import pytest

from genai.deploy import (
    GenAIDeploymentSpec,
    Observed,
    PodState,
    ResolvedDeployment,
    RevisionState,
    conditions_from,
    crd,
    desired_objects,
    key_of,
    kserve_manifests,
    parse_k8s_spec,
    reconcile,
    resolve,
)
from genai.errors import NotFoundError, QuotaExceeded, ValidationError
from genai.registry import AdapterVersion, ModelVersion
from genai.tenancy import QuotaLimits, QuotaStatus

VERSIONS = ("1.33.0", kubernetes_validate.latest_version())
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UID = "6f1c2a7e-0d4b-4e57-9a59-1f0c8d2b7a11"
STORE = "s3://bucket/genai/artifacts"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ an in-test registry


def model_version(name: str, version: int = 1, **kw: Any) -> ModelVersion:
    values: dict[str, Any] = {
        "kind": "model",
        "name": name,
        "version": version,
        "description": "",
        "created_at": NOW,
        "created_by": "user:admin",
        "aliases": [],
        "source": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "revision": "",
        "license": "apache-2.0",
        "metadata": {},
    }
    values.update(kw)
    return ModelVersion(**values)


def adapter_version(name: str, version: int = 1, **kw: Any) -> AdapterVersion:
    values: dict[str, Any] = {
        "kind": "adapter",
        "name": name,
        "version": version,
        "description": "",
        "created_at": NOW,
        "created_by": "user:admin",
        "aliases": [],
        "base_model": "model:smollm2@1",
        "method": "lora",
        "rank": 8,
        "alpha": 16.0,
        "target_modules": ["q_proj", "v_proj"],
        "run": None,
        "artifact": digest(f"adapter:{name}@{version}"),
    }
    values.update(kw)
    return AdapterVersion(**values)


class Registry:
    """Entries per project, looked up as the registry does (NAME, NAME@N, kind:NAME@N);
    a missing entry raises the registry's own message, ``KIND:NAME@SEL not found``."""

    def __init__(self) -> None:
        self.models: dict[str, list[ModelVersion]] = {}
        self.adapters: dict[str, list[AdapterVersion]] = {}
        self.gpus: dict[str, int | None] = {}

    def _find(self, kind: str, entries: list[Any], ref: str) -> Any:
        name, _, selector = ref.removeprefix(f"{kind}:").partition("@")
        found = [e for e in entries if e.name == name]
        if selector and selector != "latest":
            found = [e for e in found if str(e.version) == selector or selector in e.aliases]
        if not found:
            raise NotFoundError(f"{kind}:{name}{'@' + selector if selector else ''} not found")
        return max(found, key=lambda e: e.version)

    def model(self, project: str, ref: str) -> ModelVersion:
        found: ModelVersion = self._find("model", self.models.get(project, []), ref)
        return found

    def adapter(self, project: str, ref: str) -> AdapterVersion:
        found: AdapterVersion = self._find("adapter", self.adapters.get(project, []), ref)
        return found

    def quota(self, project: str) -> QuotaStatus:
        return QuotaStatus(
            limits=QuotaLimits(gpus=self.gpus.get(project)),
            requests_this_minute=0,
            tokens_today=0,
            spend_usd_this_month=0.0,
        )


def registry() -> Registry:
    reg = Registry()
    reg.models["support"] = [
        model_version("smollm2"),
        model_version("other-base", source="Qwen/Qwen2.5-0.5B-Instruct", revision="main"),
        model_version("gguf", source="", artifact=digest("model:gguf@1")),
        model_version("local", source="/data/models/local"),
    ]
    reg.adapters["support"] = [
        adapter_version("tone"),
        adapter_version("tone", 2),
        adapter_version("faq"),
        adapter_version("qwen-tone", base_model="model:other-base@1"),
        adapter_version("big", rank=32),
        adapter_version("on-gguf", base_model="model:gguf@1"),
        adapter_version("dora", lint=["DoRA adapters are not served by vLLM"]),
    ]
    reg.gpus["support"] = 64
    reg.models["other"] = [model_version("secret")]
    reg.adapters["other"] = [adapter_version("secret-tone")]
    return reg


def spec_of(**fields: Any) -> GenAIDeploymentSpec:
    return parse_k8s_spec({"project": "support", "model": "smollm2@1", **fields})


def resolved_of(
    spec: GenAIDeploymentSpec, reg: Registry | None = None, **kw: Any
) -> ResolvedDeployment:
    options: dict[str, Any] = {
        "name": "bot",
        "namespace": "support",
        "artifacts_url": STORE,
        "uid": UID,
    }
    options.update(kw)
    return resolve(reg or registry(), spec, **options)


#: Representative specs, by what they exercise.
SPECS: dict[str, dict[str, Any]] = {
    "hpa": {
        "adapters": [{"ref": "tone@1"}, {"ref": "faq@1", "name": "faq"}],
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "target": 2.5},
    },
    "fixed-replicas": {"autoscaling": {"minReplicas": 2, "maxReplicas": 2}},
    "keda-scale-to-zero": {
        "adapters": [{"ref": "tone"}],
        "autoscaling": {
            "minReplicas": 0,
            "maxReplicas": 2,
            "engine": "keda",
            "metric": "num_requests_running",
            "target": 0.5,
        },
    },
    "canary-and-shadow": {
        "adapters": [{"ref": "tone@1"}],
        "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
        "traffic": {
            "revisions": [
                {"name": "stable", "weight": 90},
                {"name": "canary", "weight": 10, "adapters": [{"ref": "tone@2", "name": "tone"}]},
            ],
            "shadow": {"name": "shadow", "sample": 0.25, "image": "vllm/vllm-openai:v0.11.1"},
        },
    },
    "stored-model": {"model": "gguf@1", "adapters": [{"ref": "on-gguf"}]},
    "quantized": {
        "engine": {"quantization": "awq", "maxModelLen": 4096, "dtype": "float16"},
        "lora": {"maxLoras": 2, "maxLoraRank": 32, "maxCpuLoras": 8},
    },
    "gpu-type": {
        "model": "other-base",
        "resources": {"gpus": 2, "gpuType": "NVIDIA-H100-80GB-HBM3", "cpu": "8", "memory": "64Gi"},
        "engine": {"tensorParallelSize": 2, "gpuMemoryUtilization": 0.85},
    },
    "cpu-only": {"resources": {"gpus": 0, "cpu": "500m", "memory": "2Gi"}},
}


# ------------------------------------------------------------------ schemas

#: ServiceMonitor (prometheus-operator) and ScaledObject (KEDA) are custom resources:
#: kubernetes-validate has no schema for them, so these check the fields we write.
_META = {
    "type": "object",
    "required": ["name", "namespace", "labels"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "ownerReferences": {"type": "array"},
    },
}
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {
                        "matchLabels": {
                            "type": "object",
                            "additionalProperties": {"type": "string"},
                        }
                    },
                    "additionalProperties": False,
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                        },
                    },
                },
            },
        },
    },
}
SCALED_OBJECT = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": _META,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                    },
                },
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"const": "prometheus"},
                            # KEDA's trigger metadata is map[string]string
                            "metadata": {
                                "type": "object",
                                "required": ["serverAddress", "query", "threshold"],
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
CUSTOM = {"ServiceMonitor": SERVICE_MONITOR, "ScaledObject": SCALED_OBJECT}


def check_manifest(manifest: dict[str, Any]) -> None:
    schema = CUSTOM.get(manifest["kind"])
    if schema is not None:
        jsonschema.Draft7Validator(schema).validate(manifest)
        return
    for version in VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def draft7(node: Any) -> Any:
    """The CRD's OpenAPI 3.0 schema as JSON Schema draft 7: a boolean exclusiveMinimum /
    exclusiveMaximum next to minimum / maximum becomes the draft-7 number."""
    if isinstance(node, list):
        return [draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: draft7(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(flag) is True:
            out[flag] = out.pop(bound)
        elif out.get(flag) is False:
            out.pop(flag)
    return out


def cr_validator() -> jsonschema.Draft7Validator:
    schema = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return jsonschema.Draft7Validator(draft7(schema))


def custom_resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "genai.dev/v1alpha1",
        "kind": "GenAIDeployment",
        "metadata": {"name": "bot", "namespace": "support"},
        "spec": spec,
    }


# ------------------------------------------------------------------ valid manifests


@pytest.mark.parametrize("case", sorted(SPECS))
def test_every_manifest_validates_against_kubernetes_schemas(case: str) -> None:
    plan = reconcile(resolved_of(spec_of(**SPECS[case])), Observed(), now=NOW)
    kinds = set()
    for manifest in plan.apply:
        check_manifest(manifest)
        kinds.add(manifest["kind"])
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "NetworkPolicy",
    } <= kinds
    assert "ResourceQuota" in kinds


def test_each_spec_renders_what_it_asks_for() -> None:
    def rendered(case: str) -> dict[tuple[str, str], dict[str, Any]]:
        objects = desired_objects(resolved_of(spec_of(**SPECS[case])))
        return {(m["kind"], m["metadata"]["name"]): m for m in objects}

    hpa = rendered("hpa")
    assert hpa["HorizontalPodAutoscaler", "bot-stable"]["spec"]["maxReplicas"] == 3
    assert "replicas" not in hpa["Deployment", "bot-stable"]["spec"]
    assert rendered("fixed-replicas")["Deployment", "bot-stable"]["spec"]["replicas"] == 2
    assert not any(k == "HorizontalPodAutoscaler" for k, _ in rendered("fixed-replicas"))

    keda = rendered("keda-scale-to-zero")
    scaled = keda["ScaledObject", "bot-stable"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (0, 2)
    assert "vllm:num_requests_running" in scaled["triggers"][0]["metadata"]["query"]
    assert not any(k == "HorizontalPodAutoscaler" for k, _ in keda)

    shadow = rendered("canary-and-shadow")
    assert {n for k, n in shadow if k == "Deployment"} == {"bot-stable", "bot-canary", "bot-shadow"}
    image = shadow["Deployment", "bot-shadow"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "vllm/vllm-openai:v0.11.1"

    stored = rendered("stored-model")["Deployment", "bot-stable"]["spec"]["template"]["spec"]
    (init,) = stored["initContainers"]
    assert init["name"] == "fetch-model"
    assert digest("model:gguf@1") in init["args"]
    assert f"/models/{digest('model:gguf@1')}" in stored["containers"][0]["args"]

    quantized = rendered("quantized")["Deployment", "bot-stable"]["spec"]["template"]["spec"]
    args = quantized["containers"][0]["args"]
    for flag, value in (
        ("--quantization", "awq"),
        ("--max-model-len", "4096"),
        ("--max-lora-rank", "32"),
    ):
        assert args[args.index(flag) + 1] == value
    assert "--enable-lora" in args

    gpu = rendered("gpu-type")["Deployment", "bot-stable"]["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert (
        gpu["containers"][0]["args"][gpu["containers"][0]["args"].index("--revision") + 1] == "main"
    )

    cpu = rendered("cpu-only")["Deployment", "bot-stable"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in cpu["containers"][0]["resources"]["limits"]
    assert "tolerations" not in cpu


def test_resource_quota_is_the_projects_gpu_quota_or_absent() -> None:
    reg = registry()
    reg.gpus["support"] = 12
    objects = desired_objects(resolved_of(spec_of(), reg))
    (quota,) = [m for m in objects if m["kind"] == "ResourceQuota"]
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "12"}
    reg.gpus["support"] = None
    assert not any(
        m["kind"] == "ResourceQuota" for m in desired_objects(resolved_of(spec_of(), reg))
    )


def test_crd_validates_as_a_custom_resource_definition() -> None:
    definition = crd()
    for version in VERSIONS:
        kubernetes_validate.validate(definition, version, strict=True)
    assert json.dumps(crd(), sort_keys=False) == json.dumps(definition, sort_keys=False)


@pytest.mark.parametrize("case", sorted(SPECS))
def test_custom_resources_of_the_specs_validate_against_the_crd(case: str) -> None:
    cr_validator().validate(custom_resource(spec_of(**SPECS[case]).wire()))


def test_a_minimal_custom_resource_validates_against_the_crd() -> None:
    cr_validator().validate(custom_resource({"project": "support", "model": "smollm2"}))


BAD_CRS: dict[str, tuple[tuple[str, ...], Any]] = {
    "type: maxReplicas a string": (("autoscaling", "maxReplicas"), "three"),
    "minimum: maxReplicas 0": (("autoscaling", "maxReplicas"), 0),
    "maximum: gpus 17": (("resources", "gpus"), 17),
    "exclusive minimum: target 0": (("autoscaling", "target"), 0),
    "exclusive minimum: shadow sample 0": (("traffic", "shadow", "sample"), 0),
    "enum: engine vpa": (("autoscaling", "engine"), "vpa"),
    "enum: quantization int3": (("engine", "quantization"), "int3"),
    "type: adapters a mapping": (("adapters",), {"ref": "tone"}),
    "type: project a number": (("project",), 7),
    "too many revisions": (("traffic", "revisions"), [{"name": f"r{i}"} for i in range(9)]),
}


@pytest.mark.parametrize("case", sorted(BAD_CRS))
def test_bad_custom_resources_fail_the_crd_schema(case: str) -> None:
    path, value = BAD_CRS[case]
    spec = spec_of(**SPECS["canary-and-shadow"]).wire()
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    errors = list(cr_validator().iter_errors(custom_resource(spec)))
    assert errors, f"{case} passed the CRD schema"
    # and pydantic refuses the same spec, naming the field
    with pytest.raises(ValidationError) as caught:
        parse_k8s_spec(spec)
    assert caught.value.field is not None
    assert caught.value.field.startswith(".".join(path[:1]))


def test_a_custom_resource_without_spec_or_required_fields_fails() -> None:
    validator = cr_validator()
    no_spec = custom_resource({})
    del no_spec["spec"]
    assert list(validator.iter_errors(no_spec))
    assert list(validator.iter_errors(custom_resource({"project": "support"})))


# ------------------------------------------------------------------ names, owners, order


def test_owner_references_name_the_resource_when_it_has_a_uid() -> None:
    spec = spec_of(**SPECS["canary-and-shadow"])
    for manifest in desired_objects(resolved_of(spec)):
        if manifest["kind"] == "ResourceQuota":  # the project's, outliving any deployment
            assert "ownerReferences" not in manifest["metadata"]
            continue
        (owner,) = manifest["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "genai.dev/v1alpha1",
            "kind": "GenAIDeployment",
            "name": "bot",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    for manifest in desired_objects(resolved_of(spec, uid="")):
        assert "ownerReferences" not in manifest["metadata"]


def test_names_are_stable_and_the_order_deterministic() -> None:
    spec = spec_of(**SPECS["canary-and-shadow"])
    first = desired_objects(resolved_of(spec))
    again = desired_objects(resolved_of(parse_k8s_spec(spec.wire())))
    assert json.dumps(first) == json.dumps(again)
    assert [(k.kind, k.name) for k in map(key_of, first)] == [
        *[
            (kind, f"bot-{revision}")
            for revision in ("stable", "canary", "shadow")
            for kind in (
                "Deployment",
                "Service",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
                "ServiceMonitor",
            )
        ],
        ("NetworkPolicy", "bot"),
        ("ResourceQuota", "genai-project-quota"),
    ]
    assert len({key_of(m) for m in first}) == len(first)


def test_snake_case_and_camel_case_specs_render_the_same() -> None:
    camel = spec_of(autoscaling={"minReplicas": 1, "maxReplicas": 2}, lora={"maxLoraRank": 32})
    snake = spec_of(autoscaling={"min_replicas": 1, "max_replicas": 2}, lora={"max_lora_rank": 32})
    assert desired_objects(resolved_of(camel)) == desired_objects(resolved_of(snake))


def _deployments(resolved: ResolvedDeployment) -> list[str]:
    return [json.dumps(m) for m in desired_objects(resolved) if m["kind"] == "Deployment"]


def test_adapters_are_never_in_the_pod_template() -> None:
    """Adding, removing or changing an adapter leaves every Deployment byte-identical:
    pods keep running, and the adapter agent loads the change."""
    none = _deployments(resolved_of(spec_of()))
    one = _deployments(resolved_of(spec_of(adapters=[{"ref": "tone@1"}])))
    two = _deployments(resolved_of(spec_of(adapters=[{"ref": "tone@2"}, {"ref": "faq"}])))
    assert none == one == two
    canary = SPECS["canary-and-shadow"]
    other = copy.deepcopy(canary)
    other["traffic"]["revisions"][1]["adapters"] = [{"ref": "tone@1", "name": "tone"}]
    assert _deployments(resolved_of(spec_of(**canary))) == _deployments(
        resolved_of(spec_of(**other))
    )
    for text in one:
        assert "tone" not in text and digest("adapter:tone@1") not in text


def test_kserve_export_keeps_adapters_out_of_the_vllm_command_line_too() -> None:
    (service,) = kserve_manifests(resolved_of(spec_of(adapters=[{"ref": "tone@1"}])))
    assert "tone" not in json.dumps(service["spec"]["template"])


# ------------------------------------------------------------------ status


def loaded(*names: str, version: int = 1) -> dict[str, str]:
    """What a pod's vLLM serves: LoRA name -> the digest it was loaded from."""
    return {n: digest(f"adapter:{n}@{version}") for n in names}


def ready_pod(name: str, adapters: dict[str, str], *, ready: bool = True) -> PodState:
    return PodState(name, "10.0.0." + str(len(name)), ready, adapters)


def running(*pods: PodState) -> RevisionState:
    count = len(pods)
    return RevisionState(
        replicas=count,
        ready_replicas=sum(p.ready for p in pods),
        updated_replicas=count,
        pods=pods,
    )


def conditions(plan: Any) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan.status["conditions"]}


def test_status_when_nothing_runs() -> None:
    plan = reconcile(resolved_of(spec_of(adapters=[{"ref": "tone"}])), Observed(), now=NOW)
    assert conditions(plan) == {
        "Ready": ("False", "NoRevisionReady"),
        "Progressing": ("True", "RollingOut"),
        "Degraded": ("False", "AsExpected"),
    }
    assert plan.gateway is None and plan.adapters == [] and plan.delete == []
    assert not plan.ready
    assert plan.status["observedGeneration"] == 1
    assert [r["serving"] for r in plan.status["revisions"]] == [False]


def test_status_when_one_revision_serves_every_adapter() -> None:
    resolved = resolved_of(spec_of(adapters=[{"ref": "tone@1"}, {"ref": "faq"}]))
    observed = Observed(
        revisions={"stable": running(ready_pod("bot-stable-a", loaded("tone", "faq")))}
    )
    plan = reconcile(resolved, observed, now=NOW)
    assert conditions(plan) == {
        "Ready": ("True", "Serving"),
        "Progressing": ("False", "Complete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert plan.adapters == []
    assert plan.gateway is not None
    assert [(t.name, t.weight) for t in plan.gateway.targets] == [("stable", 1.0)]
    assert plan.gateway.targets[0].url == "http://bot-stable.support.svc.cluster.local:8000/v1"
    assert plan.gateway.adapters == ["faq", "tone"]


def test_a_ready_pod_missing_an_adapter_gets_a_load_and_is_not_ready() -> None:
    resolved = resolved_of(spec_of(adapters=[{"ref": "tone@1"}, {"ref": "faq"}]))
    pod = ready_pod("bot-stable-a", loaded("tone", "retired"))
    plan = reconcile(resolved, Observed(revisions={"stable": running(pod)}), now=NOW)
    assert [(a.op, a.adapter, a.pod, a.artifact) for a in plan.adapters] == [
        ("unload", "retired", "bot-stable-a", ""),
        ("load", "faq", "bot-stable-a", digest("adapter:faq@1")),
    ]
    assert conditions(plan)["Ready"] == ("False", "NoRevisionReady")
    assert conditions(plan)["Progressing"][0] == "True"
    assert plan.gateway is None
    # a pod not ready yet gets no action: its agent loads at start
    # ...and one serving another version under the adapter's name gets the wanted one
    old = ready_pod("bot-stable-a", {**loaded("faq"), **loaded("tone", version=2)})
    plan = reconcile(resolved, Observed(revisions={"stable": running(old)}), now=NOW)
    assert [(a.op, a.adapter, a.artifact) for a in plan.adapters] == [
        ("load", "tone", digest("adapter:tone@1"))
    ]
    assert not plan.ready
    # a digest the agent did not report ("") counts as the wanted version
    unknown = ready_pod("bot-stable-a", {"faq": "", "tone": ""})
    assert reconcile(resolved, Observed(revisions={"stable": running(unknown)}), now=NOW).ready
    unready = ready_pod("bot-stable-a", {}, ready=False)
    assert (
        reconcile(resolved, Observed(revisions={"stable": running(unready)}), now=NOW).adapters
        == []
    )


def test_a_shadow_not_ready_degrades_but_the_live_revisions_serve() -> None:
    resolved = resolved_of(spec_of(**SPECS["canary-and-shadow"]))
    observed = Observed(
        revisions={
            "stable": running(ready_pod("bot-stable-a", loaded("tone"))),
            "canary": running(ready_pod("bot-canary-a", loaded("tone", version=2))),
        }
    )
    plan = reconcile(resolved, observed, now=NOW)
    assert conditions(plan) == {
        "Ready": ("True", "Serving"),
        "Progressing": ("True", "RollingOut"),
        "Degraded": ("True", "RevisionsNotServing"),
    }
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert "shadow" in degraded["message"]
    assert plan.gateway is not None and plan.gateway.shadow is None
    assert [(t.name, t.weight) for t in plan.gateway.targets] == [
        ("stable", 90.0),
        ("canary", 10.0),
    ]
    # once the shadow serves, it is the gateway's shadow target at its sample
    observed.revisions["shadow"] = running(ready_pod("bot-shadow-a", loaded("tone")))
    plan = reconcile(resolved, observed, now=NOW)
    assert plan.gateway is not None and plan.gateway.shadow is not None
    assert (plan.gateway.shadow.target.name, plan.gateway.shadow.sample) == ("shadow", 0.25)
    assert conditions(plan)["Degraded"] == ("False", "AsExpected")


def test_last_transition_time_stays_while_a_condition_keeps_its_status() -> None:
    resolved = resolved_of(spec_of(adapters=[{"ref": "tone@1"}]))
    first = reconcile(resolved, Observed(), now=NOW)
    later = NOW + timedelta(minutes=5)
    second = reconcile(resolved, Observed(conditions=conditions_from(first.status)), now=later)
    assert second.status["conditions"] == first.status["conditions"]
    serving = Observed(
        revisions={"stable": running(ready_pod("p", loaded("tone")))},
        conditions=conditions_from(second.status),
    )
    third = reconcile(resolved, serving, now=later + timedelta(minutes=1))
    times = {c["type"]: c["lastTransitionTime"] for c in third.status["conditions"]}
    assert times == {
        "Ready": "2026-03-01T12:06:00Z",  # False -> True
        "Progressing": "2026-03-01T12:06:00Z",  # True -> False
        "Degraded": "2026-03-01T12:00:00Z",  # False all along
    }


def test_objects_no_longer_desired_are_deleted() -> None:
    canary = resolved_of(spec_of(**SPECS["canary-and-shadow"]))
    stable_only = resolved_of(spec_of(adapters=[{"ref": "tone@1"}], autoscaling={"maxReplicas": 2}))
    existing = frozenset(key_of(m) for m in desired_objects(canary))
    plan = reconcile(stable_only, Observed(existing=existing), now=NOW)
    assert {(k.kind, k.name) for k in plan.delete} == {
        (kind, f"bot-{revision}")
        for revision in ("canary", "shadow")
        for kind in (
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ServiceMonitor",
        )
    }
    assert plan.delete == sorted(plan.delete)


# ------------------------------------------------------------------ refusals in resolve


def refusal(spec: GenAIDeploymentSpec, reg: Registry | None = None, **kw: Any) -> Exception:
    with pytest.raises((NotFoundError, ValidationError, QuotaExceeded)) as caught:
        resolved_of(spec, reg, **kw)
    return caught.value


def test_another_projects_model_is_refused_as_one_that_does_not_exist() -> None:
    foreign = refusal(spec_of(model="secret@1"))
    missing = refusal(spec_of(model="nosuch@1"))
    assert type(foreign) is type(missing) is NotFoundError
    assert str(foreign).replace("secret", "NAME") == str(missing).replace("nosuch", "NAME")
    assert "other" not in str(foreign)
    assert "genai model register" in str(foreign)


def test_another_projects_adapter_is_refused_as_one_that_does_not_exist() -> None:
    foreign = refusal(spec_of(adapters=[{"ref": "secret-tone@1"}]))
    missing = refusal(spec_of(adapters=[{"ref": "nosuch-tone@1"}]))
    assert type(foreign) is type(missing) is NotFoundError
    assert str(foreign).replace("secret-tone", "NAME") == str(missing).replace(
        "nosuch-tone", "NAME"
    )
    assert "other" not in str(foreign)


def test_an_adapter_trained_on_another_base_is_refused() -> None:
    error = refusal(spec_of(adapters=[{"ref": "qwen-tone"}]))
    assert isinstance(error, ValidationError) and error.field == "adapters"
    assert "trained on model:other-base@1" in str(error) and "model:smollm2@1" in str(error)
    assert "model: other-base@1" in str(error)  # the fix: a revision on its own base
    # the same adapter on a revision that serves its base is fine
    spec = spec_of(
        adapters=[{"ref": "tone"}],
        traffic={
            "revisions": [
                {"name": "stable"},
                {
                    "name": "qwen",
                    "weight": 0,
                    "model": "other-base",
                    "adapters": [{"ref": "qwen-tone", "name": "tone"}],
                },
            ]
        },
    )
    assert [r.model.label for r in resolved_of(spec).revisions] == [
        "model:smollm2@1",
        "model:other-base@1",
    ]


def test_a_rank_above_max_lora_rank_is_refused() -> None:
    error = refusal(spec_of(adapters=[{"ref": "big"}]))
    assert isinstance(error, ValidationError) and error.field == "lora.maxLoraRank"
    assert "rank 32" in str(error) and "at least 32" in str(error)
    assert resolved_of(spec_of(adapters=[{"ref": "big"}], lora={"maxLoraRank": 32})).revisions


def test_gpus_over_the_projects_quota_are_refused() -> None:
    reg = registry()
    reg.gpus["support"] = 5
    spec = spec_of(**SPECS["canary-and-shadow"])  # 3 revisions x 2 replicas x 1 GPU
    error = refusal(spec, reg)
    assert isinstance(error, QuotaExceeded)
    assert "up to 6 GPUs" in str(error) and "may use 5" in str(error)
    assert "maxReplicas" in str(error)
    reg.gpus["support"] = 6
    assert resolved_of(spec, reg).gpu_quota == 6
    reg.gpus["support"] = None  # unlimited
    assert resolved_of(spec, reg).gpu_quota is None


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [
        ("Bot", "support", "name"),
        ("bot_1", "support", "name"),
        ("a" * 30, "support", "name"),
        ("-bot", "support", "name"),
        ("bot", "Support", "namespace"),
        ("bot", "support.ns", "namespace"),
        ("bot", "", "namespace"),
    ],
)
def test_invalid_kubernetes_names_are_refused(name: str, namespace: str, field: str) -> None:
    error = refusal(spec_of(), name=name, namespace=namespace)
    assert isinstance(error, ValidationError) and error.field == field
    assert "Kubernetes" in str(error)


def test_stored_artifacts_need_an_artifacts_url_pods_can_read() -> None:
    for spec in (spec_of(adapters=[{"ref": "tone"}]), spec_of(model="gguf")):
        error = refusal(spec, artifacts_url="")
        assert isinstance(error, ValidationError) and error.field == "artifacts_url"
        assert "--artifacts-url" in str(error)
    local = refusal(spec_of(), artifacts_url="/var/lib/genai/artifacts")
    assert isinstance(local, ValidationError) and local.field == "artifacts_url"
    # a Hugging Face model without adapters needs no store
    assert resolved_of(spec_of(), artifacts_url="").artifacts_url == ""


def test_a_model_from_a_local_directory_is_refused() -> None:
    error = refusal(spec_of(model="local"))
    assert isinstance(error, ValidationError) and error.field == "model"
    assert "/data/models/local" in str(error) and "Hugging Face id" in str(error)


def test_an_adapter_registered_without_files_is_refused() -> None:
    reg = registry()
    reg.adapters["support"].append(adapter_version("meta", artifact=""))
    error = refusal(spec_of(adapters=[{"ref": "meta"}]), reg)
    assert isinstance(error, ValidationError) and error.field == "adapters"
    assert "--path" in str(error)


def test_an_adapter_vllm_cannot_load_is_refused() -> None:
    error = refusal(spec_of(adapters=[{"ref": "dora"}]))
    assert isinstance(error, ValidationError) and error.field == "adapters"
    assert "DoRA" in str(error)


def test_more_adapters_than_vllm_keeps_are_refused() -> None:
    error = refusal(spec_of(adapters=[{"ref": "tone"}, {"ref": "faq"}], lora={"maxLoras": 1}))
    assert isinstance(error, ValidationError) and error.field == "lora.maxCpuLoras"


# ------------------------------------------------------------------ refusals in parse_k8s_spec


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"project": "support"}, "model", "required"),
        ({"model": "m"}, "project", "required"),
        ({"project": "p", "model": "m", "replicas": 3}, "replicas", "not permitted"),
        ({"project": "p", "model": "m", "lora": {"maxLoraRank": 24}}, "lora", "one of 8, 16"),
        (
            {"project": "p", "model": "m", "lora": {"maxLoras": 4, "maxCpuLoras": 2}},
            "lora",
            "maxCpuLoras 2",
        ),
        (
            {"project": "p", "model": "m", "autoscaling": {"minReplicas": 0}},
            "autoscaling",
            "engine: keda",
        ),
        (
            {"project": "p", "model": "m", "autoscaling": {"minReplicas": 3, "maxReplicas": 2}},
            "autoscaling",
            "above",
        ),
        (
            {"project": "p", "model": "m", "autoscaling": {"prometheusUrl": "prom:9090"}},
            "autoscaling",
            "http",
        ),
        ({"project": "p", "model": "m", "resources": {"gpus": 17}}, "resources.gpus", "16"),
        ({"project": "p", "model": "m", "resources": {"memory": "32GB"}}, "resources", "quantity"),
        (
            {"project": "p", "model": "m", "resources": {"gpuType": "H100 80GB"}},
            "resources",
            "label",
        ),
        ({"project": "p", "model": "m", "engine": {"image": "not an image"}}, "engine", "image"),
        (
            {"project": "p", "model": "m", "engine": {"tensorParallelSize": 2}},
            "spec",
            "tensorParallelSize",
        ),
        (
            {"project": "p", "model": "m", "traffic": {"revisions": [{"name": "Canary"}]}},
            "traffic.revisions.0",
            "revision name",
        ),
        (
            {
                "project": "p",
                "model": "m",
                "traffic": {"revisions": [{"name": "a"}, {"name": "a"}]},
            },
            "traffic",
            "unique",
        ),
        (
            {"project": "p", "model": "m", "traffic": {"revisions": [{"name": "a", "weight": 0}]}},
            "traffic",
            "weight above 0",
        ),
        (
            {
                "project": "p",
                "model": "m",
                "adapters": [{"ref": "tone"}],
                "traffic": {"revisions": [{"name": "a"}, {"name": "b", "adapters": []}]},
            },
            "spec",
            "same adapter names",
        ),
        (
            {"project": "p", "model": "m", "adapters": [{"ref": "a@1"}, {"ref": "a@2"}]},
            "spec",
            "two adapters",
        ),
    ],
)
def test_spec_problems_name_the_field_and_the_fix(
    data: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_k8s_spec(data)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"invalid GenAIDeployment spec at {field}: ")
    assert words in str(caught.value)


def test_a_spec_that_is_not_a_mapping_is_refused_and_a_whole_resource_accepted() -> None:
    with pytest.raises(ValidationError, match="mapping"):
        parse_k8s_spec(["project", "model"])
    spec = parse_k8s_spec(custom_resource({"project": "support", "model": "smollm2"}))
    assert spec.model == "smollm2"
    assert parse_k8s_spec(spec.wire()) == spec


# ------------------------------------------------------------------ KServe export


def test_kserve_has_one_llm_inference_service_per_revision() -> None:
    resolved = resolved_of(spec_of(**SPECS["canary-and-shadow"]))
    services = kserve_manifests(resolved)
    assert [(s["apiVersion"], s["kind"], s["metadata"]["name"]) for s in services] == [
        ("serving.kserve.io/v1alpha1", "LLMInferenceService", f"bot-{r}")
        for r in ("stable", "canary", "shadow")
    ]
    stable, canary, shadow = (s["spec"] for s in services)
    assert stable["model"]["uri"] == "hf://HuggingFaceTB/SmolLM2-135M-Instruct"
    assert stable["model"]["name"] == "smollm2"
    tone1, tone2 = digest("adapter:tone@1"), digest("adapter:tone@2")
    assert stable["model"]["lora"]["adapters"] == [
        {"uri": f"{STORE}/sha256/{tone1[:2]}/{tone1}", "name": "tone"}
    ]
    assert canary["model"]["lora"]["adapters"] == [
        {"uri": f"{STORE}/sha256/{tone2[:2]}/{tone2}", "name": "tone"}
    ]
    assert shadow["template"]["containers"][0]["image"] == "vllm/vllm-openai:v0.11.1"
    assert services[2]["metadata"]["labels"]["genai.dev/shadow"] == "true"
    assert services[2]["metadata"]["annotations"]["genai.dev/shadow-sample"] == "0.25"
    assert services[1]["metadata"]["annotations"]["genai.dev/weight"] == "10"
    assert all("ownerReferences" not in s["metadata"] for s in services)
    assert stable["replicas"] == 1


def test_kserve_engine_options_resources_and_stored_models() -> None:
    gpu = kserve_manifests(resolved_of(spec_of(**SPECS["gpu-type"])))[0]["spec"]
    (main,) = gpu["template"]["containers"]
    assert main["name"] == "main"  # the container of KServe's config-llm-template
    assert main["resources"]["limits"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert main["resources"]["requests"] == main["resources"]["limits"]
    args = main["args"]
    assert "--enable-lora" in args
    for flag, value in (
        ("--served-model-name", "other-base"),
        ("--port", "8000"),
        ("--max-loras", "4"),
        ("--max-lora-rank", "16"),
        ("--tensor-parallel-size", "2"),
        ("--revision", "main"),
    ):
        assert args[args.index(flag) + 1] == value
    assert gpu["template"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert "lora" not in gpu["model"]

    quantized = kserve_manifests(resolved_of(spec_of(**SPECS["quantized"])))[0]["spec"]
    args = quantized["template"]["containers"][0]["args"]
    assert args[args.index("--quantization") + 1] == "awq"
    assert args[args.index("--max-lora-rank") + 1] == "32"

    stored = kserve_manifests(resolved_of(spec_of(**SPECS["stored-model"])))[0]["spec"]
    model = digest("model:gguf@1")
    assert stored["model"]["uri"] == f"{STORE}/sha256/{model[:2]}/{model}"

    zero = kserve_manifests(resolved_of(spec_of(**SPECS["keda-scale-to-zero"])))[0]["spec"]
    assert zero["replicas"] == 1  # KServe v0.16 has no autoscaler field: the minimum, at least one
    fixed = kserve_manifests(resolved_of(spec_of(**SPECS["fixed-replicas"])))[0]["spec"]
    assert fixed["replicas"] == 2


@pytest.mark.parametrize("case", sorted(SPECS))
def test_kserve_pod_templates_are_valid_pod_specs_and_the_export_deterministic(case: str) -> None:
    spec = spec_of(**SPECS[case])
    services = kserve_manifests(resolved_of(spec))
    assert json.dumps(services) == json.dumps(
        kserve_manifests(resolved_of(parse_k8s_spec(spec.wire())))
    )
    for service in services:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": service["metadata"],
            "spec": service["spec"]["template"],
        }
        for version in VERSIONS:
            kubernetes_validate.validate(pod, version, strict=True)


@pytest.mark.parametrize("name", ["tone:v2", "../tone", "", "a b"])
def test_an_adapter_name_that_would_break_the_model_id_or_a_path_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="adapter name"):
        parse_k8s_spec(
            {"project": "p", "model": "m", "adapters": [{"ref": "tone@1", "name": name}]}
        )
