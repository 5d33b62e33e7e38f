"""What one agent run's graph carries and the small pieces its steps share: the checkpointed
state (:class:`RunState`), the events a listener hears, the trace entries, the plan of one
tool call, and the budget's words. The engine (:mod:`agents._engine`) runs on them."""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypedDict

from agents._agent import Budget
from agents._records import StepInfo
from agents._tools import Tool, ToolOutcome
from agents._wire import ToolCallRequest

__all__ = [
    "OUTCOMES",
    "STOP_STATUSES",
    "AgentEvent",
    "Asked",
    "CallFailed",
    "Plan",
    "RunState",
    "budget_stop",
    "cut",
    "kept",
    "left",
    "object_of",
    "signature",
    "status_message",
    "step_dict",
    "stop",
    "tool_budget",
    "trace_of",
    "wall_message",
]

#: The statuses a run ends with when its budget stops it.
STOP_STATUSES = (
    "max_steps",
    "max_tool_calls",
    "max_tokens",
    "max_cost",
    "max_wall_time",
    "loop_detected",
)
OUTCOMES = ("ok", "invalid_arguments", "error", "timeout")  # a ToolOutcome's statuses
TRACE_CHARS = 2000  # what a trace keeps of a text, an argument list or a result


@dataclass(frozen=True)
class AgentEvent:
    """What a run tells a listener as it goes (a hosted agent streams these): the model's
    ``text``, a ``tool_call`` it asked for, a ``tool_result``, a ``handoff``. A step
    replayed after a crash or an approval is not told again."""

    kind: str  # text | tool_call | tool_result | handoff
    agent: str
    name: str = ""
    call_id: str = ""
    arguments: str = ""
    content: str = ""
    status: str = ""


class RunState(TypedDict, total=False):
    """What a run's checkpoint holds (LangGraph's state)."""

    messages: Annotated[list[dict[str, Any]], operator.add]
    agent: str
    steps: int
    tokens: int
    cost_usd: float
    elapsed_s: float
    tool_total: int
    tool_counts: dict[str, int]
    signatures: dict[str, int]
    pending: list[dict[str, str]]
    trace: int
    log: Annotated[list[dict[str, Any]], operator.add]  # the trace, written at the run's end
    status: str
    detail: str
    output: str


@dataclass
class Asked:
    """The run's counters as a turn's sub-agents use them up, and their steps."""

    steps: int
    tokens: int
    cost_usd: float
    tool_total: int
    log: list[dict[str, Any]] = field(default_factory=list)
    stop: dict[str, Any] | None = None

    def add(self, values: Mapping[str, Any]) -> None:
        self.steps += values.get("steps", 0)
        self.tokens += values.get("tokens", 0)
        self.cost_usd += values.get("cost_usd", 0.0)
        self.tool_total += values.get("tool_total", 0)
        self.log.extend(values.get("log", []))


def left(limit: float | None, used: float) -> Any:
    if limit is None:
        return None
    left = limit - used
    return max(left, 0) if isinstance(limit, int) and isinstance(used, int) else max(left, 0.0)


@dataclass
class Plan:
    call: ToolCallRequest
    tool: Tool | None
    handoff: str | None = None
    fixed: ToolOutcome | None = None
    waiting: bool = False
    arguments: str | None = None
    record_as: str | None = None
    subagent: str | None = None

    @property
    def runnable(self) -> bool:
        return not self.waiting and self.fixed is None and self.subagent is None


class CallFailed(Exception):
    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def kept(tool: Tool | None) -> bool:
    """Whether a tool's calls have their outcome kept (a replay must not redo them)."""
    return tool is not None and (tool.side_effects or tool.requires_approval)


def step_dict(
    index: int,
    kind: str,
    name: str,
    agent: str,
    status: str,
    detail: dict[str, Any],
    latency_ms: float,
) -> dict[str, Any]:
    """A trace entry as the run's state keeps it (see :func:`trace_of`)."""
    return {
        "index": index,
        "kind": kind,
        "name": name,
        "agent": agent,
        "status": status,
        "detail": detail,
        "latency_ms": latency_ms,
    }


def trace_of(state: Mapping[str, Any]) -> list[StepInfo]:
    """The trace a run's state holds, as the store keeps it."""
    return [StepInfo(**entry) for entry in state.get("log", [])]


def stop(status: str, message: str) -> dict[str, Any]:
    return {"status": status, "detail": message}


def signature(call: ToolCallRequest) -> str:
    parsed = call.parsed()
    text = json.dumps(parsed, sort_keys=True) if parsed is not None else call.arguments.strip()
    return f"{call.name}\x00{text}"


def object_of(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments[:TRACE_CHARS]}
    return value if isinstance(value, dict) else {"_raw": arguments[:TRACE_CHARS]}


def cut(text: str) -> str:
    return text if len(text) <= TRACE_CHARS else text[:TRACE_CHARS] + f"… [{len(text)} chars]"


def wall_message(budget: Budget) -> str:
    return f"the run worked {budget.max_wall_s} s: its budget's max_wall_s"


def status_message(request: dict[str, Any], error: Any) -> str:
    message = error.message if hasattr(error, "message") else str(error)
    if "tools" in request and error.status_code == 400 and "tool" in str(message).lower():
        return (
            f"the model {request['model']!r} refused the request's tools ({message}): give the "
            "agent a deployment whose model supports tool calling"
        )
    return f"the gateway answered {error.status_code} for model {request['model']!r}: {message}"


def budget_stop(b: Budget, state: RunState, elapsed: float) -> dict[str, Any] | None:
    """The stop a run's state has reached before its next model call, if any."""
    checks = (
        (
            state.get("steps", 0) >= b.max_steps,
            "max_steps",
            f"the run made {state.get('steps', 0)} model calls: its budget allows {b.max_steps}",
        ),
        (
            b.max_tokens is not None and state.get("tokens", 0) >= b.max_tokens,
            "max_tokens",
            f"the run used {state.get('tokens', 0)} tokens: its budget allows {b.max_tokens}",
        ),
        (
            b.max_cost_usd is not None and state.get("cost_usd", 0.0) >= b.max_cost_usd,
            "max_cost",
            f"the run cost ${state.get('cost_usd', 0.0):.6f}: its budget allows ${b.max_cost_usd}",
        ),
        (
            b.max_wall_s is not None and elapsed >= b.max_wall_s,
            "max_wall_time",
            wall_message(b),
        ),
    )
    for reached, status, message in checks:
        if reached:
            return {"status": status, "detail": message, "elapsed_s": elapsed}
    return None


def tool_budget(
    b: Budget,
    calls: list[ToolCallRequest],
    counts: dict[str, int],
    signatures: dict[str, int],
    total: int,
) -> dict[str, Any] | None:
    """The stop a turn's tool calls would reach (a tool-call limit, a loop), if any,
    checked before any of them runs."""
    counts, signatures = dict(counts), dict(signatures)
    for call in calls:
        total += 1
        counts[call.name] = counts.get(call.name, 0) + 1
        key = signature(call)
        signatures[key] = signatures.get(key, 0) + 1
        cap = b.max_calls_per_tool.get(call.name)
        if b.max_tool_calls is not None and total > b.max_tool_calls:
            return stop(
                "max_tool_calls",
                f"the run asked for {total} tool calls: its budget allows {b.max_tool_calls}",
            )
        if cap is not None and counts[call.name] > cap:
            return stop(
                "max_tool_calls",
                f"the run asked for {counts[call.name]} calls of {call.name!r}: "
                f"its budget allows {cap}",
            )
        if signatures[key] >= b.loop_limit:
            return stop(
                "loop_detected",
                f"the model called {call.name!r} with the same arguments "
                f"{signatures[key]} times (loop_limit {b.loop_limit})",
            )
    return None
