"""examples/ci as a CI system runs it: `eval-gate.sh` against the gateway of `genai up`
(the demo project's docs knowledge bot), once with the example's gate (exit 0, a JUnit
report without failures), once with a gate no answer can meet (exit 1, the failing check
in the JUnit report), and once against a baseline with a no-regression check (exit 0)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from _cli import GENAI, Cli, UpProcess
from _servers import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "ci" / "eval-gate.sh"

pytestmark = pytest.mark.slow


def _gate(env: dict[str, str], out: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env=env | {"GENAI_EVAL_OUT": str(out), **settings},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _junit(path: Path) -> dict[str, list[str]]:
    """Each test case's name → the messages of its failures, errors and skips."""
    root = ET.parse(path).getroot()
    cases = root.findall("./testsuite/testcase")
    assert cases, path.read_text()
    return {
        str(c.get("name")): [
            str(f.get("message")) for f in c if f.tag in ("failure", "error", "skipped")
        ]
        for c in cases
    }


def test_the_ci_eval_job_passes_and_fails_by_its_gate(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'genai.db'}")
    cli("init")
    strict = tmp_path / "strict.yaml"
    strict.write_text("thresholds:\n  - {metric: token_f1, min: 0.999}\n")
    guarded = tmp_path / "guarded.yaml"
    guarded.write_text(
        "thresholds:\n"
        "  - {metric: cites, min: 0.7}\n"
        "  - {metric: token_f1, no_regression: true, margin: 0.1}\n"
    )
    with UpProcess(cli, free_port()) as up:
        up.wait_until_serving()
        env = cli.env | {
            "GENAI_GATEWAY_URL": up.v1,
            "GENAI_API_KEY": up.key(),
            "PATH": f"{Path(GENAI).parent}:{os.environ['PATH']}",
        }
        passing = _gate(env, tmp_path / "pass")
        failing = _gate(env, tmp_path / "fail", GENAI_EVAL_GATE=str(strict))
        regress = _gate(
            env, tmp_path / "regress", GENAI_EVAL_GATE=str(guarded), GENAI_EVAL_BASELINE="docs-bot"
        )
        no_key = _gate({k: v for k, v in env.items() if k != "GENAI_API_KEY"}, tmp_path / "x")

    assert passing.returncode == 0, passing.stdout[-3000:] + passing.stderr[-3000:]
    assert "gate: pass (exit 0)" in passing.stdout
    cases = _junit(tmp_path / "pass" / "junit.xml")
    assert len(cases) == 2 and not any(cases.values()), cases
    assert "embedding_similarity" in " ".join(cases) and "cites" in " ".join(cases)
    assert (tmp_path / "pass" / "report.html").read_text().startswith("<!")

    assert failing.returncode == 1, failing.stdout[-3000:] + failing.stderr[-3000:]
    assert "gate: fail (exit 1)" in failing.stdout
    (case,) = _junit(tmp_path / "fail" / "junit.xml").items()
    assert "token_f1" in case[0] and len(case[1]) == 1, case

    assert regress.returncode == 0, regress.stdout[-3000:] + regress.stderr[-3000:]
    cases = _junit(tmp_path / "regress" / "junit.xml")
    assert len(cases) == 2 and not any(cases.values()), cases
    assert "no regression" in regress.stdout

    assert no_key.returncode != 0 and "GENAI_API_KEY" in no_key.stderr
