"""`genai secret set|list|delete`, and the specs and `genai up` that use secrets, as users
run them: a real process, a real database. A value goes in and is never printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _cli import GENAI, Cli

VALUE = "sk-cli-9a8b7c6d5e"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """On SQLite only: the service's own tests run on PostgreSQL too."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    cli("project", "create", "shop")
    return cli


def piped(cli: Cli, *args: str, value: str) -> subprocess.CompletedProcess[str]:
    """``genai ARGS`` with ``value`` on standard input (as `printf … | genai …` does)."""
    return subprocess.run(
        [GENAI, *args], env=cli.env, input=value, capture_output=True, text=True, timeout=120
    )


def test_set_list_and_delete_never_print_a_value(cli: Cli) -> None:
    stdin = piped(cli, "secret", "set", "vendor", "-p", "shop", value=VALUE + "\n")
    assert stdin.returncode == 0, stdin.stderr
    assert "secret vendor set in shop" in stdin.stdout and "api_key_secret: vendor" in stdin.stdout
    cli.env["MY_KEY"] = "sk-from-my-shell"
    from_env = cli("secret", "set", "other", "-p", "shop", "--from-env", "MY_KEY")

    listed = cli.json("secret", "list", "-p", "shop")
    assert [s["name"] for s in listed] == ["other", "vendor"]
    assert all(s["created_by"] == "user:admin" for s in listed)
    table = cli("secret", "list", "-p", "shop").stdout
    assert "vendor" in table and "other" in table
    audit = cli("audit", "list", "-p", "shop").stdout
    for out in (stdin.stdout, stdin.stderr, from_env.stdout, json.dumps(listed), table, audit):
        assert VALUE not in out and "sk-from-my-shell" not in out

    assert (
        "secret vendor deleted from shop" in cli("secret", "delete", "vendor", "-p", "shop").stdout
    )
    assert [s["name"] for s in cli.json("secret", "list", "-p", "shop")] == ["other"]
    assert cli.fails("secret", "delete", "vendor", "-p", "shop") == (
        "error: secret 'vendor' not found in project 'shop': `genai secret list --project "
        "shop` shows its secrets"
    )


def test_bad_values_and_roles_are_one_line_errors(cli: Cli) -> None:
    two_lines = piped(cli, "secret", "set", "k", "-p", "shop", value="sk-one\nsk-two\n")
    assert two_lines.returncode == 1 and "one line" in two_lines.stderr
    assert "sk-one" not in two_lines.stderr and len(two_lines.stderr.strip().splitlines()) == 1
    unset = cli.fails("secret", "set", "k", "-p", "shop", "--from-env", "NOT_SET_HERE")
    assert unset.startswith("error: --from-env NOT_SET_HERE: that variable is not set")

    cli("project", "member", "add", "bob", "-p", "shop", "--role", "developer")
    cli.env["K"] = VALUE
    refused = cli.fails("--as", "bob", "secret", "set", "k", "-p", "shop", "--from-env", "K")
    assert "role developer" in refused and "secret:write" in refused
    assert cli.json("--as", "bob", "secret", "list", "-p", "shop") == []  # names: any member
    assert cli.fails("--as", "bob", "secret", "list", "-p", "nowhere") == (
        "error: project 'nowhere' not found"
    )


def test_deploy_apply_refuses_a_variable_and_names_the_migration(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "targets:\n  - {name: vendor, url: https://api.example.com/v1, model: gpt-x, "
        "api_key_env: VENDOR_KEY}\n",
        encoding="utf-8",
    )
    cli.env["VENDOR_KEY"] = VALUE  # set in the shell or not: the same refusal
    refused = cli.fails("deploy", "apply", str(spec), "-p", "shop", "-n", "chat")
    assert refused == (
        "error: target 'vendor' reads its key from the environment variable VENDOR_KEY, which "
        "this gateway's operator has not allowed (GENAI_SECRET_ENV_ALLOWLIST). Store the key "
        "as a project secret — `genai secret set vendor-key --project shop` (or PUT "
        "/api/projects/shop/secrets/vendor-key) — and write `api_key_secret: vendor-key` in "
        "the target"
    )
    spec.write_text(
        spec.read_text().replace("api_key_env: VENDOR_KEY", "api_key_secret: vendor-key")
    )
    missing = cli.fails("deploy", "apply", str(spec), "-p", "shop", "-n", "chat")
    assert "`genai secret set vendor-key --project shop`" in missing
    cli("secret", "set", "vendor-key", "-p", "shop", "--from-env", "VENDOR_KEY")
    cli("deploy", "apply", str(spec), "-p", "shop", "-n", "chat")
    shown = cli.json("deploy", "show", "chat", "-p", "shop")
    assert shown["spec"]["targets"][0]["api_key_secret"] == "vendor-key"
    assert VALUE not in json.dumps(shown)


@pytest.mark.slow
def test_up_stores_the_upstream_key_as_a_project_secret(cli: Cli, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Tests\nRun the tests with make test.\n", encoding="utf-8")
    cli.env["UPSTREAM_KEY"] = VALUE
    out = cli(
        "up",
        "--no-serve",
        "--docs",
        str(docs),
        "--upstream",
        "http://127.0.0.1:9/v1",
        "--upstream-model",
        "m",
        "--upstream-key-env",
        "UPSTREAM_KEY",
    ).stdout
    assert "the project secret upstream-key" in out and VALUE not in out
    assert [s["name"] for s in cli.json("secret", "list", "-p", "demo")] == ["upstream-key"]
    llm = cli.json("deploy", "show", "docs-bot", "-p", "demo")["spec"]["targets"][0]["options"]
    assert llm["llm"] == {
        "url": "http://127.0.0.1:9/v1",
        "model": "m",
        "api_key_secret": "upstream-key",
    }
