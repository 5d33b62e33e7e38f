"""The clients environment: third-party clients run against a real ``genai serve``.

lm-evaluation-harness and ragas live in their own virtual environment, ``.venv-clients``
(``make clients`` builds it from tests/clients/requirements.txt), because ragas's
``instructor`` pins an openai/jiter older than the project's. The tests start the model
server in this (the project's) environment and run the clients as subprocesses with that
environment's python.

Missing, it skips the tests on a developer's machine and fails them under ``CI=true``
(``make test``, which CI runs, builds it first), as PostgreSQL and Redis do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "CLIENTS",
    "LM_EVAL_TASK",
    "LM_EVAL_TASK_FILES",
    "ROOT",
    "LmEvalRun",
    "Scores",
    "clients_python",
    "hf_lm_eval",
    "lm_eval_workdir",
    "offline_env",
    "request_counts",
]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
VENV = ROOT / os.environ.get("CLIENTS_VENV", ".venv-clients")  # the Makefile's CLIENTS_VENV
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

#: The tiny local multiple-choice task of tests/data/lm_eval (20 questions, 2 to 4 choices).
LM_EVAL_TASK = "genai_tiny_mc"
LM_EVAL_TASK_FILES = ROOT / "tests" / "data" / "lm_eval"
LM_EVAL_QUESTIONS = 20
LM_EVAL_TIMEOUT_S = 420


def clients_python(*modules: str) -> Path:
    """The clients venv's python once it has ``modules`` (import names); otherwise skip the
    test, or fail it under ``CI=true``."""
    python = VENV / "bin" / "python"
    problem = None
    if not python.is_file():
        problem = f"{VENV} does not exist"
    else:
        probe = subprocess.run(
            [
                str(python),
                "-c",
                "import importlib.util, sys; "
                "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))",
                *modules,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        missing = probe.stdout.strip()
        if probe.returncode != 0 or missing:
            problem = f"{VENV} lacks {missing or modules} ({probe.stderr.strip()[-300:]})"
    if problem is not None:
        message = f"the clients environment is missing: {problem}; build it with `make clients`"
        if IN_CI:
            pytest.fail(message + " (it is mandatory under CI=true)")
        pytest.skip(message)
    return python


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a client subprocess: no hub, no telemetry, caches under ``home``,
    one thread (the suite runs one xdist worker per core)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GENAI_", "VIRTUAL_ENV"))}
    env.update(
        HF_HOME=str(home / "hf"),
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        RAGAS_DO_NOT_TRACK="true",
        RAGAS_CACHE_HOME=str(home / "ragas"),
        TIKTOKEN_CACHE_DIR=str(home / "tiktoken"),
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def request_counts(metrics_text: str, endpoint: str) -> dict[str, float]:
    """``genai_serve_requests_total`` of one endpoint, by HTTP status."""
    counts: dict[str, float] = {}
    for line in metrics_text.splitlines():
        match = re.fullmatch(r"genai_serve_requests_total\{(.*)\} (\S+)", line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1)))
        if labels.get("endpoint") == endpoint:
            status = labels.get("status", "?")
            counts[status] = counts.get(status, 0.0) + float(match.group(2))
    return counts


# ------------------------------------------------------------------ lm-evaluation-harness


@dataclass
class Scores:
    acc: float
    acc_norm: float
    # doc id -> [(log-likelihood, is_greedy), ...] in choice order, and the doc's acc
    choices: dict[int, list[tuple[float, bool]]]
    doc_acc: dict[int, tuple[float, float]]


class LmEvalRun:
    """One ``lm_eval`` CLI run of the tiny task, started at once; ``scores()`` waits for it."""

    def __init__(self, python: Path, workdir: Path, name: str, model_args: list[str]) -> None:
        self.out = workdir / f"out-{name}"
        self.log = workdir / f"{name}.log"
        lm_eval = python.parent / "lm_eval"
        command = [
            str(lm_eval),
            *model_args,
            "--tasks",
            LM_EVAL_TASK,
            "--include_path",
            str(workdir),
            "--output_path",
            str(self.out),
            "--log_samples",
        ]
        self._scores: Scores | None = None
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=workdir,  # the task's data_files path is relative to it
                env=offline_env(workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def scores(self) -> Scores:
        if self._scores is None:
            self._scores = self._read()
        return self._scores

    def _read(self) -> Scores:
        try:
            code = self.process.wait(timeout=LM_EVAL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"lm_eval ran past {LM_EVAL_TIMEOUT_S} s:\n{self.tail()}")
        assert code == 0, f"lm_eval exited {code}:\n{self.tail()}"
        results = json.loads(next(self.out.rglob("results_*.json")).read_text())
        task = results["results"][LM_EVAL_TASK]
        samples = [
            json.loads(line)
            for line in next(self.out.rglob(f"samples_{LM_EVAL_TASK}_*.jsonl"))
            .read_text()
            .splitlines()
        ]
        assert len(samples) == LM_EVAL_QUESTIONS, self.tail()
        return Scores(
            acc=task["acc,none"],
            acc_norm=task["acc_norm,none"],
            choices={
                s["doc_id"]: [(float(ll), greedy == "True") for ll, greedy in s["filtered_resps"]]
                for s in samples
            },
            doc_acc={s["doc_id"]: (s["acc"], s["acc_norm"]) for s in samples},
        )

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line[:400] for line in lines[-40:])


def lm_eval_workdir(root: Path) -> Path:
    """``root`` with a copy of the tiny task's files (lm_eval runs there)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("tiny_mc.yaml", "tiny_mc.jsonl"):
        shutil.copy(LM_EVAL_TASK_FILES / name, root / name)
    return root


def hf_lm_eval(python: Path, model: Path, workdir: Path) -> LmEvalRun:
    """lm-eval's own scoring of ``model`` on the tiny task (``--model hf``, float32, CPU),
    started in ``workdir`` (a copy of the task's files is put there)."""
    return LmEvalRun(
        python,
        lm_eval_workdir(workdir),
        "hf",
        [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model},dtype=float32",
            "--device",
            "cpu",
            "--batch_size",
            "1",
        ],
    )
