"""The README's Agents examples as a user runs them against `make run` (`genai up`): an
agent from YAML with a Python tool that waits for approval, approved and resumed from the
CLI, its trace shown; then a hosted agent on the demo's knowledge base called with the
openai SDK; and the project assistant `genai up` deployed, printing what the README shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import GENAI, Cli, UpProcess
from _servers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Agents\n")
    return readme[start : readme.index("\n## ", start + 1)]


@pytest.mark.slow
def test_the_readme_agents_run_wait_for_approval_resume_and_are_hosted(tmp_path: Path) -> None:
    section = _section()
    run_block, hosted_block = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    python_blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (client_code,) = [c for c in python_blocks if "docs-agent" in c]
    (assistant_code,) = [c for c in python_blocks if 'model="assistant"' in c]
    (shown,) = re.findall(r"```text\n(deployments .*?)```", section, flags=re.DOTALL)
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    examples = f"{ROOT}/examples/"
    with UpProcess(cli, free_port()) as up:
        up.wait_until_serving()
        key = up.key()
        env = cli.env | {
            "GENAI_GATEWAY_URL": up.v1,
            "GENAI_API_KEY": key,
            "PATH": f"{Path(GENAI).parent}:{os.environ['PATH']}",
        }

        def readme_python(code: str) -> subprocess.CompletedProcess[str]:
            """A README snippet, against this gateway with this key."""
            code = code.replace(":4000/", f":{up.port}/").replace("gk_...", key)
            ran = subprocess.run(
                [sys.executable, "-c", code],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert ran.returncode == 0, ran.stderr[-3000:]
            return ran

        assistant = readme_python(assistant_code)
        printed = assistant.stdout.splitlines()
        expected = shown.strip().splitlines()
        assert len(printed) == len(expected), printed
        for line, readme_line in zip(printed, expected, strict=True):
            assert line.startswith(readme_line.split("…")[0]), (line, readme_line)
        script = "\n".join(
            line.replace("examples/", examples)
            for line in (run_block + hosted_block).splitlines()
            if not line.startswith("export GENAI_API_KEY=")  # the test's own key instead
        )
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
        python = readme_python(client_code)
    out = shell.stdout
    assert re.search(r"awaiting_approval run_\w+ +2 model calls", out), out
    assert "refund" in out and "call_2 refund approved" in out
    assert re.search(r"completed run_\w+ +3 model calls", out), out
    # the tree: each model call with the tool call under it, then the answer
    assert re.search(r"tool order_status\(.*A-1042.*\) → ok: .*delivered", out), out
    assert re.search(r"tool refund\(.*\) → ok: refunded 30\.00 USD on A-1042", out), out
    # resume prints it; runs show has it in the tree and as the output
    assert out.count("I refunded the 30.00 USD of order A-1042.") == 3
    assert python.stdout.splitlines() == ["Run `make test` [1].", "completed 2"]
    # every model call of both agents is a ledger row of the demo key
    usage = cli.json("usage", "report", "-p", "demo", "--by", "model")
    requests = {r["model"]: r["requests"] for r in usage["rows"]}
    assert (requests["shop-model"], requests["docs-model"], requests["docs-agent"]) == (3, 2, 1)
    assert (requests["assistant"], requests["assistant-llm"]) == (2, 4)  # genai up's, ours
