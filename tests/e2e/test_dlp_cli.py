"""`genai dlp` as users run it: scan and redact files and standard input, and set a
project's policy with the project's permissions."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from _cli import GENAI, Cli

EMAIL, CARD = "alice@example.com", "4111 1111 1111 1111"
TEXT = f"Hi, I am {EMAIL}.\nMy card: {CARD}\n"


# SQLite only: the policy commands' store (PostgreSQL is covered elsewhere).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    runner = Cli(tmp_path / "home", db_url)
    runner.env["GENAI_DLP_NER"] = "none"  # pattern recognizers: quick to load
    return runner


def run(
    cli: Cli, *args: str, stdin: str | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [GENAI, *args], env=cli.env, input=stdin, capture_output=True, text=True, timeout=180
    )
    if ok:
        assert result.returncode == 0, f"genai {' '.join(args)} failed:\n{result.stderr}"
    return result


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_scan_lists_entities_with_spans_and_scores(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_text(TEXT)
    found = json.loads(run(cli, "dlp", "scan", str(source), "--json").stdout)
    assert [(f["entity_type"], f["line"], f["column"]) for f in found] == [
        ("EMAIL_ADDRESS", 1, 10),
        ("CREDIT_CARD", 2, 10),
    ]
    assert [TEXT[f["start"] : f["end"]] for f in found] == [EMAIL, CARD]
    assert all(0 < f["score"] <= 1 and f["recognizer"] for f in found)
    assert EMAIL not in json.dumps(found)  # values only with --show-text

    table = run(cli, "dlp", "scan", "-", stdin=TEXT).stdout
    assert "EMAIL_ADDRESS" in table and "CREDIT_CARD" in table and EMAIL not in table


def test_redact_files_and_stdin_with_a_policy(cli: Cli, tmp_path: Path) -> None:
    assert run(cli, "dlp", "redact", "-", stdin=TEXT).stdout == (
        "Hi, I am <EMAIL_ADDRESS>.\nMy card: <CREDIT_CARD>\n"
    )
    policy = tmp_path / "dlp.yaml"
    policy.write_text(
        "default_action: pseudonymise\n"
        "entities:\n"
        "  CREDIT_CARD: {action: mask, keep_last: 4}\n"
        "recognizers:\n"
        "  - {kind: deny_list, entity_type: CODENAME, values: [Bluebird]}\n"
    )
    source = tmp_path / "in.txt"
    source.write_text(TEXT + f"Again {EMAIL} about bluebird.\n")
    out = tmp_path / "out.txt"
    done = run(cli, "dlp", "redact", str(source), "--policy", str(policy), "-o", str(out))
    assert done.stdout == "" and "wrote" in done.stderr
    assert out.read_text() == (
        "Hi, I am <EMAIL_ADDRESS_1>.\nMy card: **** **** **** 1111\n"
        "Again <EMAIL_ADDRESS_1> about <CODENAME_1>.\n"
    )


def test_a_blocked_entity_fails_in_one_line_without_the_value(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "block.json"
    policy.write_text(json.dumps({"entities": {"CREDIT_CARD": "block"}}))
    line = one_line_error(
        run(cli, "dlp", "redact", "-", "--policy", str(policy), stdin=TEXT, ok=False)
    )
    assert "CREDIT_CARD (1)" in line and "standard input" in line and "4111" not in line
    assert "no such file" in one_line_error(
        run(cli, "dlp", "scan", str(tmp_path / "nope"), ok=False)
    )


def test_bad_policy_files_are_explained(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("default_action: shred\n")
    line = one_line_error(run(cli, "dlp", "redact", "-", "--policy", str(bad), stdin="x", ok=False))
    assert "default_action" in line and "not a valid DLP policy" in line
    missing = one_line_error(
        run(cli, "dlp", "redact", "-", "--policy", str(tmp_path / "none.yaml"), stdin="x", ok=False)
    )
    assert "cannot read the DLP policy file" in missing
    example = tmp_path / "example.yaml"
    example.write_text(run(cli, "dlp", "policy", "show", "--example").stdout)
    assert "ACCOUNT" in example.read_text()


def test_policy_set_and_show_follow_the_projects_permissions(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    cli("project", "create", "support")
    cli("user", "add", "vera")
    cli("project", "member", "add", "vera", "--project", "support", "--role", "viewer")
    cli("user", "add", "olga")
    policy = tmp_path / "dlp.yaml"
    policy.write_text("default_action: redact\nentities:\n  US_SSN: block\nfail_open: false\n")

    assert "sets no DLP policy" in run(cli, "dlp", "policy", "show", "support").stdout
    said = run(cli, "dlp", "policy", "set", "support", str(policy)).stdout
    assert "default redact" in said and "US_SSN: block" in said and "fails closed" in said
    shown = json.loads(run(cli, "dlp", "policy", "show", "support", "--json").stdout)
    assert shown["default_action"] == "redact" and shown["entities"]["US_SSN"]["action"] == "block"

    vera = dict(cli.env, GENAI_USER="vera")
    as_vera = subprocess.run(
        [GENAI, "dlp", "policy", "show", "support", "--json"],
        env=vera,
        capture_output=True,
        text=True,
    )
    assert json.loads(as_vera.stdout)["default_action"] == "redact"  # viewers may read it
    refused = subprocess.run(
        [GENAI, "dlp", "policy", "set", "support", "--off"],
        env=vera,
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1 and "project:update" in refused.stderr.replace("'", "")
    stranger = subprocess.run(
        [GENAI, "dlp", "policy", "show", "support"],
        env=dict(cli.env, GENAI_USER="olga"),
        capture_output=True,
        text=True,
    )
    assert stranger.returncode == 1 and "not found" in stranger.stderr  # no hint it exists

    assert "DLP is off" in run(cli, "dlp", "policy", "set", "support", "--off").stdout
    assert "sets no DLP policy" in run(cli, "dlp", "policy", "show", "support").stdout
    audit = cli.json("audit", "list", "--project", "support")
    assert sum(e["action"] == "project.set-option" for e in audit) == 2
