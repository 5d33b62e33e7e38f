"""`genai deploy apply|list|show|traffic` as users run it: a real process, a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import Cli

SPEC = """\
# the README's example, shortened
targets:
  - {name: stable, url: http://127.0.0.1:8001/v1, model: tiny, adapter: support, weight: 90}
  - {name: canary, url: http://127.0.0.1:8001/v1, model: tiny, adapter: support-2, weight: 10}
policy: weighted
fallbacks:
  - {name: vendor, url: https://api.example.com/v1, model: gpt-x, api_key_secret: vendor-key}
retries: 1
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """On SQLite only: the CLI adds nothing database-specific (the registry's own tests run
    on PostgreSQL too), and each command is a whole process."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    cli("project", "create", "shop")
    _vendor_key(cli, "shop")
    return cli


def _vendor_key(cli: Cli, project: str) -> None:
    """The fallback's key, as the project secret the spec names."""
    cli.env["VENDOR_KEY"] = "sk-vendor-test"
    cli("secret", "set", "vendor-key", "-p", project, "--from-env", "VENDOR_KEY")


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_apply_list_show_and_traffic(cli: Cli, tmp_path: Path) -> None:
    out = cli("deploy", "apply", _write(tmp_path, "s.yaml", SPEC), "-p", "shop", "-n", "support")
    assert "deployment support revision 1 in shop: stable=90, canary=10" in out.stdout
    as_json = {"targets": [{"name": "solo", "url": "http://127.0.0.1:9/v1", "model": "m"}]}
    cli(
        "deploy",
        "apply",
        _write(tmp_path, "s.json", json.dumps(as_json)),
        "-p",
        "shop",
        "-n",
        "faq",
    )
    listed = cli.json("deploy", "list", "-p", "shop")
    assert [(d["name"], d["version"]) for d in listed] == [("faq", 1), ("support", 1)]
    assert listed[1]["spec"]["retries"] == 1 and "policy" in listed[1]["spec"]

    moved = cli("deploy", "traffic", "support", "-p", "shop", "--weights", "stable=50,canary=50")
    assert "revision 2: weighted, stable=50, canary=50" in moved.stdout
    cli(
        "deploy", "traffic", "support", "-p", "shop", "--shadow", "canary", "--shadow-sample", "0.2"
    )
    shadowed = cli.json("deploy", "show", "support", "-p", "shop")["spec"]
    assert [t["name"] for t in shadowed["targets"]] == ["stable"]
    assert shadowed["shadow"] == {"target": {**shadowed["shadow"]["target"]}, "sample": 0.2}
    assert shadowed["shadow"]["target"]["adapter"] == "support-2"
    cli("deploy", "traffic", "support", "-p", "shop", "--policy", "ab", "--sticky-header", "x-team")
    cli("deploy", "traffic", "support", "-p", "shop", "--weights", "canary=5")  # promotes it
    newest = cli.json("deploy", "show", "support", "-p", "shop")
    assert newest["version"] == 5 and "shadow" not in newest["spec"]
    assert newest["spec"]["policy"] == "ab" and newest["spec"]["sticky_header"] == "x-team"
    assert {t["name"]: t["weight"] for t in newest["spec"]["targets"]} == {
        "stable": 50,
        "canary": 5,
    }
    assert newest["description"] == "traffic: weights canary=5"
    first = cli.json("deploy", "show", "support", "-p", "shop", "--revision", "1")
    assert {t["name"]: t["weight"] for t in first["spec"]["targets"]} == {
        "stable": 90,
        "canary": 10,
    }

    shown = cli("deploy", "show", "support", "-p", "shop").stdout
    assert "revision 5" in shown and "sticky_header: x-team" in shown and "vendor" in shown
    table = cli("deploy", "list", "-p", "shop").stdout
    assert "support" in table and "stable=50, canary=5" in table
    audit = cli.json("audit", "list", "-p", "shop", "--action", "deployment.register")
    assert len(audit) == 6 and all(e["actor"] == "user:admin" for e in audit)


def test_bad_specs_and_changes_are_one_line_errors(cli: Cli, tmp_path: Path) -> None:
    """A few through the process; tests/unit/test_deploy_changes.py has the rest."""

    def apply(text: str, name: str = "bad.yaml") -> str:
        return cli.fails("deploy", "apply", _write(tmp_path, name, text), "-p", "shop", "-n", "x")

    bad_url = "targets:\n  - {name: a, url: ftp://example.com, model: m}\n"
    assert apply(bad_url) == (
        "error: invalid deployment spec at targets.0: target 'a': url 'ftp://example.com' is "
        "not an http(s) URL"
    )
    typo = "targets:\n  - {name: a, backend: extractive}\npolcy: ab\n"
    assert apply(typo) == "error: invalid deployment spec at polcy: Extra inputs are not permitted"
    assert apply("targets: [\n").startswith("error: ")  # not YAML: still one line
    assert cli.json("deploy", "list", "-p", "shop") == []  # nothing was applied

    cli("deploy", "apply", _write(tmp_path, "s.yaml", SPEC), "-p", "shop", "-n", "support")
    traffic = ("deploy", "traffic", "support", "-p", "shop")
    assert "no target named 'ghost'" in cli.fails(*traffic, "--weights", "ghost=1")
    assert "--policy: Input should be 'weighted', 'ab' or 'bandit'" in cli.fails(
        *traffic, "--policy", "random"
    )
    assert cli.json("deploy", "show", "support", "-p", "shop")["version"] == 1


def test_roles_and_projects_apply_to_deploy(cli: Cli, tmp_path: Path) -> None:
    spec = _write(tmp_path, "s.yaml", SPEC)
    cli("project", "member", "add", "bob", "-p", "shop", "--role", "viewer")
    cli("project", "create", "bank")
    _vendor_key(cli, "bank")
    cli("deploy", "apply", spec, "-p", "bank", "-n", "support")
    refused = cli.fails("--as", "bob", "deploy", "apply", spec, "-p", "shop", "-n", "support")
    assert "role viewer" in refused and "deployment:write" in refused
    assert cli.json("--as", "bob", "deploy", "list", "-p", "shop") == []  # viewers read
    hidden = cli.fails("--as", "bob", "deploy", "list", "-p", "bank")
    assert hidden == "error: project 'bank' not found"
    assert cli.fails("--as", "bob", "deploy", "list", "-p", "nowhere") == (
        "error: project 'nowhere' not found"
    )


def test_apply_refuses_an_adapter_vllm_cannot_serve(cli: Cli, tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "base").mkdir(parents=True)
    cli.env |= {"GENAI_INPROCESS_BACKENDS": "vllm,transformers", "GENAI_MODEL_ROOTS": str(models)}
    cli(
        "registry",
        "register-model",
        "base",
        "-p",
        "shop",
        "--source",
        str(models / "base"),
        "--license",
        "mit",
    )
    adapter = tmp_path / "dora"
    adapter.mkdir()
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    registered = cli(
        "registry", "register-adapter", "dora", str(adapter), "-p", "shop", "--base-model", "base"
    )
    assert "vLLM cannot serve adapter:dora@1" in registered.stderr
    assert "vllm#6983" in registered.stderr
    shown = cli.json("registry", "adapters", "show", "dora", "-p", "shop")
    assert (shown["method"], len(shown["lint"])) == ("dora", 1)

    def spec(backend: str) -> str:
        target = {"name": "gpu", "backend": backend, "options": {"model": str(models / "base")}}
        return _write(tmp_path, f"{backend}.json", json.dumps({"targets": [target]}))

    refused = cli.fails(
        "deploy", "apply", spec("vllm"), "-p", "shop", "-n", "svc", "--adapter", "dora"
    )
    assert "adapter:dora@1 cannot be served by vLLM" in refused and "vllm#6983" in refused
    assert cli.json("deploy", "list", "-p", "shop") == []
    applied = cli(
        "deploy", "apply", spec("transformers"), "-p", "shop", "-n", "svc", "--adapter", "dora"
    )
    assert "deployment svc revision 1" in applied.stdout
