"""`genai finetune validate|run|resume` and `genai registry runs show` as users run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _cli import Cli

pytestmark = pytest.mark.slow


def chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from genai.testing import tiny_model

    return tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def cli(tmp_path: Path, tiny: Path) -> Cli:
    """On SQLite only: each command is a whole process; the registry's own tests run on
    PostgreSQL too."""
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    cli("project", "create", "tuning")
    cli(
        "registry",
        "register-model",
        "tiny",
        "-p",
        "tuning",
        "--source",
        str(tiny),
        "--license",
        "apache-2.0",
    )
    return cli


def test_validate_reports_rows_and_fails_on_errors(cli: Cli, tmp_path: Path, tiny) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                chat("Hello", "Hi there."),
                {"messages": [{"role": "user", "content": "Hello"}]},
                chat("Hello", "Hi there."),
            ]
        )
    )
    bad = cli("finetune", "validate", str(rows), "--model", str(tiny), ok=False)
    assert bad.returncode == 1
    assert "row 2: 'messages' has no assistant turn" in bad.stdout
    assert "row 3: duplicates row 1" in bad.stdout
    assert "3 chat rows" in bad.stdout and "1 errors, 1 warnings" in bad.stdout
    rows.write_text(json.dumps(chat("Hello", "Hi there.")))
    good = cli("finetune", "validate", str(rows), "--model", str(tiny), "--json")
    report = json.loads(good.stdout)
    assert report["ok"] and report["trained_tokens"] > 0 and report["problems"] == []


def test_run_registers_and_runs_show_draws_the_loss(cli: Cli, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(chat(f"Code {i}?", f"It is {i * 3}.")) for i in range(12)))
    cli("registry", "register-dataset", "codes", str(rows), "-p", "tuning")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "name: codes\nbase_model: model:tiny\ndataset: dataset:codes\nepochs: 2\n"
        "batch_size: 4\nlearning_rate: 0.001\n"
    )
    done = cli("finetune", "run", str(recipe), "-p", "tuning", "--quiet")
    assert "registered adapter:codes@1" in done.stdout
    (run,) = cli.json("registry", "runs", "list", "-p", "tuning")
    assert run["status"] == "finished" and run["inputs"] == ["dataset:codes@1", "model:tiny@1"]
    shown = cli("registry", "runs", "show", f"run:{run['id']}", "-p", "tuning").stdout
    assert any(line.startswith("loss ") for line in shown.splitlines())
    assert "finished" in cli.fails("finetune", "resume", run["id"], "-p", "tuning")
    recipe.write_text("base_model: model:tiny\ndataset: dataset:codes\nrank: 0\n")
    assert "rank: Input should be greater than or equal to 1" in cli.fails(
        "finetune", "run", str(recipe), "-p", "tuning"
    )
