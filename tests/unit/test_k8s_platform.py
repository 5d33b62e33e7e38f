"""The platform's own Kubernetes manifests: schema-valid, deterministic, no secret values,
managed services left out, a kustomize base that re-renders byte for byte, the CLI."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from typer.testing import CliRunner

import apps.cli._k8s_platform  # noqa: F401 - registers `genai k8s platform`
from apps.cli._app import app
from genai.deploy import (
    PlatformOptions,
    SecretRef,
    dump_yaml,
    operator_rules,
    platform_manifests,
    platform_secret,
    required_secrets,
    write_kustomize,
)
from genai.errors import ValidationError

VERSIONS = ["1.33.0", kubernetes_validate.latest_version()]
#: Kinds the bundled Kubernetes schemas do not describe (custom resources): none are
#: rendered today; one that appears must be added here on purpose.
NO_SCHEMA: frozenset[str] = frozenset()
PASSWORD = "hunter2-not-in-any-manifest"

MANAGED = PlatformOptions(
    postgres_url=f"postgresql+psycopg://genai:{PASSWORD}@db.example.com:5432/genai",
    redis_url=f"rediss://:{PASSWORD}@cache.example.com:6380/0",
    chroma_url_secret=SecretRef(name="vectors", key="url"),
)
OPTION_SETS = {
    "default": PlatformOptions(),
    "managed": MANAGED,
    "small": PlatformOptions(
        namespace="ai",
        gateway_workers=1,
        gateway_replicas=1,
        storage_class="fast-ssd",
        artifact_root="s3://bucket/genai",
        operator=False,
        admin="root-admin",
    ),
}


def _kinds(manifests: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["kind"], m["metadata"]["name"]) for m in manifests]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("which", sorted(OPTION_SETS))
def test_every_object_validates_strictly(which: str, version: str) -> None:
    for manifest in platform_manifests(OPTION_SETS[which]):
        if manifest["kind"] in NO_SCHEMA:
            continue
        kubernetes_validate.validate(manifest, version, strict=True)


def test_strict_validation_catches_a_stray_field() -> None:
    deployment = next(m for m in platform_manifests(PlatformOptions()) if m["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def test_rendering_twice_gives_the_same_yaml() -> None:
    for options in OPTION_SETS.values():
        assert dump_yaml(platform_manifests(options)) == dump_yaml(platform_manifests(options))
    text = dump_yaml(platform_manifests(PlatformOptions()))
    documents = list(yaml.safe_load_all(text))
    assert documents == platform_manifests(PlatformOptions())
    assert text.count("\n---\n") == len(documents) - 1


def test_default_platform_runs_everything_in_order() -> None:
    manifests = platform_manifests(PlatformOptions())
    assert _kinds(manifests) == [
        ("Namespace", "genai-system"),
        ("CustomResourceDefinition", "genaideployments.genai.dev"),
        ("ConfigMap", "genai-platform"),
        ("Service", "genai-postgres"),
        ("StatefulSet", "genai-postgres"),
        ("Service", "genai-redis"),
        ("Deployment", "genai-redis"),
        ("Service", "genai-chroma"),
        ("StatefulSet", "genai-chroma"),
        ("NetworkPolicy", "genai-data"),
        ("Service", "genai-gateway"),
        ("Deployment", "genai-gateway"),
        ("PodDisruptionBudget", "genai-gateway"),
        ("ServiceAccount", "genai-operator"),
        ("ClusterRole", "genai-operator"),
        ("ClusterRoleBinding", "genai-operator"),
        ("Deployment", "genai-operator"),
    ]
    for m in manifests:
        assert m["metadata"]["labels"]["app.kubernetes.io/part-of"] == "genai"


def _gateway(options: PlatformOptions) -> dict[str, Any]:
    return next(
        m
        for m in platform_manifests(options)
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "genai-gateway"
    )


def test_gateway_runs_n_workers_with_health_probes_as_non_root() -> None:
    gateway = _gateway(PlatformOptions(gateway_workers=5, gateway_replicas=3))
    assert gateway["spec"]["replicas"] == 3
    pod = gateway["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] + container["args"] == [
        "genai",
        "gateway",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
        "--workers",
        "5",
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["envFrom"] == [
        {"configMapRef": {"name": "genai-platform"}},
        {"secretRef": {"name": "genai-platform"}},
    ]
    assert container["resources"]["limits"] and container["resources"]["requests"]
    assert pod["initContainers"][0]["command"] == ["genai", "init", "--admin", "platform-admin"]
    operator = next(
        m
        for m in platform_manifests(PlatformOptions())
        if m["kind"] == "Deployment" and m["metadata"]["name"] == "genai-operator"
    )
    env = operator["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GENAI_USER", "value": "platform-admin"} in env  # acts as that admin


def test_in_cluster_postgres_password_comes_from_a_secret() -> None:
    manifests = platform_manifests(PlatformOptions())
    config = next(m for m in manifests if m["kind"] == "ConfigMap")
    assert config["data"]["GENAI_DATABASE_URL"] == (
        "postgresql+psycopg://genai@genai-postgres.genai-system.svc.cluster.local:5432/genai"
    )
    postgres = next(m for m in manifests if m["kind"] == "StatefulSet" and "postgres" in str(m))
    env = postgres["spec"]["template"]["spec"]["containers"][0]["env"]
    password = next(e for e in env if e["name"] == "POSTGRES_PASSWORD")
    assert password == {
        "name": "POSTGRES_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "genai-postgres", "key": "password"}},
    }
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"] == {
        "requests": {"storage": "20Gi"}
    }
    gateway_env = _gateway(PlatformOptions())["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PGPASSWORD", "valueFrom": password["valueFrom"]} in gateway_env
    assert not any(m["kind"] == "Secret" for m in manifests)


def test_managed_services_are_not_run_and_their_urls_never_rendered() -> None:
    manifests = platform_manifests(MANAGED)
    text = dump_yaml(manifests)
    assert PASSWORD not in text
    assert "example.com" not in text  # not even the hosts of the managed URLs
    assert [k for k in _kinds(manifests) if k[0] in ("StatefulSet", "NetworkPolicy")] == []
    assert ("Deployment", "genai-redis") not in _kinds(manifests)
    config = next(m for m in manifests if m["kind"] == "ConfigMap")
    assert config["data"] == {}
    env = _gateway(MANAGED)["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs == {
        "GENAI_DATABASE_URL": {"name": "genai-platform", "key": "GENAI_DATABASE_URL"},
        "GENAI_REDIS_URL": {"name": "genai-platform", "key": "GENAI_REDIS_URL"},
        "GENAI_CHROMA_URL": {"name": "vectors", "key": "url"},
    }
    assert PASSWORD not in repr(MANAGED)
    needed = [(s.name, s.key) for s in required_secrets(MANAGED)]
    assert ("vectors", "url") in needed and ("genai-postgres", "password") not in needed


def test_only_platform_secret_holds_the_values() -> None:
    secret = platform_secret(MANAGED)
    assert secret is not None and secret["kind"] == "Secret"
    assert sorted(secret["stringData"]) == ["GENAI_DATABASE_URL", "GENAI_REDIS_URL"]
    kubernetes_validate.validate(secret, VERSIONS[0], strict=True)
    assert platform_secret(PlatformOptions()) is None


def test_one_managed_service_keeps_the_others() -> None:
    options = PlatformOptions(postgres_url_secret=SecretRef(name="db", key="url"))
    kinds = _kinds(platform_manifests(options))
    assert ("StatefulSet", "genai-postgres") not in kinds
    assert ("StatefulSet", "genai-chroma") in kinds and ("Deployment", "genai-redis") in kinds
    policy = next(m for m in platform_manifests(options) if m["kind"] == "NetworkPolicy")
    assert [p["port"] for p in policy["spec"]["ingress"][0]["ports"]] == [6379, 8000]


def test_operator_role_is_least_privilege() -> None:
    rules = operator_rules(PlatformOptions())
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert ("genai.dev", "genaideployments/status") in granted
    assert ("genai.dev", "genaideployments/finalizers") in granted
    assert ("keda.sh", "scaledobjects") in granted
    assert ("monitoring.coreos.com", "servicemonitors") in granted
    assert not any(r in ("secrets", "*") for _, r in granted)
    assert all("*" not in rule["verbs"] for rule in rules)
    pods = next(rule for rule in rules if rule["resources"] == ["pods"])
    assert pods["verbs"] == ["get", "list", "watch"]
    assert ("kopf.dev", "clusterkopfpeerings") not in granted  # the operator runs standalone
    without = _kinds(platform_manifests(PlatformOptions(operator=False)))
    assert not any("operator" in name or kind.startswith("Custom") for kind, name in without)


def test_kustomize_base_lists_exactly_the_files_and_rewrites_identically(tmp_path: Path) -> None:
    manifests = platform_manifests(PlatformOptions())
    paths = write_kustomize(manifests, tmp_path)
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert paths[-1] == tmp_path / "kustomization.yaml"
    assert kustomization["resources"] == [p.name for p in paths[:-1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    assert "gateway-deployment.yaml" in kustomization["resources"]
    before = {p.name: p.read_bytes() for p in paths}
    assert write_kustomize(manifests, tmp_path) == paths
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    for path, manifest in zip(paths[:-1], manifests, strict=True):
        assert yaml.safe_load(path.read_text()) == manifest


def test_kustomize_rewrite_drops_files_no_longer_rendered(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("kept")
    write_kustomize(platform_manifests(PlatformOptions()), tmp_path)
    paths = write_kustomize(platform_manifests(MANAGED), tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([p.name for p in paths] + ["mine.txt"])
    assert "postgres-statefulset.yaml" not in names


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
def test_kubectl_kustomize_builds_the_base(tmp_path: Path) -> None:
    manifests = platform_manifests(PlatformOptions())
    write_kustomize(manifests, tmp_path)
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    documents = [d for d in yaml.safe_load_all(built) if d]
    assert sorted(_kinds(documents)) == sorted(_kinds(manifests))


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"gateway_workers": 0}, "gateway_workers"),
        ({"gateway_replicas": 0}, "gateway_replicas"),
        ({"namespace": "Not_A_Namespace"}, "namespace"),
        ({"namespace": "x" * 64}, "namespace"),
        ({"image": "bad image"}, "image"),
        ({"postgres_storage": "lots"}, "postgres_storage"),
        ({"artifact_root": "/local/dir"}, "artifact_root"),
        ({"postgres_url": f"mysql://u:{PASSWORD}@h/db"}, "postgres_url"),
        ({"unknown": 1}, "unknown"),
        (
            {
                "redis_url": "redis://h:6379/0",
                "redis_url_secret": SecretRef(name="r", key="url"),
            },
            "redis_url_secret",
        ),
    ],
)
def test_bad_options_name_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PlatformOptions(**values)
    assert caught.value.field == field
    assert field in caught.value.message
    assert PASSWORD not in caught.value.message


def test_bad_secret_reference() -> None:
    with pytest.raises(ValidationError):
        SecretRef.parse("no-slash")
    with pytest.raises(ValidationError) as caught:
        SecretRef.parse("Upper/key")
    assert caught.value.field == "name"


# ------------------------------------------------------------------ the command line


def test_cli_prints_the_manifests() -> None:
    result = CliRunner().invoke(
        app, ["k8s", "platform", "--workers", "3", "--namespace", "ai", "--managed-postgres"]
    )
    assert result.exit_code == 0, (result.output, result.exception)
    documents = list(yaml.safe_load_all(result.stdout))
    expected = platform_manifests(
        PlatformOptions(
            namespace="ai",
            gateway_workers=3,
            postgres_url_secret=SecretRef(name="genai-platform", key="GENAI_DATABASE_URL"),
        )
    )
    assert documents == expected
    assert "genai-platform/GENAI_DATABASE_URL" in result.stderr


def test_cli_writes_a_kustomize_base(tmp_path: Path) -> None:
    out = tmp_path / "base"
    args = ["k8s", "platform", "--out", str(out), "--redis-url-secret", "cache/url"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    listed = yaml.safe_load((out / "kustomization.yaml").read_text())["resources"]
    assert "redis-deployment.yaml" not in listed and "gateway-deployment.yaml" in listed
    assert sorted([*listed, "kustomization.yaml"]) == sorted(p.name for p in out.iterdir())
    assert result.stdout.strip().startswith("✓")


def test_cli_rejects_bad_options_in_one_error() -> None:
    result = CliRunner().invoke(app, ["k8s", "platform", "--workers", "0"])
    assert result.exit_code != 0
    assert isinstance(result.exception, ValidationError)
    assert result.exception.field == "gateway_workers"
