"""GPTCache in its own venv (bench/.venvs/gptcache), behind bench/_cache_gptcache_driver.py.

The venv is created when missing: ``gptcache`` plus what its default similar-cache path
imports (``faiss-cpu``, ``sqlalchemy``; GPTCache would otherwise try to pip-install them at
import) and ``matplotlib`` for the benchmark's plot (drawn in this venv so that ours stays
as the project pins it). ``torch`` is pinned like everywhere else, though nothing here needs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venvs" / "gptcache"
DRIVER = BENCH / "_cache_gptcache_driver.py"
PACKAGES = ["gptcache", "faiss-cpu", "sqlalchemy", "matplotlib"]


class SetupError(RuntimeError):
    """GPTCache could not be installed or started: the message says why."""


def ensure_venv(venv: Path = VENV, spec: str = "gptcache") -> Path:
    """The venv's python, after creating the venv when it is missing."""
    py = venv / "bin" / "python"
    check = [str(py), "-c", "import gptcache, faiss, sqlalchemy, matplotlib"]
    if py.exists() and subprocess.run(check, check=False, capture_output=True).returncode == 0:
        return py
    print(f"installing {spec} into {venv} (about a minute)...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    constraints = venv.parent / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")  # never let anything pull a CUDA torch
    log = venv.parent / "gptcache-install.log"
    steps = [
        [sys.base_prefix + "/bin/python3", "-m", "venv", str(venv)],
        [str(py), "-m", "pip", "install", "-q", spec, *PACKAGES[1:], "-c", str(constraints)],
    ]
    with log.open("wb") as out:
        for step in steps:
            if subprocess.run(step, check=False, stdout=out, stderr=subprocess.STDOUT).returncode:
                text = [line for line in log.read_text().splitlines() if "WARNING: Loc" not in line]
                shutil.rmtree(venv, ignore_errors=True)
                raise SetupError(
                    f"installing {spec} failed ({' '.join(step[:4])}...); see {log}:\n"
                    + "\n".join(text[-20:])
                )
    return py


def work_dir(prefix: str) -> Path:
    """A scratch directory in RAM when the machine has /dev/shm (see the report's notes)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


class GPTCacheDriver:
    """One driver process; each call is one JSON line each way."""

    def __init__(self, py: Path, scratch: Path, omp_threads: int = 1) -> None:
        self.scratch = scratch
        self._n = 0
        env = os.environ | {"OMP_NUM_THREADS": str(omp_threads), "TOKENIZERS_PARALLELISM": "false"}
        self.log = (scratch / "driver.log").open("wb")
        self.proc = subprocess.Popen(
            [str(py), str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )

    def call(self, op: str, **req: Any) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"op": op} | req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = (self.scratch / "driver.log").read_text(errors="replace")[-3000:]
            raise SetupError(f"the GPTCache driver exited ({self.proc.poll()}):\n{tail}")
        answer = json.loads(line)
        if not answer.pop("ok"):
            raise RuntimeError(f"GPTCache driver, {op}: {answer['error']}")
        return answer

    def _npy(self, vectors: np.ndarray) -> str:
        self._n += 1
        path = self.scratch / f"v{self._n}.npy"
        np.save(path, np.ascontiguousarray(vectors, dtype=np.float32))
        return str(path)

    def open(self, name: str, dimension: int, max_size: int, threshold: float) -> None:
        data = self.scratch / name
        shutil.rmtree(data, ignore_errors=True)
        self.call(
            "open", dir=str(data), dimension=dimension, max_size=max_size, threshold=threshold
        )

    def insert(self, questions: list[str], answers: list[str], vectors: np.ndarray) -> float:
        path = self._npy(vectors)
        try:
            return float(
                self.call("insert", questions=questions, answers=answers, vectors=path)["seconds"]
            )
        finally:
            os.unlink(path)

    def query(self, questions: list[str], vectors: np.ndarray, threshold: float) -> dict:
        path = self._npy(vectors)
        try:
            return self.call("query", questions=questions, vectors=path, threshold=threshold)
        finally:
            os.unlink(path)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("close")
            finally:
                assert self.proc.stdin
                self.proc.stdin.close()
                try:
                    self.proc.wait(30)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        self.log.close()
