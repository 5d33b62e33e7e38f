"""Resolving a GenAIDeployment through a real client: tenancy, GPU quota, adapter bases.

Two projects on SQLite. A spec of project ``alpha`` that names ``beta``'s model or adapter
is refused exactly like one naming nothing at all; a principal of ``alpha`` cannot resolve
a spec whose project is ``beta`` (not found, as the platform answers for a project one is
not a member of); the project's GPU quota (``client.quotas.set(project, gpus=N)``) bounds
what a deployment may ask for.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from genai.deploy import ClientRegistry, Observed, parse_k8s_spec, reconcile, resolve
from genai.errors import GenAIError, NotFoundError, QuotaExceeded, ValidationError

pytestmark = pytest.mark.sqlite_only

A, B = "alpha", "beta"
HF = "HuggingFaceTB/SmolLM2-135M-Instruct"
STORE = "s3://bucket/genai/artifacts"
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _peft_dir(path: Path, rank: int = 8) -> Path:
    """A LoRA adapter directory: a PEFT config and (tiny) weights; registering it needs no
    model download."""
    path.mkdir(parents=True)
    config = {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": HF,
    }
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    return path


@pytest.fixture
def world(platform: Any, tmp_path: Path) -> dict[str, Any]:
    admin = platform()
    for project in (A, B):
        admin.projects.create(project)
    models = admin.registry.models
    models.register(A, "smollm2", source=HF, license="apache-2.0")
    models.register(A, "qwen", source="Qwen/Qwen2.5-0.5B-Instruct", license="apache-2.0")
    models.register(B, "bmodel", source=HF, license="apache-2.0")
    adapters = admin.registry.adapters
    adapters.register(A, "tone", base_model="smollm2", path=_peft_dir(tmp_path / "tone"))
    adapters.register(A, "big", base_model="smollm2", path=_peft_dir(tmp_path / "big", rank=32))
    adapters.register(A, "qwen-tone", base_model="qwen", path=_peft_dir(tmp_path / "qwen-tone"))
    adapters.register(B, "btone", base_model="bmodel", path=_peft_dir(tmp_path / "btone"))
    admin.projects.add_member(A, "alice", role="developer")
    return {"admin": admin, "alice": platform("alice")}


def render(client: Any, data: dict[str, Any], **kw: Any) -> Any:
    spec = parse_k8s_spec({"project": A, "model": "smollm2", **data})
    options: dict[str, Any] = {"name": "bot", "namespace": A, "artifacts_url": STORE}
    options.update(kw)
    return resolve(ClientRegistry(client), spec, **options)


def refused(client: Any, data: dict[str, Any]) -> GenAIError:
    with pytest.raises(GenAIError) as caught:
        render(client, data)
    return caught.value


def same_shape(one: GenAIError, other: GenAIError, names: tuple[str, str]) -> bool:
    return type(one) is type(other) and str(one).replace(names[0], "NAME") == str(other).replace(
        names[1], "NAME"
    )


def test_a_spec_that_renders(world: dict[str, Any]) -> None:
    resolved = render(
        world["alice"], {"adapters": [{"ref": "tone@1"}], "autoscaling": {"maxReplicas": 2}}
    )
    (revision,) = resolved.revisions
    assert revision.model.label == "model:smollm2@1" and revision.model.source == HF
    tone = world["admin"].registry.adapters.get(A, "tone")
    assert [(a.name, a.label, a.artifact, a.rank) for a in revision.adapters] == [
        ("tone", "adapter:tone@1", tone.artifact, 8)
    ]
    plan = reconcile(resolved, Observed(), now=NOW)
    assert {m["kind"] for m in plan.apply} >= {"Deployment", "Service", "HorizontalPodAutoscaler"}
    assert plan.status["conditions"][0]["lastTransitionTime"] == "2026-03-01T12:00:00Z"


@pytest.mark.parametrize("user", ["admin", "alice"])
def test_another_projects_model_is_refused_exactly_as_a_missing_one(
    world: dict[str, Any], user: str
) -> None:
    foreign = refused(world[user], {"model": "bmodel"})
    missing = refused(world[user], {"model": "no-such-model"})
    assert isinstance(foreign, NotFoundError)
    assert same_shape(foreign, missing, ("bmodel", "no-such-model"))
    assert B not in str(foreign)


@pytest.mark.parametrize("user", ["admin", "alice"])
def test_another_projects_adapter_is_refused_exactly_as_a_missing_one(
    world: dict[str, Any], user: str
) -> None:
    foreign = refused(world[user], {"adapters": [{"ref": "btone@1"}]})
    missing = refused(world[user], {"adapters": [{"ref": "no-such-tone@1"}]})
    assert isinstance(foreign, NotFoundError)
    assert same_shape(foreign, missing, ("btone", "no-such-tone"))
    assert B not in str(foreign) and "bmodel" not in str(foreign)


def test_a_member_of_one_project_cannot_resolve_a_spec_of_another(world: dict[str, Any]) -> None:
    alice = world["alice"]
    # what the platform answers elsewhere: a project one is not a member of is not found
    with pytest.raises(NotFoundError) as direct:
        alice.registry.models.get(B, "bmodel")
    spec = parse_k8s_spec({"project": B, "model": "bmodel"})
    with pytest.raises(NotFoundError) as caught:
        resolve(ClientRegistry(alice), spec, name="bot", namespace=B, artifacts_url=STORE)
    assert str(direct.value) in str(caught.value)
    nowhere = parse_k8s_spec({"project": "gamma", "model": "bmodel"})
    with pytest.raises(NotFoundError) as absent:
        resolve(ClientRegistry(alice), nowhere, name="bot", namespace=B, artifacts_url=STORE)
    assert str(caught.value).replace(f"'{B}'", "P") == str(absent.value).replace("'gamma'", "P")
    # the owner of beta resolves it
    assert resolve(
        ClientRegistry(world["admin"]), spec, name="bot", namespace=B, artifacts_url=STORE
    ).revisions


def test_an_api_key_of_one_project_cannot_resolve_a_spec_of_another(
    world: dict[str, Any], platform: Any
) -> None:
    admin = world["admin"]
    key = admin.keys.create(A, role="maintainer")
    bot = platform(api_key=key.secret)
    assert render(bot, {"adapters": [{"ref": "tone"}]}).revisions  # its own project
    spec = parse_k8s_spec({"project": B, "model": "bmodel"})
    with pytest.raises(NotFoundError):
        resolve(ClientRegistry(bot), spec, name="bot", namespace=B, artifacts_url=STORE)


def test_the_projects_gpu_quota_is_enforced(world: dict[str, Any]) -> None:
    admin, alice = world["admin"], world["alice"]
    data = {
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
        "resources": {"gpus": 2},
        "traffic": {
            "revisions": [{"name": "stable", "weight": 9}, {"name": "canary", "weight": 1}]
        },
    }
    assert render(alice, data).gpu_quota is None  # no quota: unlimited, and no ResourceQuota
    admin.quotas.set(A, gpus=11)
    with pytest.raises(QuotaExceeded) as caught:
        render(alice, data)
    assert "up to 12 GPUs" in str(caught.value) and "may use 11" in str(caught.value)
    admin.quotas.set(A, gpus=12)
    resolved = render(alice, data)
    assert resolved.gpu_quota == 12
    plan = reconcile(resolved, Observed(), now=NOW)
    (quota,) = [m for m in plan.apply if m["kind"] == "ResourceQuota"]
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "12"}
    # another project's quota is its own
    admin.quotas.set(B, gpus=0)
    assert render(alice, data).gpu_quota == 12


def test_an_adapter_registered_on_another_base_is_refused(world: dict[str, Any]) -> None:
    error = refused(world["alice"], {"adapters": [{"ref": "qwen-tone"}]})
    assert isinstance(error, ValidationError) and error.field == "adapters"
    assert "model:qwen@1" in str(error) and "model:smollm2@1" in str(error)
    # on a revision that serves its base it is fine
    resolved = render(world["alice"], {"model": "qwen", "adapters": [{"ref": "qwen-tone"}]})
    assert resolved.revisions[0].adapters[0].label == "adapter:qwen-tone@1"


def test_a_rank_above_max_lora_rank_is_refused(world: dict[str, Any]) -> None:
    error = refused(world["alice"], {"adapters": [{"ref": "big"}]})
    assert isinstance(error, ValidationError) and error.field == "lora.maxLoraRank"
    assert render(
        world["alice"], {"adapters": [{"ref": "big"}], "lora": {"maxLoraRank": 32}}
    ).revisions
