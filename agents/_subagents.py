"""Sub-agents asked as tools (a supervisor's ``ask_<agent>`` calls): each runs in a
LangGraph thread of its own, checkpointed beside the run's, on what is left of the run's
one budget; its counters and steps join the run's."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from agents._agent import Budget
from agents._state import STOP_STATUSES, Asked, Plan, left
from agents._tools import ToolOutcome

if TYPE_CHECKING:
    from agents._engine import Engine

__all__ = ["ask"]


async def ask(engine: Engine, plan: Plan, asked: Asked) -> ToolOutcome | None:
    """Run (or go on with) the sub-agent a call asks, on what is left of the budget, in
    a thread of its own checkpointed beside the run's; None while it waits for an
    approval. Its counters and steps are added to ``asked``."""
    from langgraph.types import Command

    from agents._engine import _ENGINE, Engine

    assert plan.subagent is not None
    request = str((plan.call.parsed() or {}).get("request") or plan.call.arguments)
    b = engine.budget
    nested = Engine(
        run_id=engine.run_id,
        team=engine.team,
        budget=Budget(
            max_steps=max(b.max_steps - asked.steps, 0),
            max_tool_calls=left(b.max_tool_calls, asked.tool_total),
            max_calls_per_tool=b.max_calls_per_tool,
            max_tokens=left(b.max_tokens, asked.tokens),
            max_cost_usd=left(b.max_cost_usd, asked.cost_usd),
            max_wall_s=b.max_wall_s,
            loop_limit=b.loop_limit,
        ),
        client=engine.client,
        records=engine.records,
        clock=engine.clock,
        session=engine.session,
        base_elapsed=engine.elapsed(),
        started=engine.clock(),
        on_event=engine.on_event,
        headers=engine.headers,
        durability=engine.durability,
    )
    digest = hashlib.sha256(plan.call.id.encode()).hexdigest()[:16]
    config: dict[str, Any] = {
        "configurable": {"thread_id": f"{engine.run_id}:{digest}"},
        "recursion_limit": nested.recursion_limit(),
    }
    token = _ENGINE.set(nested)
    try:
        graph = nested.graph(engine.checkpointer)
        snapshot = await graph.aget_state(config)
        if not snapshot.values:  # a new question
            start: Any = {
                "messages": [{"role": "user", "content": request}],
                "agent": plan.subagent,
            }
            values = await graph.ainvoke(start, config, durability=engine.durability)
        elif snapshot.next:  # paused for an approval, or cut off by a crash
            interrupted = any(task.interrupts for task in snapshot.tasks)
            start = Command(resume=True) if interrupted else None
            values = await graph.ainvoke(start, config, durability=engine.durability)
        else:
            values = snapshot.values
    finally:
        _ENGINE.reset(token)
    if "__interrupt__" in values:
        return None
    asked.add(values)
    status, detail = values.get("status") or "failed", values.get("detail", "")
    if status == "completed":
        return ToolOutcome("ok", values.get("output") or "")
    if status in STOP_STATUSES:
        asked.stop = {"status": status, "detail": f"sub-agent {plan.subagent}: {detail}"}
        return ToolOutcome("error", f"sub-agent {plan.subagent} stopped: {detail}")
    return ToolOutcome("error", f"sub-agent {plan.subagent} failed: {detail}")
