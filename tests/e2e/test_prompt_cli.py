"""`genai prompt …` as users run it (real processes, a real database), and the README's
Prompts section run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import GENAI, Cli

ROOT = Path(__file__).resolve().parents[2]
QA = """\
messages:
  - role: system
    content: |-
      Answer from {{ company }}'s documents.
      Be brief.
  - role: user
    content: "{{ question }}"
variables:
  company: {type: str, default: ACME}
  question: {type: str, description: The user's question}
"""


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """On SQLite only: the prompt registry's own tests run on PostgreSQL too, and each
    command here is a whole process."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    cli("project", "create", "shop")
    cli("project", "member", "add", "dev", "--project", "shop", "--role", "developer")
    return cli


def as_user(cli: Cli, user: str) -> Cli:
    other = Cli.__new__(Cli)
    other.env = cli.env | {"GENAI_USER": user}
    return other


def test_push_label_diff_render_history_rollback(cli: Cli, tmp_path: Path) -> None:
    qa = tmp_path / "qa.yaml"
    qa.write_text(QA)
    p = ("--project", "shop")
    out = cli("prompt", "push", str(qa), "--name", "qa", *p, "-m", "first cut", "-l", "production")
    assert "✓ pushed qa@1 (labels: production)" in out.stdout
    assert (
        "same content as qa@1: no new version"
        in cli("prompt", "push", str(qa), "-n", "qa", *p).stdout
    )

    rendered = cli("prompt", "render", "qa@production", *p, "--var", "question=Where is it?")
    assert "── system ──\nAnswer from ACME's documents.\nBe brief." in rendered.stdout
    assert "── user ──\nWhere is it?" in rendered.stdout
    as_json = cli.json(
        "prompt", "render", "qa", *p, "--vars", '{"company": "Globex", "question": "[b]x[/b]"}'
    )
    assert (
        as_json[0]["content"].startswith("Answer from Globex's")
        and as_json[1]["content"] == "[b]x[/b]"
    )

    # a developer pushes and labels staging; production is for maintainers and owners
    dev = as_user(cli, "dev")
    qa.write_text(QA.replace("Be brief.", "Cite the passage."))
    pushed = dev.json("prompt", "push", str(qa), "-n", "qa", *p, "-m", "cite", "--label", "staging")
    assert (pushed["ref"], pushed["author"], pushed["labels"]) == ("qa@2", "user:dev", ["staging"])
    assert pushed["content_hash"] and pushed["variables"]["question"]["type"] == "str"
    refused = dev.fails("prompt", "label", "qa@2", "production", *p)
    assert "maintainer" in refused

    diff = cli("prompt", "diff", "qa@production", "qa@staging", *p).stdout
    assert "--- qa@1" in diff and "+++ qa@2" in diff
    assert "-      Be brief." in diff and "+      Cite the passage." in diff
    assert "no differences" in cli("prompt", "diff", "qa@2", *p).stdout  # against the newest

    assert (
        "qa@production → 2 (moved from 1)"
        in cli("prompt", "label", "qa@2", "production", *p).stdout
    )
    history = cli.json("prompt", "history", "qa", *p)
    assert [(v["version"], v["labels"], v["message"]) for v in history] == [
        (2, ["production", "staging"], "cite"),
        (1, [], "first cut"),
    ]
    change = cli.json("prompt", "rollback", "qa", "production", *p)
    assert (change["from_version"], change["to_version"]) == (2, 1)
    moves = cli.json("prompt", "history", "qa", *p, "--labels")
    assert [(m["alias"], m["from_version"], m["to_version"], m["actor"]) for m in moves] == [
        ("production", None, 1, "user:admin"),
        ("staging", None, 2, "user:dev"),
        ("production", 1, 2, "user:admin"),
        ("production", 2, 1, "user:admin"),
    ]
    listed = cli.json("prompt", "list", *p)
    assert [(v["name"], v["version"]) for v in listed] == [("qa", 2)]
    table = cli("prompt", "list", *p).stdout
    assert "qa" in table and "company, question" in table

    # what `get --source` prints pushes back as the same version
    source = cli("prompt", "get", "qa@1", *p, "--source").stdout
    (tmp_path / "again.yaml").write_text(source)
    assert (
        "same content as qa@1"
        not in cli("prompt", "push", str(tmp_path / "again.yaml"), "-n", "qa", *p).stdout
    )
    assert cli.json("prompt", "get", "qa", *p)["version"] == 3  # a revert is a new version
    shown = cli("prompt", "get", "qa@production", *p).stdout
    assert "qa@1" in shown and "first cut" in shown and "question" in shown


def test_errors_are_one_line_and_name_the_problem(cli: Cli, tmp_path: Path) -> None:
    qa = tmp_path / "qa.yaml"
    qa.write_text(QA)
    p = ("--project", "shop")
    cli("prompt", "push", str(qa), "-n", "qa", *p)
    cli("project", "member", "add", "vera", *p, "--role", "viewer")
    cases = [
        (("prompt", "render", "qa", *p), "missing variable(s) 'question' (str)"),
        (
            ("prompt", "render", "qa", *p, "--var", "question=x", "--var", "qestion=y"),
            "unexpected variable(s) 'qestion'",
        ),
        (("prompt", "render", "qa", *p, "--var", "question"), "write NAME=VALUE"),
        (("prompt", "render", "qa", *p, "--vars", "{nope"), "--vars is not valid JSON"),
        (("prompt", "get", "qa@production", *p), "prompt:qa@production not found"),
        (("prompt", "get", "qa", "--project", "ghost"), "project 'ghost' not found"),
        (("prompt", "push", str(tmp_path / "ghost.yaml"), "-n", "qa", *p), "does not exist"),
        (("prompt", "rollback", "qa", "production", *p), "has no label 'production'"),
        (("prompt", "diff", "qa@1", "qa@9", *p), "prompt:qa@9 not found"),
    ]
    for args, expected in cases:
        assert expected in cli.fails(*args), args
    bad = tmp_path / "bad.yaml"
    bad.write_text("text: '{{ a }} {{ b }}'\nvariables: {a: str}\n")
    assert "does not declare: add them" in cli.fails("prompt", "push", str(bad), "-n", "x", *p)
    vera = as_user(cli, "vera")  # a viewer reads and renders, and pushes nothing
    assert "── user ──\nq" in vera("prompt", "render", "qa", *p, "--var", "question=q").stdout
    refused = vera.fails("prompt", "push", str(qa), "-n", "qa2", *p)
    assert "has role viewer" in refused and "needs role developer" in refused


# ------------------------------------------------------------------ the README


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index(f"## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end > 0 else None]


def _blocks(language: str, text: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_readme_prompts_section_runs(tmp_path: Path) -> None:
    section = _section("Prompts")
    (spec,) = _blocks("yaml", section)
    (shell,) = _blocks("bash", section)
    python, notebook, gateway = _blocks("python", section)
    assert spec.startswith("# qa.yaml")
    (tmp_path / "qa.yaml").write_text(spec)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {
        "GENAI_HOME": str(tmp_path / "home"),
        "GENAI_USER": "admin",
        "PATH": f"{Path(GENAI).parent}:{env['PATH']}",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        return result

    run(GENAI, "init")
    run(GENAI, "project", "create", "demo")
    out = run("bash", "-euo", "pipefail", "-c", shell).stdout
    assert "pushed qa@1 (labels: production)" in out and "same content as qa@1" in out
    assert "Quote the passage you used." in out and "Where is my invoice?" in out
    assert "+      Quote the passage and its title." in out
    assert "qa@production → 1 (moved from 2)" in out

    printed = run(sys.executable, "-c", python).stdout
    assert "<PromptVersion qa@1 [production] chat by user:alice>" in printed
    assert '"Answer from ACME\'s documents."' in printed
    assert "missing variable(s) 'question' (str)" in printed and "'qestion'" in printed
    assert "Answer from ACME's documents. Hi" in printed

    # the notebook, run as one script; then what its first cell would have displayed
    code = notebook + (
        "\ncard = hub.get('qa@production')._repr_html_()\n"
        "assert 'qa@1' in card and 'first cut' in card, card\n"
        "print(messages[1]['content'])\n"
    )
    out = run(sys.executable, "-c", code).stdout
    assert "--- qa@1" in out and "Where is my invoice?" in out
    assert 'extra_body={"prompt": "qa@production"' in gateway  # run by the gateway tests
