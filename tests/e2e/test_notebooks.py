"""The notebooks of examples/notebooks as users run them: each executed fresh (nbclient, a
Jupyter kernel of this venv's python) on a platform it starts itself, its key cells'
outputs asserted. The files in git carry no outputs."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "examples" / "notebooks"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _require(module: str) -> None:
    """A missing notebook dependency skips on a developer's machine and fails in CI."""
    try:
        __import__(module)
    except ImportError as exc:
        if IN_CI:
            raise AssertionError(f"{module} is missing: install the dev extra") from exc
        pytest.skip(f"{module} is not installed (the dev extra)")


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec that runs this python (not whatever `python3` kernel a user has)."""
    for module in ("nbclient", "nbformat", "ipykernel"):
        _require(module)
    spec = tmp_path / "jupyter" / "kernels" / "genai-venv"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "genai venv", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name in [k for k in os.environ if k.startswith("GENAI_")]:
        monkeypatch.delenv(name)
    return "genai-venv"


def _execute(name: str, kernel: str) -> list[Any]:
    """The notebook's cells after a fresh run; a failing cell fails the test with its error."""
    import nbformat
    from nbclient import NotebookClient

    read: Any = nbformat.read  # untyped
    nb = read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=300,
        kernel_name=kernel,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()
    return list(nb.cells)


def _text(cells: list[Any]) -> str:
    """Everything the code cells printed or showed as text."""
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("name") == "stdout":
                parts.append(out["text"])
            elif "data" in out:
                parts.append(out["data"].get("text/plain", "") + "\n")
    return "".join(parts)


def _html(cells: list[Any]) -> list[str]:
    return [
        out["data"]["text/html"]
        for cell in cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "text/html" in out.get("data", {})
    ]


@pytest.mark.parametrize(
    "name", ["agent_app.ipynb", "prompts.ipynb", "finetune_eval_promote.ipynb"]
)
def test_the_notebooks_are_kept_without_outputs(name: str) -> None:
    nb = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "What it needs" in "".join(nb["cells"][0]["source"])
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["source"]


def test_the_agent_app_notebook_waits_for_approval_holds_its_budget_and_is_hosted(
    kernel: str,
) -> None:
    out = _text(_execute("agent_app.ipynb", kernel))
    run = re.search(r"run (run_\w+) status: awaiting_approval steps: 3\n", out)
    assert run, out
    assert "pending: call_3 refund {'order': 'A-1042', 'amount': 30}" in out
    assert "order state before approval: delivered" in out
    assert "approval: call_3 refund approved by user:admin" in out
    assert f"run {run.group(1)} status: completed steps: 4\n" in out
    assert "answer: I refunded the 30.00 USD of order A-1042." in out
    assert "order state after approval: refunded" in out
    # the trace: the knowledge base searched (the policy found), the order, the refund
    assert re.search(r"tool +kb_search +ok .*14 days", out), out
    assert re.search(r"tool +order_status +ok", out) and re.search(r"tool +refund +ok", out)
    assert "budget run status: max_steps steps: 2" in out
    assert "hosted answer: Refunds are accepted within 14 days of delivery [1]." in out
    assert "hosted run status: completed steps: 2" in out
    assert out.rstrip().endswith("genai up stopped")


def test_the_prompts_notebook_pushes_diffs_labels_rolls_back_and_compares(kernel: str) -> None:
    cells = _execute("prompts.ipynb", kernel)
    out = _text(cells)
    assert "pushed refunds@1 labels: ('production',)" in out
    assert "refused: prompt refunds@1: missing variable(s) 'question'" in out
    assert "same content: refunds@1 (created: False )" in out
    assert "pushed refunds@2 labels: ('staging',)" in out
    assert "--- refunds@1\n+++ refunds@2\n" in out
    assert "-      [policy] Refunds are accepted within 14 days of delivery." in out
    assert "+      [policy] Refunds are accepted within 30 days of delivery," in out
    # side by side through the gateway: each version's answer quotes its own policy
    assert "refunds@1: Refunds are accepted within 14 days of delivery [policy]." in out
    assert "refunds@2: Refunds are accepted within 30 days of delivery" in out
    assert "production: refunds@1 -> refunds@2" in out
    assert "rolled back production: refunds@2 -> refunds@1" in out
    assert "ChatPromptTemplate variables: ['question']" in out
    html = _html(cells)
    cards = [h for h in html if h.startswith("<div") and "refunds@" in h]
    assert len(cards) == 2 and "refunds@1" in cards[0] and "refunds@2" in cards[1], html
    assert any("<table>" in h and "30 days" in h for h in html), html
    assert out.rstrip().endswith("genai up stopped")


def test_the_finetune_notebook_trains_evaluates_and_promotes_through_the_gate(kernel: str) -> None:
    _require("matplotlib")
    cells = _execute("finetune_eval_promote.ipynb", kernel)
    out = _text(cells)
    assert "dataset:capitals@1 rows per split: {'test': 46, 'train': 26}" in out, out
    run = re.search(r"run:(\w+) finished, final loss ([\d.]+)", out)
    assert run and float(run.group(2)) < 0.5, out  # it learned the format
    assert "adapter: adapter:capitals@1" in out
    assert "with adapters ['capitals']" in out
    assert "deployment:capitals@1 {'stable': 90, 'canary': 10}" in out
    # before and after, on the held-out split: the base never answers in the format
    scores = re.search(r"held-out exact answers: before (\d+)%, after (\d+)%", out)
    assert scores and int(scores.group(1)) == 0 and int(scores.group(2)) >= 20, out
    # the paired test says the improvement is real, not noise
    exact = re.search(
        r"exact_match: 0.00 -> ([\d.]+), difference \+[\d.]+ \[\+([\d.]+), .*p=(\S+): (\w+)", out
    )
    assert exact, out
    assert float(exact.group(2)) > 0 and float(exact.group(3)) < 0.05, exact.group(0)
    assert exact.group(4) == "better"
    # the base's own run is refused; the adapter's passes and moves the canary to 100%
    assert re.search(r"refused: eval:\w+ did not pass its gate \(fail\): deployment:capitals", out)
    assert re.search(r"gate: pass -> deployment:capitals@2", out), out
    assert "deployment:capitals@2 {'stable': 0.0, 'canary': 100.0}" in out
    edges = set(re.findall(r"^(\w+):\S+ -> (\w+):\S+ \((\w+)\)$", out, re.M))
    for edge in [
        ("dataset", "run"),
        ("run", "adapter"),
        ("adapter", "deployment"),
        ("deployment", "eval"),
        ("eval", "deployment"),
    ]:
        assert any(e[:2] == edge for e in edges), (edge, sorted(edges))
    assert any("<svg" in h or "eval:" in h for h in _html(cells))  # the run's report
    assert any("image/png" in o.get("data", {}) for c in cells for o in c.get("outputs", []))
    assert out.rstrip().endswith("genai up stopped")
