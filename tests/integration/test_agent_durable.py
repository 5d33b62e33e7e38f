"""Kill -9 of an agent's worker process at every step boundary (and inside a side-effecting
tool), on SQLite and PostgreSQL: the resumed run gives the same answer, and the
side-effecting tool ran exactly once (at most once when it died inside it)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from genai.store import schema as t

WORKER = Path(__file__).with_name("_agent_worker.py")
SCRIPT = [
    {"tool_calls": [{"id": "r1", "function": {"name": "refund", "arguments": '{"order": "A1"}'}}]},
    {"tool_calls": [{"id": "l1", "function": {"name": "lookup", "arguments": '{"order": "A1"}'}}]},
    "Refunded A1.",
]
# LangGraph writes a checkpoint for the input and after each of the five steps
# (model, tools, model, tools, model): kill after each of them (the last one: the run has
# ended, its row not yet updated).
KILLS = [f"put:{n}" for n in range(1, 7)] + ["in_tool"]


def _worker(cfg: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(WORKER), json.dumps(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=WORKER.parent,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS)
def test_a_killed_run_resumes_without_repeating_a_side_effect(
    kill: str, project: Any, gateway_server: Any, settings: Any, tmp_path: Path
) -> None:
    project.deploy(
        {"targets": [{"name": "m", "backend": "fake", "options": {"replies": SCRIPT}}]}, name="bot"
    )
    gw = gateway_server(settings)
    effects = tmp_path / "refunds.txt"
    cfg = {
        "home": str(settings.home),
        "db": settings.resolved_database_url,
        "key": project.key,
        "project": project.name,
        "gateway": gw.v1,
        "model": "bot",
        "effects": str(effects),
    }
    first = _worker({**cfg, "mode": "run", "kill": kill})
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    with project.admin.store.session() as s:
        run_id = s.scalars(select(t.AgentRun.run_id)).one()
    second = _worker({**cfg, "mode": "resume", "run_id": run_id})
    assert second.returncode == 0, second.stderr[-3000:]
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result == {"status": "completed", "output": "Refunded A1.", "steps": 3}
    assert effects.read_text() == "A1\n"  # the refund happened once
    with project.admin.store.session() as s:
        calls = {c.call_id: c.status for c in s.scalars(select(t.AgentToolCall))}
    # only the side-effecting call is kept (a read-only one is simply run again on a replay)
    if kill == "in_tool":  # it died inside the tool: the model was told, nothing ran twice
        assert calls == {"r1": "unknown"}
    else:
        assert calls == {"r1": "ok"}
