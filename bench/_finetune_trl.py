"""TRL in its own venv (bench/.venvs/trl), behind bench/_finetune_trl_driver.py; and the
worker processes that run each trainer.

The venv is created when missing: ``trl`` (1.x) with ``datasets``; torch from the machine's
CPU wheel, pinned by the repository's constraints.txt, and transformers, peft and accelerate
pinned to the versions installed in the project's venv, so that the comparison measures
TRL's trainer and not a different model or optimizer implementation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from _provenance import ROOT, version

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venvs" / "trl"
DRIVER = BENCH / "_finetune_trl_driver.py"
SPEC = "trl>=1,<2"
PINNED = ("transformers", "peft", "accelerate")


class SetupError(RuntimeError):
    """TRL could not be installed or run: the message says why."""


def _pins() -> list[str]:
    lines = [
        line.strip()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for dist in PINNED:
        installed = version(dist)
        if installed:
            lines.append(f"{dist}=={installed}")
    return lines


def _matches(py: Path, pins: list[str]) -> bool:
    code = (
        "import importlib.metadata as m, json, sys; import trl, datasets; "
        "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    )
    names = [p.split("==")[0] for p in pins if "==" in p]
    out = subprocess.run([str(py), "-c", code, *names], check=False, capture_output=True, text=True)
    if out.returncode:
        return False
    have = json.loads(out.stdout)
    return all(
        have.get(p.split("==")[0], "").split("+")[0] == p.split("==")[1].split("+")[0]
        for p in pins
        if "==" in p
    )


def ensure_venv(venv: Path = VENV) -> Path:
    """The venv's python, after creating (or re-pinning) the venv when needed."""
    py = venv / "bin" / "python"
    pins = _pins()
    if py.exists() and _matches(py, pins):
        return py
    print(f"installing {SPEC} into {venv} (a few minutes)...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    constraints = venv.parent / "trl-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    torch_pin = next((p for p in pins if p.startswith("torch")), "torch")
    log = venv.parent / "trl-install.log"
    steps = []
    if not py.exists():
        steps.append([sys.base_prefix + "/bin/python3", "-m", "venv", str(venv)])
    steps += [
        # torch first, from the machine's CPU wheel; then everything under the same pins
        [str(py), "-m", "pip", "install", "-q", torch_pin, "-c", str(constraints)],
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            SPEC,
            "datasets",
            *[p for p in pins if not p.startswith("torch")],
            "-c",
            str(constraints),
        ],
    ]
    with log.open("wb") as out:
        for step in steps:
            if subprocess.run(step, check=False, stdout=out, stderr=subprocess.STDOUT).returncode:
                text = [line for line in log.read_text().splitlines() if "WARNING: Loc" not in line]
                shutil.rmtree(venv, ignore_errors=True)
                raise SetupError(
                    f"installing {SPEC} failed ({' '.join(step[:5])}...); see {log}:\n"
                    + "\n".join(text[-20:])
                )
    return py


def venv_versions(py: Path) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json; print(json.dumps({d: m.version(d) for d in "
        "('trl', 'datasets', 'transformers', 'peft', 'accelerate', 'torch')}))"
    )
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout))


class Driver:
    """One worker process (its libraries imported once); each call is one JSON line each
    way. Its stderr (the libraries' warnings) goes to ``scratch/NAME.log``."""

    def __init__(self, py: Path, script: Path, scratch: Path, threads: int, name: str) -> None:
        self.scratch, self.name = scratch, name
        env = os.environ | {
            "OMP_NUM_THREADS": str(threads),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
        }
        self.log_path = scratch / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(py), str(script), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=str(scratch),
        )

    def call(self, op: str, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op} | req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SetupError(f"the {self.name} worker exited ({self.proc.poll()}):\n{tail}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"{self.name} worker, {op}: {answer['error']}")
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
