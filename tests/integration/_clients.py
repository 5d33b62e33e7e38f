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

import os
import re
import subprocess
from pathlib import Path

import pytest

__all__ = ["CLIENTS", "ROOT", "clients_python", "offline_env", "request_counts"]

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "clients"
VENV = ROOT / os.environ.get("CLIENTS_VENV", ".venv-clients")  # the Makefile's CLIENTS_VENV
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


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
