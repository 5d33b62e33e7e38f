"""`genai eval` as a user runs it: the README's Evaluation examples (the docs knowledge bot
of `genai up` evaluated with the suite in examples/eval, through the gateway): scores with
CIs, the HTML report, a re-run from the eval's cache, gates, and `genai eval gate`'s exit
codes with JUnit XML."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from _cli import GENAI, Cli, UpProcess
from _servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "examples" / "eval" / "docs-bot.yaml"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    return cli


def _eval_id(out: str) -> str:
    found = re.search(r"eval:([0-9a-f]{12})", out)
    assert found, out
    return found.group(1)


def _readme_blocks() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Evaluation\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    (commands,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return commands, code


def test_the_readme_evaluation_runs_reports_reruns_from_cache_and_gates(
    cli: Cli, tmp_path: Path
) -> None:
    commands, code = _readme_blocks()
    examples = f"{ROOT}/examples/"
    suites = tmp_path / "suites"
    shutil.copytree(SUITE.parent, suites)
    with UpProcess(cli, free_port()) as up:
        up.wait_until_serving()
        cli.env |= {"GENAI_GATEWAY_URL": up.v1, "GENAI_API_KEY": up.key()}
        env = cli.env | {"PATH": f"{Path(GENAI).parent}:{os.environ['PATH']}"}
        script = "\n".join(
            line.replace("examples/", examples)
            for line in commands.splitlines()
            if not line.startswith("export GENAI_API_KEY=")  # the test's own key instead
        )
        shell = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert shell.returncode == 0, shell.stdout[-3000:] + shell.stderr[-3000:]
        python = subprocess.run(
            [
                sys.executable,
                "-c",
                code.replace("examples/", examples).replace(":4000/", f":{up.port}/"),
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert python.returncode == 0, python.stderr[-3000:]

        # an impossible and a straddled bound: new suite versions, the same answers
        text = (suites / "docs-bot.yaml").read_text()
        ids = {}
        for name, bound in (("strict", "0.99"), ("straddle", "0.15")):
            path = suites / f"{name}.yaml"
            path.write_text(
                text.replace("{metric: cites, min: 0.7}", f"{{metric: token_f1, min: {bound}}}")
            )
            out = cli("eval", "run", str(path), "-t", "docs-bot", "-p", "demo", "-q").stdout
            ids[name] = _eval_id(out)

    # scores with their intervals, every metric of the suite, and the report
    first, second = shell.stdout.split("candidate vs baseline", 1)
    run_id = _eval_id(first)
    assert "95% CI" in first and "20 rows × 1" in first
    for metric in ("token_f1", "rouge_l", "embedding_similarity", "citation_support", "cites"):
        assert re.search(rf"{metric}\s+│\s+[0-9.]+\s+│\s+\[[0-9.]+, [0-9.]+\]", first), first
    html = (tmp_path / "docs-bot.html").read_text()
    assert 'data-chart="bars"' in html and "http://" not in html and "https://" not in html
    # the second run: every answer reused, the same scores, compared and gated
    usage = cli.json("usage", "report", "-p", "demo", "--by", "model")
    # `genai up`'s own question and the first run's 20: every later run was answered from
    # the eval's result cache, without a call (the project assistant's rows are `genai up`'s)
    rows = {r["model"]: r["requests"] for r in usage["rows"]}
    assert rows == {"docs-bot": 21, "assistant": 1, "assistant-llm": 2}
    assert "gate: pass (exit 0)" in second
    cases = ET.parse(tmp_path / "junit.xml").getroot().findall("./testsuite/testcase")
    assert len(cases) == 3 and not any(c.findall("failure") + c.findall("error") for c in cases)
    shown = cli.json("eval", "show", run_id, "-p", "demo")
    rerun = cli.json("eval", "show", _eval_id(second), "-p", "demo")
    for name, m in shown["run"]["metrics"].items():
        assert rerun["run"]["metrics"][name]["estimate"] == m["estimate"], name
    assert re.match(r"token F1 0\.\d\d \[0\.\d\d, 0\.\d\d\] over 20 rows\npass\n$", python.stdout)

    # the gate's other exit codes
    junit = tmp_path / "gate.xml"
    assert _gate(cli, run_id, "--junit", str(junit)) == 3  # no baseline: an error
    assert _gate(cli, ids["strict"], "--baseline", run_id, "--junit", str(junit)) == 1
    failures = ET.parse(junit).getroot().findall("./testsuite/testcase/failure")
    assert len(failures) == 1 and "token_f1" in junit.read_text()
    assert _gate(cli, ids["straddle"], "--baseline", run_id) == 2  # the CI straddles 0.15


def _gate(cli: Cli, eval_id: str, *args: str) -> int:
    result = cli("eval", "gate", eval_id, "-p", "demo", *args, ok=False)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode
