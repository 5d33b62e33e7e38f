"""A worker process that runs (or resumes) an agent and can SIGKILL itself at a chosen
point: after the Nth checkpoint is written (a step boundary), or inside the side-effecting
tool after its effect (before its outcome is recorded). tests/integration/test_agent_durable.py
runs it twice: once to die, once to resume.

    python _agent_worker.py '{"mode": "run", "kill": "put:3", ...}'
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import agents
import agents._runner
import genai
from agents import StoreCheckpointer


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    cfg: dict[str, Any] = json.loads(sys.argv[1])
    kill = str(cfg.get("kill", ""))
    effects = Path(cfg["effects"])
    puts = 0

    class DyingCheckpointer(StoreCheckpointer):
        """Dies right after its Nth checkpoint is durable: a kill at a step boundary."""

        def put(self, *args: Any, **kwargs: Any) -> Any:
            nonlocal puts
            result = super().put(*args, **kwargs)
            puts += 1
            if kill == f"put:{puts}":
                _die()
            return result

    agents._runner.StoreCheckpointer = DyingCheckpointer  # type: ignore[misc]

    @agents.tool(side_effects=True)
    def refund(order: str) -> str:
        """Refund an order (an effect outside the run: a line in a file)."""
        with effects.open("a") as out:
            out.write(order + "\n")
        if kill == "in_tool":
            _die()
        return f"refunded {order}"

    @agents.tool
    def lookup(order: str) -> str:
        """An order's state."""
        return f"{order}: refunded" if effects.exists() else f"{order}: paid"

    agent = agents.Agent(name="support", model=cfg["model"], tools=[refund, lookup])
    settings = genai.Settings(home=cfg["home"], database_url=cfg["db"], user="admin")
    with genai.connect(settings, api_key=cfg["key"]) as client:
        runner = agents.AgentRunner(
            client, cfg["project"], gateway=cfg["gateway"], api_key=cfg["key"]
        )
        if cfg["mode"] == "run":
            run = runner.run(agent, "Refund order A1 and check it.")
        else:
            run = runner.resume(cfg["run_id"], agent)
    print(json.dumps({"status": run.status, "output": run.output, "steps": run.steps}))


if __name__ == "__main__":
    main()
